//! Effects with no plugin types: supervised processes and their cgroups,
//! workspaces, the environment cache, fork servers, the Kubernetes and mirrord
//! engines, secret random bytes, and polled standard streams.

pub mod cgroup;
pub mod datadir;
pub mod envcache;
pub mod forkserver;
pub mod isolation;
pub mod kube;
pub mod mirrord;
pub mod process;
pub mod random;
pub mod rlimits;
pub mod stream;
pub mod workspace;
