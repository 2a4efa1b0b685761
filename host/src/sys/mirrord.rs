//! The mirrord engine: run a command under `mirrord exec`, in the network,
//! environment and file context of a live Kubernetes workload. The
//! `mirrord` capability and the run step of `run_<language>` both use it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::contract::bindings::shared::berth::plugin::mirrord::{Target, TargetKind};
use crate::contract::bindings::types::Error as WitError;
use crate::contract::sink::CallSink;
use crate::sys::kube::names;
use crate::sys::process::{self, ProcessResult, ProcessSpec};

/// How to install mirrord, for the `unavailable` error.
const INSTALL_HINT: &str = "install it with `brew install metalbear-co/mirrord/mirrord` or the script at https://mirrord.dev/docs/overview/quick-start/, then make sure `mirrord` is on berth's PATH";

/// Longest mirrord configuration accepted, bytes.
const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// A resolved command to run under mirrord.
pub struct MirrordRun {
    /// Where it attaches.
    pub target: Target,
    /// The program, resolved to a path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its complete environment.
    pub env: Vec<(String, String)>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// Standard input.
    pub stdin: Option<Vec<u8>>,
    /// Time limit.
    pub timeout: Duration,
}

/// mirrord configuration fields a caller may not set: they would pick
/// another cluster or target than the one granted, or a privileged or
/// foreign agent.
const FORBIDDEN_CONFIG: &[&str] = &[
    "kube_context",
    "kubeconfig",
    "target",
    "agent.privileged",
    "agent.namespace",
    "agent.image",
    "agent.ephemeral",
];

/// Check a target before anything starts.
pub fn validate_target(target: &Target) -> Result<(), WitError> {
    names::check_object_name("target name", &target.name).map_err(WitError::InvalidInput)?;
    if let Some(ns) = &target.namespace {
        names::check_label("namespace", ns).map_err(WitError::InvalidInput)?;
    }
    if let Some(config) = &target.config {
        if config.len() > MAX_CONFIG_BYTES {
            return Err(WitError::InvalidInput(format!(
                "mirrord_config is {} bytes; at most {MAX_CONFIG_BYTES} allowed",
                config.len()
            )));
        }
        match serde_json::from_str::<serde_json::Value>(config) {
            Ok(value @ serde_json::Value::Object(_)) => {
                if let Some(field) = FORBIDDEN_CONFIG.iter().find(|field| {
                    value
                        .pointer(&format!("/{}", field.replace('.', "/")))
                        .is_some_and(|v| !v.is_null() && *v != serde_json::Value::Bool(false))
                }) {
                    return Err(WitError::InvalidInput(format!(
                        "mirrord_config may not set `{field}`: the cluster, target and agent come from the call's arguments and berth's grants"
                    )));
                }
            }
            Ok(_) => {
                return Err(WitError::InvalidInput(
                    "mirrord_config must be a JSON object (mirrord's configuration file format)"
                        .into(),
                ));
            }
            Err(err) => {
                return Err(WitError::InvalidInput(format!(
                    "mirrord_config is not valid JSON: {err}"
                )));
            }
        }
    }
    Ok(())
}

/// Look the target up in the cluster before mirrord starts, so that a
/// missing deployment or pod is reported plainly. When no cluster is
/// configured or reachable the check is skipped and mirrord reports what
/// it finds.
pub async fn check_target_exists(
    clusters: &crate::sys::kube::Clusters,
    target: &Target,
) -> Result<(), WitError> {
    let cluster = match clusters.get(None).await {
        Ok(cluster) => cluster,
        Err(err) => {
            tracing::debug!("mirrord target not checked: {err:?}");
            return Ok(());
        }
    };
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let client = cluster.client.clone();
    let (kind, found) = match target.kind {
        TargetKind::Deployment => (
            "deployment",
            Api::<Deployment>::namespaced(client, &namespace)
                .get_opt(&target.name)
                .await
                .map(|d| d.is_some()),
        ),
        TargetKind::Pod => (
            "pod",
            Api::<Pod>::namespaced(client, &namespace)
                .get_opt(&target.name)
                .await
                .map(|p| p.is_some()),
        ),
    };
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(WitError::NotFound(format!(
            "{kind} `{}` in namespace `{namespace}`; mirrord was not started (list them with k8s_objects)",
            target.name
        ))),
        Err(err) => {
            tracing::warn!("mirrord target not checked, the cluster did not answer: {err}");
            Ok(())
        }
    }
}

/// The `mirrord exec` arguments that run `program args` attached to `target`.
pub fn exec_args(
    target: &Target,
    config_file: Option<&Path>,
    program: &Path,
    args: &[String],
) -> Vec<String> {
    let kind = match target.kind {
        TargetKind::Deployment => "deployment",
        TargetKind::Pod => "pod",
    };
    let mut argv = vec![
        "exec".to_string(),
        "--target".to_string(),
        format!("{kind}/{}", target.name),
    ];
    if let Some(ns) = &target.namespace {
        argv.push("--target-namespace".into());
        argv.push(ns.clone());
    }
    if let Some(file) = config_file {
        argv.push("--config-file".into());
        argv.push(file.display().to_string());
    }
    argv.push("--".into());
    argv.push(program.display().to_string());
    argv.extend(args.iter().cloned());
    argv
}

