//! `run_<language>`: one tool per loaded runner plugin. The runner plans,
//! the host executes the plan — locally, or with the run step under
//! `mirrord exec` when a deployment or pod is given.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::capabilities::HostServices;
use crate::contract::bindings::shared::berth::plugin::mirrord::{Target, TargetKind};
use crate::contract::bindings::shared::berth::plugin::runner_types::{RunnerInfo, Snippet};
use crate::contract::bindings::types::{Content, Error as WitError, Tool, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runs::RunServices;
use crate::runs::plan::{self, Execution, Outcome, Phase};
use crate::runs::sandboxed::{self, Sandbox, SandboxPlace};
use crate::runs::sessions;
use crate::runtime::host_tool::HostToolSet;
use crate::runtime::plugin::{Plugin, Runner};
use crate::runtime::registry::Registry;
use crate::sys::process;
use futures::future::BoxFuture;

mod args;
use args::{RunArgs, check, invalid, string_dependency, tool, tool_name};

/// `run_<language>` for every loaded runner. It owns what runs share:
/// the host's process services and the run services (environments, fork
/// servers, pools, kept sandboxes, sessions).
pub struct RunTools {
    services: Arc<HostServices>,
    runs: Arc<RunServices>,
}

impl RunTools {
    /// Tools running plans with `services` and `runs`.
    pub fn new(services: Arc<HostServices>, runs: Arc<RunServices>) -> Self {
        Self { services, runs }
    }
}

impl HostToolSet for RunTools {
    fn name(&self) -> &'static str {
        "run"
    }

    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool> {
        plugins
            .iter()
            .filter_map(|p| p.runner())
            .map(|runner| {
                let item = runner.dependency_schema().cloned();
                tool(runner.info(), &item.unwrap_or_else(string_dependency))
            })
            .collect()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Value,
        registry: Arc<Registry>,
        sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>> {
        Box::pin(async move {
            let language = tool.strip_prefix("run_");
            let runner = registry
                .plugins()
                .filter_map(|p| p.runner())
                .find(|runner| Some(runner.info().language.as_str()) == language)
                .ok_or_else(|| {
                    CallError::Plugin(WitError::NotFound(format!(
                        "runner for `{tool}`; it was unloaded"
                    )))
                })?;
            call(self, &registry, &runner, arguments, sink).await
        })
    }
}

/// Run one `run_<language>` call on `runner`.
async fn call(
    set: &RunTools,
    registry: &Registry,
    runner: &Runner,
    arguments: Value,
    sink: Arc<dyn CallSink>,
) -> Result<ToolOutput, CallError> {
    let (plugin, info) = (runner.plugin(), runner.info());
    let args: RunArgs = serde_json::from_value(arguments)
        .map_err(|e| invalid(format!("arguments of `{}`: {e}", tool_name(info))))?;
    check(&args, &set.runs.config)?;
    let sandbox = match &args.sandbox {
        Some(name) => Some(sandbox_place(set, registry, name, info, &args)?),
        None => None,
    };
    let dependencies = args.dependency_specs();
    let toolchain = toolchain_version(set, plugin, info).await?;
    let snippet = Snippet {
        code: args.code,
        dependencies,
        args: args.args,
        available_programs: available_programs(plugin, info),
    };
    let target = match (args.deployment, args.pod) {
        (Some(name), _) => Some((TargetKind::Deployment, name)),
        (_, Some(name)) => Some((TargetKind::Pod, name)),
        _ => None,
    }
    .map(|(kind, name)| Target {
        kind,
        name,
        namespace: args.namespace,
        config: args.mirrord_config,
    });
    if let Some(target) = &target {
        if let Some(refused) = crate::capabilities::mirrord::target_refusal(plugin.grants(), target)
        {
            return Err(CallError::Plugin(WitError::Denied(
                crate::capabilities::grants::denied(plugin.name(), &refused),
            )));
        }
        crate::sys::mirrord::validate_target(target).map_err(CallError::Plugin)?;
        crate::sys::mirrord::check_target_exists(&set.services.kube, target)
            .await
            .map_err(CallError::Plugin)?;
    }
    let plan = runner.plan(&snippet, sink.clone()).await?;
    let session = match &args.session {
        Some(name) => Some(
            sessions::open(&set.runs, name, &info.language)
                .await
                .map_err(CallError::Plugin)?,
        ),
        None => None,
    };
    let runs = &set.runs.config;
    let execution = Execution {
        language: info.language.clone(),
        toolchain,
        plan,
        stdin: args.stdin.map(String::into_bytes),
        env: args.env.into_iter().collect(),
        run_timeout: Duration::from_secs(args.timeout_secs.unwrap_or(runs.default_timeout_secs)),
        mirrord: target,
        workdir: session.as_ref().map(|s| s.dir().to_path_buf()),
    };
    let cancel = CancellationToken::new();
    let watcher = {
        let sink = sink.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while !sink.cancelled() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cancel.cancel();
        })
    };
    let outcome = match sandbox {
        Some(place) => sandboxed::execute_in_sandbox(plugin.grants(), execution, place, sink).await,
        None => {
            plan::execute(
                &set.services,
                &set.runs,
                plugin.grants(),
                execution,
                sink,
                cancel,
            )
            .await
        }
    };
    watcher.abort();
    Ok(output(&outcome.map_err(CallError::Plugin)?))
}

