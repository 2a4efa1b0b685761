//! `[kube]`: which cluster the kube engine talks to.

use std::path::PathBuf;

use serde::Deserialize;

/// Which cluster `kube` uses. Without settings it follows kubectl:
/// `KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    /// A kubeconfig file to read instead.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use instead of the kubeconfig's current one.
    pub context: Option<String>,
    /// Longest a single API request may take, seconds.
    pub request_timeout_secs: u64,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            request_timeout_secs: 30,
        }
    }
}
