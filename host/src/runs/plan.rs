//! Executing a runner's plan: write its files into a workspace, prepare or
//! reuse its cached environment, run its build steps, then run the program
//! locally or under `mirrord exec`. Setup and build output is streamed to
//! the caller while it runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::capabilities::HostServices;
use crate::capabilities::grants::Grants;
use crate::contract::bindings::shared::berth::plugin::context::LogLevel;
use crate::contract::bindings::shared::berth::plugin::mirrord::Target;
use crate::contract::bindings::shared::berth::plugin::runner_types::RunPlan;
use crate::contract::bindings::types::{Command, Error as WitError};
use crate::contract::sink::CallSink;
use crate::runs::RunServices;
use crate::sys::cgroup::GroupLimits;
use crate::sys::envcache::{Acquired, EnvLease};
use crate::sys::forkserver::{ForkServer, Launch};
use crate::sys::mirrord::{self, MirrordRun};
use crate::sys::process::{self, ProcessResult, ProcessSpec};
use crate::sys::workspace;

/// Which step of a plan produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Building the cached environment.
    Setup,
    /// The plan's build steps.
    Build,
    /// The program itself.
    Run,
}

/// One plan to execute.
pub struct Execution {
    /// The runner's language.
    pub language: String,
    /// The toolchain's version, part of the environment key.
    pub toolchain: String,
    /// What to do.
    pub plan: RunPlan,
    /// Standard input of the run step.
    pub stdin: Option<Vec<u8>>,
    /// Extra environment of the run step, from the caller.
    pub env: Vec<(String, String)>,
    /// Time limit of the run step.
    pub run_timeout: Duration,
    /// Run the program under mirrord against this target.
    pub mirrord: Option<Target>,
    /// The directory to work in: a session's, or a fresh one when absent.
    pub workdir: Option<PathBuf>,
}

/// Which sandbox a run used.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SandboxUse {
    /// The backend's name.
    pub backend: String,
    /// The sandbox's id.
    pub id: String,
    /// Whether it came ready from the warm pool.
    pub pooled: bool,
}

/// What a plan produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The last step that ran.
    pub phase: Phase,
    /// Its exit code; absent when it was killed.
    pub exit_code: Option<i32>,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
    /// Whether output was cut at the cap.
    pub truncated: bool,
    /// Whether the step was killed at its time limit.
    pub timed_out: bool,
    /// Whether the environment was reused rather than built.
    pub cached_env: bool,
    /// Wall time of the whole plan.
    pub duration_ms: u64,
    /// Whether memory and process limits were enforced (cgroups).
    pub limits_enforced: bool,
    /// Whether the memory limit stopped the step.
    pub memory_exceeded: bool,
    /// Whether the process limit refused a fork.
    pub pids_exceeded: bool,
    /// Whether a fork server with the environment already loaded started
    /// the program.
    pub forked: bool,
    /// The sandbox it ran in, when it ran in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxUse>,
}

/// Limits of setup and build steps, which run package managers and compilers.
const SETUP_LIMITS: GroupLimits = GroupLimits {
    memory_bytes: 4 << 30,
    pids: 1024,
};

/// Which kind of step is running: it decides the limits and whether its
/// output is streamed.
#[derive(Debug, Clone, Copy)]
enum StepKind {
    /// Environment setup or a build step: streamed, generous limits.
    Prepare,
    /// The program: the caller's time limit and the run limits.
    Run(Duration),
}