/// The backend `name` and the sandbox to create on it for this run.
fn sandbox_place(
    set: &RunTools,
    registry: &Registry,
    name: &str,
    info: &RunnerInfo,
    args: &RunArgs,
) -> Result<SandboxPlace, CallError> {
    let runs = &set.runs.config;
    if let Some((kept, turn)) = set.runs.kept_sandboxes.get(name) {
        if kept.language != info.language {
            return Err(invalid(format!(
                "sandbox `{name}` was created for {}, not {}",
                kept.language, info.language
            )));
        }
        return Ok(SandboxPlace {
            backend: registry.backend(&kept.backend).map_err(CallError::Plugin)?,
            sandbox: Sandbox::Kept { id: kept.id, turn },
        });
    }
    let backend = registry.backend(name).map_err(|err| match err {
        WitError::NotFound(message) => CallError::Plugin(WitError::NotFound(format!(
            "sandbox `{name}` is neither a kept sandbox (list_sandboxes) nor a {message}"
        ))),
        other => CallError::Plugin(other),
    })?;
    let timeout = args.timeout_secs.unwrap_or(runs.default_timeout_secs);
    // Room for setup and build besides the run itself.
    let spec = runs
        .sandbox_spec(&info.language, timeout + runs.setup_timeout_secs + 60)
        .map_err(CallError::Plugin)?;
    let pool = runs
        .sandbox_images
        .get(&info.language)
        .and_then(|image| image.pool.get(backend.name()).copied())
        .unwrap_or(0);
    Ok(SandboxPlace {
        backend,
        sandbox: Sandbox::Fresh {
            spec,
            pool,
            pools: set.runs.sandbox_pools.clone(),
        },
    })
}

