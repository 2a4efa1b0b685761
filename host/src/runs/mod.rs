//! Snippet runs: executing runner plans (locally, under mirrord, or in a
//! sandbox), cached environments, warm sandbox pools, kept sandboxes and
//! sessions.

pub mod config;
pub mod kept;
pub mod plan;
pub mod pool;
pub mod sandboxed;
pub mod sessions;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sys::cgroup::{Cgroups, GroupLimits};
use crate::sys::envcache::EnvCache;
use crate::sys::forkserver::ForkServers;
use config::RunsConfig;

/// What the plan executor shares across runs.
pub struct RunServices {
    /// Cached environments.
    pub envs: EnvCache,
    envs_root: PathBuf,
    /// Per-language download caches (`{cache}`).
    pub cache_root: PathBuf,
    /// Limits of a run step.
    pub limits: GroupLimits,
    /// cgroups, when the host lets berth create them.
    pub cgroups: Option<Cgroups>,
    /// Time limit of each setup and build step.
    pub setup_timeout: Duration,
    /// The configuration these came from.
    pub config: RunsConfig,
    /// Toolchain versions already probed, by runner.
    pub toolchains: Mutex<HashMap<String, String>>,
    /// Where sessions keep their workspaces.
    pub sessions_root: PathBuf,
    /// One lock per session: its calls run one at a time.
    pub session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Pre-loaded interpreters that runners offer for their run steps.
    pub fork_servers: Arc<ForkServers>,
    /// Sandboxes created ahead of the runs that need them.
    pub sandbox_pools: Arc<pool::SandboxPools>,
    /// Sandboxes agents keep across runs (`create_sandbox`).
    pub kept_sandboxes: Arc<kept::KeptSandboxes>,
}

impl RunServices {
    /// Services keeping environments and caches under `data_dir`.
    pub fn new(data_dir: &std::path::Path, config: &RunsConfig) -> Self {
        let envs_root = data_dir.join("envs");
        let cgroups = if config.cgroups {
            Cgroups::detect(std::path::Path::new("/sys/fs/cgroup"))
        } else {
            None
        };
        if cgroups.is_none() {
            tracing::warn!(
                "cannot create cgroups here: snippet memory and process limits are not enforced"
            );
        }
        Self {
            envs: EnvCache::new(envs_root.clone(), config.env_cache_mib << 20),
            envs_root,
            cache_root: data_dir.join("downloads"),
            limits: GroupLimits {
                memory_bytes: config.memory_mib << 20,
                pids: config.pids,
            },
            cgroups,
            setup_timeout: Duration::from_secs(config.setup_timeout_secs),
            config: config.clone(),
            toolchains: Mutex::new(HashMap::new()),
            sessions_root: data_dir.join("sessions"),
            session_locks: Mutex::new(HashMap::new()),
            fork_servers: Arc::new(ForkServers::new(
                config.fork_servers,
                Duration::from_secs(config.fork_server_idle_secs),
            )),
            sandbox_pools: Arc::default(),
            kept_sandboxes: Default::default(),
        }
    }

    /// Where environments live.
    pub fn envs_root(&self) -> &std::path::Path {
        &self.envs_root
    }
}
