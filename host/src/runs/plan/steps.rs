//! Running one step of a plan: resolving its program and environment,
//! its cgroup limits, and handing the run step to a fork server when one
//! is ready.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::capabilities::HostServices;
use crate::capabilities::grants::Grants;
use crate::contract::bindings::shared::berth::plugin::context::LogLevel;
use crate::contract::bindings::types::{Command, Error as WitError};
use crate::contract::sink::CallSink;
use crate::runs::RunServices;
use crate::sys::cgroup::GroupLimits;
use crate::sys::envcache::Acquired;
use crate::sys::forkserver::{Confine, ForkServer, Launch};
use crate::sys::isolation::{Isolation, View};
use crate::sys::process::{self, ProcessResult, ProcessSpec};
use crate::sys::rlimits::Rlimits;
use crate::sys::workspace;

use super::places::Places;
use super::{Execution, env_key};

/// Limits of setup and build steps, which run package managers and compilers.
const SETUP_LIMITS: GroupLimits = GroupLimits {
    memory_bytes: 4 << 30,
    pids: 1024,
};

/// Which kind of step is running: it decides the limits and whether its
/// output is streamed.
#[derive(Debug, Clone, Copy)]
pub(super) enum StepKind {
    /// Environment setup or a build step: streamed, generous limits.
    Prepare,
    /// The program: the caller's time limit and the run limits.
    Run(Duration),
}

/// What confined a step, and what its cgroup reported.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LimitFlags {
    /// A cgroup held the step.
    pub(super) enforced: bool,
    pub(super) memory: bool,
    pub(super) pids: bool,
    /// The step ran in a sandbox of its own.
    pub(super) isolated: bool,
    /// The process count was limited inside that sandbox.
    pub(super) processes_set: bool,
    /// The step's processes had berth's resource limits.
    pub(super) rlimits: Option<Rlimits>,
}

impl LimitFlags {
    /// The names of the limits that held.
    pub(super) fn held(&self) -> Vec<&'static str> {
        let mut held = Vec::new();
        if self.enforced {
            held.extend(["cgroup-memory", "cgroup-processes"]);
        }
        if let Some(rlimits) = &self.rlimits {
            held.extend(rlimits.held(self.processes_set));
        }
        held
    }
}

/// A step's program, arguments and complete environment.
type Resolved = (PathBuf, Vec<String>, Vec<(String, String)>);

/// Runs single steps of one plan.
pub(super) struct Steps<'a> {
    pub(super) services: &'a HostServices,
    pub(super) runs: &'a RunServices,
    /// How local steps are confined; `None` runs them with limits only.
    pub(super) isolation: Option<&'a Isolation>,
    pub(super) grants: &'a Grants,
    pub(super) places: &'a Places<'a>,
    pub(super) sink: Arc<dyn CallSink>,
    pub(super) cancel: CancellationToken,
}

