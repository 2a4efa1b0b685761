//! Tool sets the host composes over the loaded plugins, each a
//! [`crate::runtime::host_tool::HostToolSet`] owning its state:
//! `run_<language>` for every runner, the session tools that go with them,
//! the kept-sandbox tools when a backend is loaded, and the template tools
//! when a template plugin is loaded.

pub mod run;
pub mod sandboxes;
pub mod sessions;
pub mod templates;
