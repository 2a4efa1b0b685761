//! The backend's settings: `[plugin_config.k8s]` in berth.toml.

use berth_sdk::Error;

/// What `[plugin_config.k8s]` may set.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Namespace for sandboxes, workloads and kubectl-style tools called
    /// without one: `berth` unless set (the one namespace the backend is
    /// granted until berth.toml names a `[policy.k8s]`).
    pub namespace: Option<String>,
    /// `imagePullPolicy` of every container (`IfNotPresent`, `Always`,
    /// `Never`).
    pub image_pull_policy: String,
    /// Host directories (and everything below them) that may be mounted
    /// as `hostPath` volumes.
    pub allowed_volume_roots: Vec<String>,
    /// Memory limit when none is given, MiB.
    pub default_memory_mb: u32,
    /// CPU limit when none is given, thousandths of a core.
    pub default_cpu_millis: u32,
    /// The user id containers run as.
    pub run_as_user: u32,
    /// What a sandbox pod runs while it waits for commands.
    pub sandbox_command: Vec<String>,
    /// How long to wait for a sandbox pod or a workload to become ready,
    /// seconds.
    pub ready_timeout_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: Some("berth".into()),
            image_pull_policy: "IfNotPresent".into(),
            allowed_volume_roots: Vec::new(),
            default_memory_mb: 512,
            default_cpu_millis: 1000,
            run_as_user: 65534,
            sandbox_command: vec!["sleep".into(), "2147483647".into()],
            ready_timeout_secs: 90,
        }
    }
}

impl Settings {
    /// The settings the host passed, or an error naming the bad key.
    pub fn load() -> berth_sdk::Result<Settings> {
        let settings: Settings = berth_sdk::settings("k8s")?;
        if !["IfNotPresent", "Always", "Never"].contains(&settings.image_pull_policy.as_str()) {
            return Err(Error::invalid_input(format!(
                "[plugin_config.k8s] image_pull_policy `{}` must be IfNotPresent, Always or Never",
                settings.image_pull_policy
            )));
        }
        Ok(settings)
    }

    /// Where everything goes.
    pub fn scope(&self) -> berth_sdk::kube::Scope {
        berth_sdk::kube::scope(self.namespace.as_deref())
    }
}
