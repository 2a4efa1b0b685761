//! Checks on what callers pass before any podman command is built: image
//! references, names, mounts and ports. Each error names the input.

use berth_sdk::{Error, Mount};

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
        serde_json::from_value(berth_sdk::config()).map_err(|e| {
            Error::invalid_input(format!("[plugin_config.podman] in berth.toml: {e}"))
        })
    }
}

/// An image reference: registry/name:tag or @digest, nothing a shell or
/// podman's option parser could read differently.
pub fn image(image: &str) -> berth_sdk::Result<()> {
    let ok = !image.is_empty()
        && image.len() <= 255
        && image.starts_with(|c: char| c.is_ascii_alphanumeric())
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        && !image.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "image `{image}` is not an image reference (letters, digits and `._-/:@`, e.g. docker.io/library/nginx:1.27)"
        )))
    }
}

/// A workload name: a DNS label, so it is valid on every backend.
pub fn name(name: &str) -> berth_sdk::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "name `{name}` is not a DNS label (lowercase letters, digits and `-`, at most 63)"
        )))
    }
}

/// A mount whose host path lies under an allowed root.
pub fn mount(mount: &Mount, settings: &Settings) -> berth_sdk::Result<String> {
    let host = &mount.host_path;
    let inside = &mount.container_path;
    for (what, path) in [("host path", host), ("container path", inside)] {
        if !path.starts_with('/') || path.split('/').any(|p| p == "..") || path.contains([',', ':', '\0']) {
            return Err(Error::invalid_input(format!(
                "mount {what} `{path}` must be an absolute path without `..`, `,` or `:`"
            )));
        }
    }
    let allowed = settings.allowed_volume_roots.iter().any(|root| {
        let root = root.trim_end_matches('/');
        host == root || host.starts_with(&format!("{root}/")) || root.is_empty()
    });
    if !allowed {
        return Err(Error::Denied(format!(
            "mount host path `{host}` is outside the allowed volume roots {:?}; add a root to [plugin_config.podman] allowed_volume_roots in berth.toml",
            settings.allowed_volume_roots
        )));
    }
    let mode = if mount.read_only { "ro" } else { "rw" };
    Ok(format!("{host}:{inside}:{mode}"))
}

/// Environment names podman accepts as `-e NAME=VALUE`.
pub fn env_name(name: &str) -> berth_sdk::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "environment variable name `{name}` must be letters, digits and `_`"
        )))
    }
}
