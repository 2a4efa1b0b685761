//! Executing a runner's plan: write its files into a workspace, prepare or
//! reuse its cached environment, run its build steps, then run the program
//! locally or under `mirrord exec`. Setup and build output is streamed to
//! the caller while it runs.

mod places;
mod steps;

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
use crate::contract::bindings::types::Error as WitError;
use crate::contract::sink::CallSink;
use crate::runs::RunServices;
use crate::sys::envcache::{Acquired, EnvLease};
use crate::sys::mirrord::{self, MirrordRun};
use crate::sys::process::ProcessResult;
use crate::sys::workspace;

pub use self::places::{Places, describe};
use self::steps::{LimitFlags, StepKind, Steps};

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
    /// Whether the step ran confined: namespaces of its own, nothing of
    /// berth or of other runs visible (or in a backend's sandbox).
    pub isolated: bool,
    /// The limits that held around the step, by name.
    pub limits: Vec<&'static str>,
    /// The sandbox it ran in, when it ran in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxUse>,
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
    let isolation = runs.isolation(&services.process)?;
    if execution.mirrord.is_some() && runs.config.require_isolation {
        return Err(WitError::Unavailable(
            "berth.toml [runs] require_isolation is set, and a run under mirrord is not isolated locally".into(),
        ));
    }
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
        isolation,
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
        isolated: limits.isolated,
        limits: limits.held(),
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
}
