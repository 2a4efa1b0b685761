//! `[runs]`: how `run_<language>` runs snippets.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::contract::bindings::shared::berth::plugin::workload_types::{Mount, SandboxSpec};
use crate::contract::bindings::types::Error as WitError;

/// How the generated `run_<language>` tools run snippets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// Size cap of the environment cache, MiB; least recently used
    /// environments are removed beyond it.
    pub env_cache_mib: u64,
    /// Memory limit of a snippet's processes, MiB (with cgroups).
    pub memory_mib: u64,
    /// Most processes and threads of a snippet at once (with cgroups).
    pub pids: u64,
    /// Whether to use cgroups for the limits when the host allows it.
    pub cgroups: bool,
    /// Time limit of each environment setup or build step, seconds.
    pub setup_timeout_secs: u64,
    /// Default time limit of the run step, seconds.
    pub default_timeout_secs: u64,
    /// Largest time limit a caller may ask for, seconds.
    pub max_timeout_secs: u64,
    /// Largest snippet accepted, bytes.
    pub max_code_bytes: usize,
    /// A session unused this long is removed, seconds.
    pub session_idle_secs: u64,
    /// What a sandbox for each language runs, by language.
    pub sandbox_images: BTreeMap<String, SandboxImage>,
    /// Most fork servers (pre-loaded interpreters a runner offers) kept
    /// at once; 0 turns them off.
    pub fork_servers: usize,
    /// A fork server unused this long is stopped, seconds.
    pub fork_server_idle_secs: u64,
    /// Whether local runs are confined with bubblewrap (namespaces of
    /// their own, nothing of berth visible) when the host has it.
    pub isolate: bool,
    /// Refuse every local run that cannot be confined, rather than run it
    /// with only limits around it.
    pub require_isolation: bool,
    /// Whether a confined run step keeps the network (setup steps always
    /// do: they download packages).
    pub network: bool,
    /// More directories a confined run sees read-only, for runtimes
    /// installed outside `/usr` that are not on `PATH`.
    pub read_only: Vec<std::path::PathBuf>,
    /// Largest file a snippet's process may write, MiB.
    pub max_file_mib: u64,
    /// Most open descriptors per snippet process.
    pub max_open_files: u64,
}

/// The image a sandbox for one language uses, and what it mounts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxImage {
    /// Image reference, e.g. `python:3.12-slim`.
    pub image: String,
    /// Host directories to mount, as `HOST:CONTAINER[:ro]`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Whether the sandbox gets network access (to install dependencies).
    #[serde(default)]
    pub network: bool,
    /// Sandboxes to keep created and ready, by backend name, while berth
    /// serves (a warm pool); none by default.
    #[serde(default)]
    pub pool: BTreeMap<String, usize>,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            env_cache_mib: 10 * 1024,
            memory_mib: 1024,
            pids: 256,
            cgroups: true,
            setup_timeout_secs: 600,
            default_timeout_secs: 60,
            max_timeout_secs: 900,
            max_code_bytes: 1 << 20,
            session_idle_secs: 3600,
            sandbox_images: BTreeMap::new(),
            fork_servers: 8,
            fork_server_idle_secs: 600,
            isolate: true,
            require_isolation: false,
            network: false,
            read_only: Vec::new(),
            max_file_mib: 1024,
            max_open_files: 1024,
        }
    }
}

impl RunsConfig {
    /// The sandbox a run of `language` gets, as `[runs.sandbox_images]` says,
    /// removed by its backend after `ttl_seconds`.
    pub fn sandbox_spec(&self, language: &str, ttl_seconds: u64) -> Result<SandboxSpec, WitError> {
        let image = self.sandbox_images.get(language);
        let mounts = image
            .map(|i| {
                i.mounts
                    .iter()
                    .map(|m| parse_mount(m))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(SandboxSpec {
            language: language.to_string(),
            image: image.map(|i| i.image.clone()),
            network: image.is_some_and(|i| i.network),
            ttl_seconds: Some(ttl_seconds),
            mounts,
        })
    }
}

/// `HOST:CONTAINER[:ro]` from `[runs.sandbox_images]`.
fn parse_mount(text: &str) -> Result<Mount, WitError> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, read_only) = match parts.as_slice() {
        [host, container] => (*host, *container, false),
        [host, container, "ro"] => (*host, *container, true),
        [host, container, "rw"] => (*host, *container, false),
        _ => {
            return Err(WitError::InvalidInput(format!(
                "sandbox mount `{text}` in berth.toml is not HOST:CONTAINER[:ro]"
            )));
        }
    };
    Ok(Mount {
        host_path: host.to_string(),
        container_path: container.to_string(),
        read_only,
    })
}