/// One message of mirrord's JSON progress mode.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "type")]
pub enum ProgressMessage {
    /// A task started.
    NewTask {
        /// Its name.
        name: String,
        /// The task it belongs to; none for the root task.
        parent: Option<String>,
    },
    /// A task ended.
    FinishedTask {
        /// Its name.
        name: String,
        /// Whether it succeeded.
        success: bool,
        /// What it reported.
        message: Option<String>,
    },
    /// A warning.
    Warning {
        /// Its text.
        message: String,
    },
    /// Information.
    Info {
        /// Its text.
        message: String,
    },
}

impl ProgressMessage {
    /// Parse one stdout line, if it is a progress message.
    pub fn parse(line: &str) -> Option<ProgressMessage> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }

    /// Text for a progress notification.
    pub fn describe(&self) -> String {
        match self {
            ProgressMessage::NewTask { name, .. } => format!("mirrord: {name}"),
            ProgressMessage::FinishedTask {
                name,
                success,
                message,
            } => format!(
                "mirrord: {name} {}{}",
                if *success { "done" } else { "failed" },
                message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            ProgressMessage::Warning { message } => format!("mirrord warning: {message}"),
            ProgressMessage::Info { message } => format!("mirrord: {message}"),
        }
    }
}

/// Split mirrord's stdout into its progress messages, whether the program
/// started, and the program's own output, which follows the progress.
/// mirrord reports the start as its `running process` task (or its root
/// task) finishing successfully, with the message `Ready!`, and then
/// replaces itself with the program.
pub fn split_output(stdout: &[u8]) -> (Vec<ProgressMessage>, bool, Vec<u8>) {
    let mut messages = Vec::new();
    let mut root: Option<String> = None;
    let mut started = false;
    let mut rest = stdout;
    while !started {
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let Some(message) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(ProgressMessage::parse)
        else {
            break;
        };
        match &message {
            ProgressMessage::NewTask { name, parent: None } if root.is_none() => {
                root = Some(name.clone())
            }
            ProgressMessage::FinishedTask {
                name,
                success: true,
                message,
            } if Some(name) == root.as_ref()
                || name == "running process"
                || message.as_deref() == Some("Ready!") =>
            {
                started = true;
            }
            _ => {}
        }
        messages.push(message);
        rest = &rest[end + 1..];
    }
    (messages, started, rest.to_vec())
}