impl Steps<'_> {
    /// The program, arguments and full environment of `command`, with
    /// placeholders filled in. A program must be granted to the runner, or
    /// live inside the workspace or environment its own steps built.
    pub(super) fn resolve(
        &self,
        command: &Command,
        extra_env: &[(String, String)],
    ) -> Result<Resolved, WitError> {
        let (program, inside_own_dirs) = self.places.program(command, self.grants)?;
        let resolved = if inside_own_dirs {
            PathBuf::from(&program)
        } else {
            let host_path = std::env::var("PATH").ok();
            process::resolve_program(&program, host_path.as_deref()).ok_or_else(|| {
                WitError::Unavailable(format!(
                    "program `{program}` is not installed on the host (not found on PATH)"
                ))
            })?
        };
        let mut env = process::base_env(&self.services.process, self.places.work);
        for (name, value) in command.env.iter().chain(extra_env) {
            if process::is_forbidden_env(name) {
                return Err(WitError::InvalidInput(format!(
                    "environment variable `{name}` may not be set (malformed, or it would load code or redirect a tool, like LD_*, PATH, NODE_OPTIONS or RUSTC_WRAPPER; the README lists them)"
                )));
            }
            env.retain(|(existing, _)| existing != name);
            env.push((name.clone(), self.places.substitute(value)));
        }
        let args = command
            .args
            .iter()
            .map(|a| self.places.substitute(a))
            .collect();
        Ok((resolved, args, env))
    }

    pub(super) fn cwd(&self, command: &Command) -> Result<PathBuf, WitError> {
        match &command.cwd {
            None => Ok(self.places.work.to_path_buf()),
            Some(dir) => workspace::resolve_in(self.places.work, dir)
                .map_err(|bad| WitError::InvalidInput(bad.to_string())),
        }
    }

    /// The ready fork server for the plan's run step, if it offers one.
    /// When it is not running yet it is started in the background, for the
    /// runs after this one.
    pub(super) async fn fork_server(
        &self,
        execution: &Execution,
        env_name: Option<&str>,
    ) -> Option<Arc<ForkServer>> {
        let command = execution.plan.fork_server.as_ref()?;
        let servers = &self.runs.fork_servers;
        let key = fork_server_key(execution, env_name, command);
        if let Some(server) = servers.ready(&key) {
            return Some(server);
        }
        if servers.wanted(&key) {
            match self.launch(command, &execution.language, env_name).await {
                Ok(launch) => servers.start(key, launch),
                Err(err) => tracing::warn!("the runner's fork server cannot be started: {err}"),
            }
        }
        None
    }

    /// How to start `command` as a fork server: in the environment (or the
    /// language's cache), holding its own lease on the environment and in
    /// a cgroup of its own with the run limits.
    async fn launch(
        &self,
        command: &Command,
        language: &str,
        env_name: Option<&str>,
    ) -> Result<Launch, WitError> {
        let mentions_work = std::iter::once(&command.program)
            .chain(&command.args)
            .chain(command.env.iter().map(|(_, v)| v))
            .chain(&command.cwd)
            .any(|text| text.contains("{work}"));
        if mentions_work {
            return Err(WitError::InvalidInput(
                "a fork server outlives the call, so its command may not use {work}".into(),
            ));
        }
        let (program, args, mut env) = self.resolve(command, &[])?;
        let cwd = self.places.env.unwrap_or(self.places.cache).to_path_buf();
        env.retain(|(name, _)| name != "HOME");
        env.push(("HOME".into(), cwd.display().to_string()));
        let runs = &self.runs;
        let lease = match env_name {
            Some(name) => match runs.envs.acquire(name, language).await {
                Ok(Acquired::Ready(lease)) => Some(lease),
                _ => return Err(WitError::Failed(format!("environment {name} is not ready"))),
            },
            None => None,
        };
        let cgroup = runs
            .cgroups
            .as_ref()
            .and_then(|c| c.create(runs.limits).ok());
        let rlimits = runs.rlimits();
        let (program, args) = match self.isolation {
            // The server sees every workspace directory, so that it can
            // fork runs into them; each run then hides all but its own
            // (`Confine`).
            Some(isolation) => {
                let view = View {
                    writable: vec![
                        self.services.workspace_root.clone(),
                        runs.sessions_root.clone(),
                    ],
                    read_only: vec![cwd.clone()],
                    network: runs.config.network,
                    nested_namespaces: true,
                };
                for dir in &view.writable {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        WitError::Failed(format!("creating {}: {e}", dir.display()))
                    })?;
                }
                isolation.wrap(&program, &args, &cwd, &view, Some(&rlimits))
            }
            None => (program, args),
        };
        Ok(Launch {
            program,
            args,
            env,
            cwd,
            lease,
            cgroup,
            rlimits: Some(rlimits),
        })
    }

    /// Run one step, streaming its output lines to the caller as logs; a
    /// run step goes through `server` when there is one.
    pub(super) async fn step(
        &self,
        command: &Command,
        kind: StepKind,
        stdin: Option<Vec<u8>>,
        extra_env: &[(String, String)],
        server: Option<&ForkServer>,
    ) -> Result<(ProcessResult, LimitFlags), WitError> {
        let (program, args, env) = self.resolve(command, extra_env)?;
        let runs = &self.runs;
        let (limits, timeout, streamed) = match kind {
            StepKind::Prepare => (SETUP_LIMITS, runs.setup_timeout, true),
            StepKind::Run(timeout) => (runs.limits, timeout, false),
        };
        let group = match &runs.cgroups {
            Some(cgroups) => match cgroups.create(limits) {
                Ok(group) => Some(Arc::new(group)),
                Err(err) => {
                    tracing::warn!("running without cgroup limits: {err:#}");
                    None
                }
            },
            None => None,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let forward = {
            let sink = self.sink.clone();
            tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    sink.log(LogLevel::Info, line).await;
                }
            })
        };
        let spec = ProcessSpec {
            program,
            args,
            env,
            cwd: self.cwd(command)?,
            stdin,
            timeout,
            max_output: self.services.process.max_output_bytes,
            lines: streamed.then_some(tx),
            cgroup: group.clone(),
            rlimits: Some(runs.rlimits()),
        };
        let spec_rlimits = spec.rlimits;
        let _slot = self
            .services
            .process_slots
            .acquire()
            .await
            .map_err(|_| WitError::Unavailable("host is shutting down".into()))?;
        let result = match server {
            Some(server) => {
                // A forked run of an isolated server confines itself; it
                // must hide every workspace root but keep its own.
                let hide = [
                    self.services.workspace_root.clone(),
                    runs.sessions_root.clone(),
                ];
                let confine = self.isolation.map(|_| Confine {
                    hide: &hide,
                    keep: self.places.work,
                });
                match process::run_forked(server, spec.clone(), confine, self.cancel.clone()).await
                {
                    Ok(result) => result,
                    Err(err) => {
                        tracing::warn!(
                            "the fork server did not start the run; starting it directly: {err:#}"
                        );
                        process::run(self.direct(spec, kind), self.cancel.clone()).await
                    }
                }
            }
            None => process::run(self.direct(spec, kind), self.cancel.clone()).await,
        }
        .map_err(|e| WitError::Failed(format!("starting `{}`: {e}", command.program)))?;
        let _ = forward.await;
        if result.cancelled {
            return Err(WitError::Failed(
                "the call was cancelled; its processes were killed".into(),
            ));
        }
        let flags = LimitFlags {
            enforced: group.is_some(),
            memory: group.as_ref().is_some_and(|g| g.memory_exceeded()),
            pids: group.as_ref().is_some_and(|g| g.pids_exceeded()),
            isolated: self.isolation.is_some(),
            processes_set: self.isolation.is_some_and(Isolation::limits_processes),
            rlimits: spec_rlimits,
        };
        Ok((result, flags))
    }

    /// What a step of `kind` sees in its sandbox. Setup and build steps
    /// write the environment and the download cache; a run step sees the
    /// environment read-only and no cache, so a snippet cannot change what
    /// later runs load.
    fn view(&self, kind: StepKind) -> View {
        let work = self.places.work.to_path_buf();
        let env = self.places.env.map(std::path::Path::to_path_buf);
        match kind {
            StepKind::Prepare => View {
                writable: [work, self.places.cache.to_path_buf()]
                    .into_iter()
                    .chain(env)
                    .collect(),
                read_only: Vec::new(),
                network: true,
                nested_namespaces: false,
            },
            StepKind::Run(_) => View {
                writable: vec![work],
                read_only: env.into_iter().collect(),
                network: self.runs.config.network,
                nested_namespaces: false,
            },
        }
    }

    /// `spec`, meant for a fork server, rewritten to start directly: in a
    /// sandbox of its own when local runs are isolated.
    fn direct(&self, mut spec: ProcessSpec, kind: StepKind) -> ProcessSpec {
        if let Some(isolation) = self.isolation {
            (spec.program, spec.args) = isolation.wrap(
                &spec.program,
                &spec.args,
                &spec.cwd,
                &self.view(kind),
                spec.rlimits.as_ref(),
            );
        }
        spec
    }
}

/// The fork server key of a plan: its language, toolchain, environment
/// and server command.
fn fork_server_key(execution: &Execution, env_name: Option<&str>, command: &Command) -> String {
    let mut hash = Sha256::new();
    let parts = [env_name.unwrap_or(""), &command.program]
        .into_iter()
        .chain(command.args.iter().map(String::as_str))
        .chain(
            command
                .env
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        )
        .chain(command.cwd.as_deref());
    for part in parts {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    env_key(
        &execution.language,
        &execution.toolchain,
        &hex::encode(hash.finalize()),
    )
}
