//! Running host processes for plugins: workspaces, process groups, caps.

pub mod process;
pub mod workspace;