/// The toolchain version, probed once per runner and host run.
async fn toolchain_version(
    set: &RunTools,
    plugin: &Plugin,
    info: &RunnerInfo,
) -> Result<String, CallError> {
    let key = format!("{}:{}", plugin.name(), info.language);
    if let Some(version) = set
        .runs
        .toolchains
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(version.clone());
    }
    let probe = &info.toolchain_probe;
    if !plugin.grants().allows_program(&probe.program) {
        return Err(CallError::Plugin(WitError::Denied(format!(
            "runner `{}` is not granted `{}`, which it needs to run {} code; allow it in berth.toml [policy.{}] process",
            plugin.name(),
            probe.program,
            info.language,
            plugin.name()
        ))));
    }
    let host_path = std::env::var("PATH").ok();
    let program =
        process::resolve_program(&probe.program, host_path.as_deref()).ok_or_else(|| {
            CallError::Plugin(WitError::Unavailable(format!(
                "`{}` is not installed on the host (not found on PATH); {} snippets need it",
                probe.program, info.language
            )))
        })?;
    let home =
        tempfile::tempdir().map_err(|e| CallError::Plugin(WitError::Failed(e.to_string())))?;
    let mut env = process::base_env(&set.services.process, home.path());
    env.extend(probe.env.iter().cloned());
    let spec = process::ProcessSpec {
        program,
        args: probe.args.clone(),
        env,
        cwd: home.path().to_path_buf(),
        stdin: None,
        timeout: Duration::from_secs(30),
        max_output: 4096,
        lines: None,
        cgroup: None,
        rlimits: None,
    };
    let result = process::run(spec, CancellationToken::new())
        .await
        .map_err(|e| CallError::Plugin(WitError::Failed(format!("probing the toolchain: {e}"))))?;
    if result.exit_code != Some(0) {
        return Err(CallError::Plugin(WitError::Unavailable(format!(
            "`{}` failed (exit {:?}); the {} toolchain is not usable: {}",
            probe.program,
            result.exit_code,
            info.language,
            String::from_utf8_lossy(&result.stderr).trim()
        ))));
    }
    let version = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout).trim(),
        String::from_utf8_lossy(&result.stderr).trim()
    );
    set.runs
        .toolchains
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, version.clone());
    Ok(version)
}

/// The runner's programs that are granted and installed here.
fn available_programs(plugin: &Plugin, info: &RunnerInfo) -> Vec<String> {
    let host_path = std::env::var("PATH").ok();
    info.programs
        .iter()
        .filter(|p| plugin.grants().allows_program(p))
        .filter(|p| process::resolve_program(p, host_path.as_deref()).is_some())
        .cloned()
        .collect()
}

/// The tool result: readable text plus the structured outcome. A run that
/// did not exit 0 is an `isError` result, so the agent sees its output.
fn output(outcome: &Outcome) -> ToolOutput {
    let mut text = String::new();
    let status = match (outcome.exit_code, outcome.timed_out) {
        (_, true) => "timed out".to_string(),
        (Some(code), _) => format!("exit code {code}"),
        (None, _) => "killed by a signal".to_string(),
    };
    let phase = match outcome.phase {
        Phase::Setup => "environment setup",
        Phase::Build => "build",
        Phase::Run => "run",
    };
    text.push_str(&format!(
        "{phase}: {status} in {} ms{}{}\n",
        outcome.duration_ms,
        if outcome.cached_env {
            ", cached environment"
        } else {
            ""
        },
        if outcome.truncated {
            ", output truncated"
        } else {
            ""
        },
    ));
    if outcome.memory_exceeded {
        text.push_str("the memory limit was reached\n");
    }
    if outcome.pids_exceeded {
        text.push_str("the process limit was reached\n");
    }
    if !outcome.stdout.is_empty() {
        text.push_str("--- stdout ---\n");
        text.push_str(&outcome.stdout);
        if !outcome.stdout.ends_with('\n') {
            text.push('\n');
        }
    }
    if !outcome.stderr.is_empty() {
        text.push_str("--- stderr ---\n");
        text.push_str(&outcome.stderr);
    }
    let failed = outcome.phase != Phase::Run || outcome.exit_code != Some(0) || outcome.timed_out;
    ToolOutput {
        content: vec![Content::Text(text)],
        structured: serde_json::to_string(outcome).ok(),
        is_error: failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_phase_is_an_error_result_with_structured_output() {
        let outcome = Outcome {
            phase: Phase::Setup,
            exit_code: Some(1),
            stdout: String::new(),
            stderr: "No matching distribution".into(),
            truncated: false,
            timed_out: false,
            cached_env: false,
            duration_ms: 5,
            limits_enforced: false,
            memory_exceeded: false,
            pids_exceeded: false,
            forked: false,
            isolated: false,
            limits: Vec::new(),
            sandbox: None,
        };
        let out = output(&outcome);
        assert!(out.is_error);
        let structured: Value = serde_json::from_str(out.structured.as_deref().unwrap()).unwrap();
        assert_eq!(structured["phase"], "setup");
        assert_eq!(structured["exit_code"], 1);
    }
}