/// The stable key of an environment: language, toolchain and the runner's
/// own key of the dependency set.
pub fn env_key(language: &str, toolchain: &str, runner_key: &str) -> String {
    let mut hash = Sha256::new();
    for part in [language, toolchain, runner_key] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// Execute `execution` for the runner plugin holding `grants`.
pub async fn execute(
    services: &HostServices,
    runs: &RunServices,
    grants: &Grants,
    execution: Execution,
    sink: Arc<dyn CallSink>,
    cancel: CancellationToken,
) -> Result<Outcome, WitError> {
    let started = Instant::now();
    let fresh;
    let work: PathBuf = match &execution.workdir {
        Some(dir) => dir.clone(),
        None => {
            fresh = workspace::Workspace::create(&services.workspace_root)
                .map_err(|e| WitError::Failed(format!("{e:#}")))?;
            fresh.path().to_path_buf()
        }
    };
    let cache = runs.cache_root.join(sanitize(&execution.language));
    let plan = &execution.plan;
    let env_dir = plan.environment.as_ref().map(|e| {
        runs.envs_root()
            .join(env_key(&execution.language, &execution.toolchain, &e.key))
    });
    let places = Places {
        work: &work,
        env: env_dir.as_deref(),
        cache: &cache,
    };
    for file in &plan.files {
        workspace::write_in(&work, &file.path, &file.contents, file.executable).map_err(
            |e| match e.downcast::<workspace::BadPath>() {
                Ok(bad) => WitError::InvalidInput(format!("the plan's file: {bad}")),
                Err(other) => WitError::Failed(format!("{other:#}")),
            },
        )?;
    }
    std::fs::create_dir_all(&cache).map_err(|e| WitError::Failed(format!("{e}")))?;

    let runner = Steps {
        services,
        runs,
        grants,
        places: &places,
        sink: sink.clone(),
        cancel: cancel.clone(),
    };
    let finish = |phase, result: ProcessResult, cached_env, limits: LimitFlags| Outcome {
        phase,
        exit_code: result.exit_code,
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        truncated: result.truncated,
        timed_out: result.timed_out,
        cached_env,
        duration_ms: started.elapsed().as_millis() as u64,
        limits_enforced: limits.enforced,
        memory_exceeded: limits.memory,
        pids_exceeded: limits.pids,
        forked: result.forked,
        sandbox: None,
    };

    let mut cached_env = false;
    let mut _lease: Option<EnvLease> = None;
    if let (Some(environment), Some(dir)) = (&plan.environment, &env_dir) {
        let key = dir.file_name().unwrap_or_default().to_string_lossy();
        match runs
            .envs
            .acquire(&key, &execution.language)
            .await
            .map_err(|e| WitError::Failed(format!("{e:#}")))?
        {
            Acquired::Ready(lease) => {
                cached_env = true;
                _lease = Some(lease);
            }
            Acquired::Build(build) => {
                sink.log(
                    LogLevel::Info,
                    format!(
                        "preparing the {} environment ({} steps)",
                        execution.language,
                        environment.setup.len()
                    ),
                )
                .await;
                for (i, step) in environment.setup.iter().enumerate() {
                    let total = environment.setup.len() as f64;
                    sink.progress(i as f64, Some(total), Some(describe(step)))
                        .await;
                    let (result, limits) = runner
                        .step(step, StepKind::Prepare, None, &[], None)
                        .await?;
                    if result.exit_code != Some(0) {
                        // `build` is dropped here: the half-built environment is removed.
                        return Ok(finish(Phase::Setup, result, false, limits));
                    }
                }
                _lease = Some(
                    build
                        .finish()
                        .map_err(|e| WitError::Failed(format!("{e:#}")))?,
                );
                let evicted = runs.envs.evict();
                if !evicted.is_empty() {
                    tracing::info!(?evicted, "evicted least recently used environments");
                }
            }
        }
    }

    for step in &plan.build {
        sink.progress(0.0, None, Some(describe(step))).await;
        let (result, limits) = runner
            .step(step, StepKind::Prepare, None, &[], None)
            .await?;
        if result.exit_code != Some(0) {
            return Ok(finish(Phase::Build, result, cached_env, limits));
        }
    }

    let (result, limits) = match &execution.mirrord {
        None => {
            let env_name = env_dir.as_deref().and_then(Path::file_name);
            let server = runner
                .fork_server(&execution, env_name.and_then(|n| n.to_str()))
                .await;
            runner
                .step(
                    &plan.run,
                    StepKind::Run(execution.run_timeout),
                    execution.stdin.clone(),
                    &execution.env,
                    server.as_deref(),
                )
                .await?
        }
        Some(target) => {
            let (program, args, env) = runner.resolve(&plan.run, &execution.env)?;
            let run = MirrordRun {
                target: target.clone(),
                program,
                args,
                env,
                cwd: runner.cwd(&plan.run)?,
                stdin: execution.stdin.clone(),
                timeout: execution.run_timeout,
            };
            let result = mirrord::exec(
                &services.process_slots,
                services.process.max_output_bytes,
                run,
                sink.clone(),
                cancel,
            )
            .await?;
            (result, LimitFlags::default())
        }
    };
    Ok(finish(Phase::Run, result, cached_env, limits))
}

/// The directories placeholders stand for.
pub struct Places<'a> {
    /// `{work}`: the workspace.
    pub work: &'a Path,
    /// `{env}`: the cached environment, when the plan has one.
    pub env: Option<&'a Path>,
    /// `{cache}`: the language's download cache.
    pub cache: &'a Path,
}

