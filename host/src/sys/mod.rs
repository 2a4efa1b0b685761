//! Effects with no plugin types: supervised processes and their cgroups,
//! workspaces, the environment cache, fork servers, and the Kubernetes and mirrord engines.

pub mod cgroup;
pub mod datadir;
pub mod envcache;
pub mod forkserver;
pub mod isolation;
pub mod kube;
pub mod mirrord;
pub mod process;
pub mod rlimits;
pub mod workspace;
