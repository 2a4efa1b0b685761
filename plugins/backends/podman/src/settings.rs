//! The backend's settings, `[plugin_config.podman]` in berth.toml.

/// Where the allowed volume roots are configured, for error messages.
pub const ROOTS_SETTING: &str = "[plugin_config.podman] allowed_volume_roots";

/// The backend's settings (`[plugin_config.podman]` in berth.toml).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Host directories (and everything below them) that may be mounted.
    pub allowed_volume_roots: Vec<String>,
    /// Memory limit when none is given, MiB.
    pub default_memory_mb: u32,
    /// CPU limit when none is given, thousandths of a core.
    pub default_cpu_millis: u32,
    /// Process limit when none is given.
    pub default_pids: u32,
    /// Pull policy passed to `podman run --pull`.
    pub pull: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            allowed_volume_roots: Vec::new(),
            default_memory_mb: 512,
            default_cpu_millis: 1000,
            default_pids: 256,
            pull: "missing".into(),
        }
    }
}

impl Settings {
    /// The settings the host passed, or an error naming the bad key.
    pub fn load() -> berth_sdk::Result<Settings> {
        berth_sdk::settings("podman")
    }
}