impl Places<'_> {
    /// The program of `command` with placeholders filled in, and whether it
    /// lies inside the workspace or environment (built by the plan's own
    /// steps). Any other program must be granted to the runner.
    pub fn program(&self, command: &Command, grants: &Grants) -> Result<(String, bool), WitError> {
        let program = self.substitute(&command.program);
        let path = Path::new(&program);
        let own = path.is_absolute()
            && !program.contains("..")
            && (path.starts_with(self.work) || self.env.is_some_and(|e| path.starts_with(e)));
        if !own && !grants.allows_program(&command.program) {
            return Err(WitError::Denied(format!(
                "the plan runs `{}`, which the runner is not granted; allow it in berth.toml [policy.<runner>] process",
                command.program
            )));
        }
        Ok((program, own))
    }

    /// `command` with placeholders filled in, after the same program check
    /// as on the host: granted to the runner, or built by its own steps.
    pub fn fill(&self, command: &Command, grants: &Grants) -> Result<Command, WitError> {
        let (program, _) = self.program(command, grants)?;
        if let Some((name, _)) = command
            .env
            .iter()
            .find(|(n, _)| process::is_forbidden_env(n))
        {
            return Err(WitError::InvalidInput(format!(
                "environment variable `{name}` may not be set"
            )));
        }
        Ok(Command {
            program,
            args: command.args.iter().map(|a| self.substitute(a)).collect(),
            env: command
                .env
                .iter()
                .map(|(k, v)| (k.clone(), self.substitute(v)))
                .collect(),
            cwd: command.cwd.clone(),
        })
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = text.replace("{work}", &self.work.display().to_string());
        out = out.replace("{cache}", &self.cache.display().to_string());
        if let Some(env) = self.env {
            out = out.replace("{env}", &env.display().to_string());
        }
        out
    }
}

/// What the cgroup of a step reported.
#[derive(Debug, Clone, Copy, Default)]
struct LimitFlags {
    enforced: bool,
    memory: bool,
    pids: bool,
}

/// A step's program, arguments and complete environment.
type Resolved = (PathBuf, Vec<String>, Vec<(String, String)>);

/// Runs single steps of one plan.
struct Steps<'a> {
    services: &'a HostServices,
    runs: &'a RunServices,
    grants: &'a Grants,
    places: &'a Places<'a>,
    sink: Arc<dyn CallSink>,
    cancel: CancellationToken,
}

impl Steps<'_> {
    /// The program, arguments and full environment of `command`, with
    /// placeholders filled in. A program must be granted to the runner, or
    /// live inside the workspace or environment its own steps built.
    fn resolve(
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
                    "environment variable `{name}` may not be set (empty, contains `=`/NUL, or a loader variable)"
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

    fn cwd(&self, command: &Command) -> Result<PathBuf, WitError> {
        match &command.cwd {
            None => Ok(self.places.work.to_path_buf()),
            Some(dir) => workspace::resolve_in(self.places.work, dir)
                .map_err(|bad| WitError::InvalidInput(bad.to_string())),
        }
    }

    /// The ready fork server for the plan's run step, if it offers one.
    /// When it is not running yet it is started in the background, for the
    /// runs after this one.
    async fn fork_server(
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
        Ok(Launch {
            program,
            args,
            env,
            cwd,
            lease,
            cgroup,
        })
    }

    /// Run one step, streaming its output lines to the caller as logs; a
    /// run step goes through `server` when there is one.
    async fn step(
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
        };
        let _slot = self
            .services
            .process_slots
            .acquire()
            .await
            .map_err(|_| WitError::Unavailable("host is shutting down".into()))?;
        let result = match server {
            Some(server) => {
                match process::run_forked(server, spec.clone(), self.cancel.clone()).await {
                    Ok(result) => result,
                    Err(err) => {
                        tracing::warn!(
                            "the fork server did not start the run; starting it directly: {err:#}"
                        );
                        process::run(spec, self.cancel.clone()).await
                    }
                }
            }
            None => process::run(spec, self.cancel.clone()).await,
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
        };
        Ok((result, flags))
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

/// A short description of a step for progress messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.program.clone();
    for arg in command.args.iter().take(6) {
        text.push(' ');
        text.push_str(arg);
    }
    if text.len() > 200 {
        text.truncate(200);
    }
    text
}

/// A language name usable as a directory name.
fn sanitize(language: &str) -> String {
    language
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_depend_on_every_part_and_its_boundaries() {
        let a = env_key("python", "3.11", "requests");
        assert_eq!(a, env_key("python", "3.11", "requests"));
        assert_ne!(a, env_key("python", "3.12", "requests"));
        assert_ne!(a, env_key("node", "3.11", "requests"));
        assert_ne!(env_key("ab", "c", ""), env_key("a", "bc", ""));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn placeholders_are_filled_in() {
        let places = Places {
            work: Path::new("/w"),
            env: Some(Path::new("/e")),
            cache: Path::new("/c"),
        };
        assert_eq!(
            places.substitute("{env}/bin/python {work}/x {cache}"),
            "/e/bin/python /w/x /c"
        );
    }
}