/// Run `run` under mirrord. mirrord's own failures (missing target,
/// rejected configuration, no cluster) come back as errors carrying
/// mirrord's message; the program's exit status comes back as a result.
/// mirrord waits for one of `slots`; each of its outputs is capped at
/// `max_output` bytes.
pub async fn exec(
    slots: &Semaphore,
    max_output: usize,
    run: MirrordRun,
    sink: Arc<dyn CallSink>,
    cancel: CancellationToken,
) -> Result<ProcessResult, WitError> {
    validate_target(&run.target)?;
    let host_path = std::env::var("PATH").ok();
    let mirrord = process::resolve_program("mirrord", host_path.as_deref()).ok_or_else(|| {
        WitError::Unavailable(format!(
            "mirrord is not installed on the host; {INSTALL_HINT}"
        ))
    })?;
    let config_file = match &run.target.config {
        Some(config) => {
            let file = tempfile::Builder::new()
                .prefix("berth-mirrord-")
                .suffix(".json")
                .tempfile()
                .map_err(|e| WitError::Failed(format!("writing the mirrord config: {e}")))?;
            std::fs::write(file.path(), config)
                .map_err(|e| WitError::Failed(format!("writing the mirrord config: {e}")))?;
            Some(file)
        }
        None => None,
    };
    let mut env = run.env;
    env.retain(|(name, _)| name != "MIRRORD_PROGRESS_MODE");
    env.push(("MIRRORD_PROGRESS_MODE".into(), "json".into()));
    // mirrord reaches the cluster with the host's kubeconfig, which the
    // workspace HOME would otherwise hide.
    if !env.iter().any(|(name, _)| name == "KUBECONFIG")
        && let Some(kubeconfig) = host_kubeconfig()
    {
        env.push(("KUBECONFIG".into(), kubeconfig));
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let forward = tokio::spawn(async move {
        let mut step = 0.0;
        while let Some(line) = rx.recv().await {
            if let Some(message) = ProgressMessage::parse(&line) {
                step += 1.0;
                sink.progress(step, None, Some(message.describe())).await;
            }
        }
    });
    let spec = ProcessSpec {
        program: mirrord,
        args: exec_args(
            &run.target,
            config_file.as_ref().map(|f| f.path()),
            &run.program,
            &run.args,
        ),
        env,
        cwd: run.cwd,
        stdin: run.stdin,
        timeout: run.timeout,
        max_output,
        lines: Some(tx),
        cgroup: None,
        rlimits: None,
    };
    let _slot = slots
        .acquire()
        .await
        .map_err(|_| WitError::Unavailable("host is shutting down".into()))?;
    let mut result = process::run(spec, cancel)
        .await
        .map_err(|e| WitError::Failed(format!("starting mirrord: {e}")))?;
    let _ = forward.await;
    if result.cancelled {
        return Err(WitError::Failed(
            "the call was cancelled; mirrord and the program were killed".into(),
        ));
    }
    let (_, started, program_stdout) = split_output(&result.stdout);
    if !started && !result.timed_out {
        let stderr = String::from_utf8_lossy(&result.stderr);
        return Err(WitError::InvalidInput(format!(
            "mirrord could not start the program against {}: {}",
            describe_target(&run.target),
            stderr.trim()
        )));
    }
    result.stdout = program_stdout;
    Ok(result)
}

/// `deployment/NAME in NAMESPACE`, for messages.
pub fn describe_target(target: &Target) -> String {
    let kind = match target.kind {
        TargetKind::Deployment => "deployment",
        TargetKind::Pod => "pod",
    };
    match &target.namespace {
        Some(ns) => format!("{kind}/{} in namespace {ns}", target.name),
        None => format!("{kind}/{}", target.name),
    }
}

fn host_kubeconfig() -> Option<String> {
    if let Ok(path) = std::env::var("KUBECONFIG") {
        return Some(path);
    }
    let default = Path::new(&std::env::var("HOME").ok()?).join(".kube/config");
    default.is_file().then(|| default.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, namespace: Option<&str>, config: Option<&str>) -> Target {
        Target {
            kind: TargetKind::Deployment,
            name: name.into(),
            namespace: namespace.map(Into::into),
            config: config.map(Into::into),
        }
    }

    #[test]
    fn a_config_may_not_pick_the_cluster_the_target_or_the_agent() {
        for (config, field) in [
            (r#"{"kube_context": "prod"}"#, "kube_context"),
            (r#"{"kubeconfig": "/root/.kube/other"}"#, "kubeconfig"),
            (
                r#"{"target": {"path": "pod/x", "namespace": "kube-system"}}"#,
                "target",
            ),
            (r#"{"agent": {"privileged": true}}"#, "agent.privileged"),
            (
                r#"{"agent": {"namespace": "kube-system"}}"#,
                "agent.namespace",
            ),
        ] {
            let err = validate_target(&target("api", None, Some(config))).unwrap_err();
            assert!(format!("{err:?}").contains(field), "{config}: {err:?}");
        }
        let harmless =
            r#"{"agent": {"privileged": false}, "feature": {"network": {"incoming": "mirror"}}}"#;
        validate_target(&target("api", None, Some(harmless))).unwrap();
    }

    #[test]
    fn targets_are_checked_before_mirrord_starts() {
        assert!(validate_target(&target("user-service", Some("prod"), Some("{}"))).is_ok());
        let bad = [
            target("User_Service", None, None),
            target("-x", None, None),
            target("ok", Some("a.b"), None),
            target("ok", None, Some("{not json")),
            target("ok", None, Some("[1]")),
        ];
        for t in bad {
            let err = validate_target(&t).unwrap_err();
            assert!(matches!(err, WitError::InvalidInput(_)), "{t:?}: {err:?}");
        }
    }

    #[test]
    fn exec_arguments_follow_the_mirrord_cli() {
        let args = exec_args(
            &target("api", Some("shop"), None),
            Some(Path::new("/tmp/c.json")),
            Path::new("/usr/bin/python3"),
            &["main.py".into()],
        );
        assert_eq!(
            args,
            [
                "exec",
                "--target",
                "deployment/api",
                "--target-namespace",
                "shop",
                "--config-file",
                "/tmp/c.json",
                "--",
                "/usr/bin/python3",
                "main.py"
            ]
        );
    }

    #[test]
    fn progress_is_split_from_the_program_output() {
        let stdout = concat!(
            "{\"type\":\"NewTask\",\"name\":\"mirrord exec\",\"parent\":null}\n",
            "{\"type\":\"NewTask\",\"name\":\"agent\",\"parent\":\"mirrord exec\"}\n",
            "{\"type\":\"Warning\",\"message\":\"careful\"}\n",
            "{\"type\":\"NewTask\",\"name\":\"running process\",\"parent\":\"mirrord exec\"}\n",
            "{\"type\":\"FinishedTask\",\"name\":\"running process\",\"success\":true,\"message\":\"Ready!\"}\n",
            "hello from the pod\n"
        );
        let (messages, started, rest) = split_output(stdout.as_bytes());
        assert_eq!(messages.len(), 5);
        assert!(started);
        assert_eq!(rest, b"hello from the pod\n");

        let failed = concat!(
            "{\"type\":\"NewTask\",\"name\":\"mirrord exec\",\"parent\":null}\n",
            "{\"type\":\"FinishedTask\",\"name\":\"mirrord exec\",\"success\":false,\"message\":null}\n"
        );
        let (_, started, _) = split_output(failed.as_bytes());
        assert!(!started);
    }
}
