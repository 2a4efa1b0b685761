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
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::contract::bindings::types::Error as WitError;
use crate::sys::cgroup::{Cgroups, GroupLimits};
use crate::sys::envcache::EnvCache;
use crate::sys::forkserver::ForkServers;
use crate::sys::isolation::Isolation;
use crate::sys::process::ProcessConfig;
use crate::sys::rlimits::Rlimits;
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
    data_dir: PathBuf,
    /// How local runs are confined, found on first use; the reason when
    /// they cannot be.
    isolation: OnceLock<Result<Isolation, String>>,
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
            data_dir: data_dir.to_path_buf(),
            isolation: OnceLock::new(),
        }
    }

    /// The resource limits every snippet process gets. With a cgroup
    /// around the whole tree, the per-process memory limit sits above the
    /// group's, so that the group is what stops a snippet (and says so).
    pub fn rlimits(&self) -> Rlimits {
        let memory = self.config.memory_mib << 20;
        Rlimits {
            processes: self.config.pids,
            file_bytes: self.config.max_file_mib << 20,
            open_files: self.config.max_open_files,
            data_bytes: if self.cgroups.is_some() {
                memory.saturating_mul(2)
            } else {
                memory
            },
        }
    }

    /// How local runs are confined: `None` when isolation is off or this
    /// host cannot provide it, an error when `require_isolation` then
    /// refuses the run. `process` gives the `PATH` and rustup home whose
    /// runtimes confined runs see.
    pub fn isolation(&self, process: &ProcessConfig) -> Result<Option<&Isolation>, WitError> {
        let found = if self.config.isolate {
            self.isolation
                .get_or_init(|| self.detect_isolation(process))
                .as_ref()
                .map_err(String::as_str)
        } else {
            Err("[runs] isolate is false")
        };
        match found {
            Ok(isolation) => Ok(Some(isolation)),
            Err(reason) if self.config.require_isolation => Err(WitError::Unavailable(format!(
                "berth.toml [runs] require_isolation is set, and local runs cannot be isolated here: {reason}"
            ))),
            Err(_) => Ok(None),
        }
    }

    fn detect_isolation(&self, process: &ProcessConfig) -> Result<Isolation, String> {
        let path = process
            .env_set
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok());
        let mut runtimes: Vec<PathBuf> = path
            .iter()
            .flat_map(|p| std::env::split_paths(p).collect::<Vec<_>>())
            .filter_map(|dir| dir.parent().map(Path::to_path_buf))
            .collect();
        runtimes.extend(process.env_set.get("RUSTUP_HOME").map(PathBuf::from));
        runtimes.extend(self.config.read_only.iter().cloned());
        Isolation::detect(path.as_deref(), &runtimes, &[&self.data_dir]).map_err(|err| {
            tracing::warn!("local runs are not isolated: {err:#}");
            format!("{err:#}")
        })
    }

    /// Where environments live.
    pub fn envs_root(&self) -> &std::path::Path {
        &self.envs_root
    }
}
