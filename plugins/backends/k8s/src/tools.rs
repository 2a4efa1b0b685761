//! The tools this backend serves: workloads (`k8s_deploy` and `k8s_scale`
//! here, status, logs, delete and list shared with every backend through
//! `berth_sdk::workloads`) and kubectl-style actions on any granted object.

use berth_sdk::kube::{self, LogOptions};
use berth_sdk::workloads;
use berth_sdk::{Backend, Port, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::settings::Settings;
use crate::{K8s, deploy_with};

/// Arguments of `k8s_deploy`.
#[derive(Deserialize, JsonSchema)]
struct DeployArgs {
    /// What every platform understands.
    #[serde(flatten)]
    workload: workloads::DeployArgs,
    /// Container ports; the first is forwarded to a loopback port.
    #[serde(default)]
    ports: Vec<u16>,
    /// Replicas (default 1).
    replicas: Option<u32>,
}

/// Arguments of `k8s_scale`.
#[derive(Deserialize, JsonSchema)]
struct ScaleArgs {
    /// Workload name.
    name: String,
    /// Replicas wanted.
    replicas: u32,
}

/// Arguments of `k8s_apply`.
#[derive(Deserialize, JsonSchema)]
struct ApplyArgs {
    /// YAML documents (separated by `---`) or JSON.
    manifests: String,
    /// Namespace for objects that name none; berth's configured one when
    /// absent.
    namespace: Option<String>,
}

/// One object.
#[derive(Deserialize, JsonSchema)]
struct ObjectArgs {
    /// `v1`, `apps/v1`, ...
    api_version: String,
    /// `Pod`, `Deployment`, ...
    kind: String,
    /// Object name.
    name: String,
    /// Namespace; berth's configured one when absent.
    namespace: Option<String>,
}

/// Arguments of `k8s_objects`.
#[derive(Deserialize, JsonSchema)]
struct ListArgs {
    /// `v1`, `apps/v1`, ...
    api_version: String,
    /// `Pod`, `Deployment`, ...
    kind: String,
    /// Namespace; berth's configured one when absent.
    namespace: Option<String>,
    /// Label selector, e.g. `app=web,tier!=db`.
    label_selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    field_selector: Option<String>,
}

/// Arguments of `k8s_pod_logs`.
#[derive(Deserialize, JsonSchema)]
struct PodLogsArgs {
    /// Pod name.
    pod: String,
    /// Container; the pod's only one when absent.
    container: Option<String>,
    /// Only the last lines.
    tail: Option<u32>,
    /// Only lines from the last seconds.
    since_seconds: Option<u32>,
    /// Namespace; berth's configured one when absent.
    namespace: Option<String>,
}

/// Arguments of `k8s_exec`.
#[derive(Deserialize, JsonSchema)]
struct ExecArgs {
    /// Pod name.
    pod: String,
    /// Program and arguments, run without a shell.
    command: Vec<String>,
    /// Container; the pod's only one when absent.
    container: Option<String>,
    /// Text fed to standard input.
    stdin: Option<String>,
    /// Time limit, seconds (default 60).
    timeout_secs: Option<u64>,
    /// Namespace; berth's configured one when absent.
    namespace: Option<String>,
}

/// Arguments of `k8s_port_forward`.
#[derive(Deserialize, JsonSchema)]
struct ForwardArgs {
    /// Pod name.
    pod: String,
    /// Port of the pod.
    port: u16,
    /// Namespace; berth's configured one when absent.
    namespace: Option<String>,
}

/// Arguments of `k8s_stop_forward`.
#[derive(Deserialize, JsonSchema)]
struct StopForwardArgs {
    /// The local address `k8s_port_forward` returned.
    address: String,
}

fn scope(namespace: Option<String>) -> berth_sdk::Result<kube::Scope> {
    let settings = Settings::load()?;
    Ok(kube::scope(
        namespace.as_deref().or(settings.namespace.as_deref()),
    ))
}

fn deploy(a: DeployArgs) -> berth_sdk::Result<ToolOutput> {
    let ports = a
        .ports
        .iter()
        .map(|p| Port {
            container_port: *p,
            host_port: None,
            protocol: "tcp".into(),
        })
        .collect();
    let workload = a.workload.workload(ports)?;
    ToolOutput::json(&deploy_with(&workload, a.replicas.unwrap_or(1))?.to_json())
}

fn objects_json(objects: Vec<Value>) -> berth_sdk::Result<ToolOutput> {
    ToolOutput::json(&json!({ "items": objects }))
}

/// Every tool of the backend.
pub fn toolbox() -> Toolbox {
    let toolbox = Toolbox::new()
        .tool(
            ToolSpec::new(
                "k8s_deploy",
                "Deploy a workload as a Deployment (and a Service for its ports) with safe defaults: non-root, no capabilities, no privilege escalation, read-only root, limits always set, no network unless asked. Waits for the rollout and forwards a loopback port to the first port.",
            )
            .open_world(),
            deploy,
        )
        .tool(
            ToolSpec::new("k8s_scale", "Set the replicas of a workload.").idempotent(),
            |a: ScaleArgs| {
                K8s::status(a.name.clone())?;
                let at = scope(None)?;
                kube::scale(&at, &kube::object("apps/v1", "Deployment", &a.name), a.replicas)?;
                Ok(ToolOutput::text(format!("workload `{}` scaled to {}", a.name, a.replicas)))
            },
        )
        .tool(
            ToolSpec::new(
                "k8s_apply",
                "Server-side apply YAML or JSON manifests. Every document is checked and dry-run before any is applied.",
            )
            .idempotent()
            .open_world(),
            |a: ApplyArgs| objects_json(kube::apply(&scope(a.namespace)?, &a.manifests)?),
        )
        .tool(
            ToolSpec::new("k8s_get", "One object, as JSON.").read_only(),
            |a: ObjectArgs| {
                let object = kube::object(&a.api_version, &a.kind, &a.name);
                ToolOutput::json(&kube::get(&scope(a.namespace)?, &object)?)
            },
        )
        .tool(
            ToolSpec::new("k8s_objects", "Objects of a kind, filtered by label and field selectors.").read_only(),
            |a: ListArgs| {
                let at = scope(a.namespace)?;
                let items = berth_sdk::kube::list_selected(
                    &at,
                    &a.api_version,
                    &a.kind,
                    a.label_selector.as_deref(),
                    a.field_selector.as_deref(),
                )?;
                objects_json(items)
            },
        )
        .tool(
            ToolSpec::new("k8s_delete_object", "Delete one object; its dependents go in the background.")
                .destructive()
                .idempotent(),
            |a: ObjectArgs| {
                let object = kube::object(&a.api_version, &a.kind, &a.name);
                let existed = kube::delete(&scope(a.namespace)?, &object)?;
                Ok(ToolOutput::text(if existed {
                    format!("{}/{} deleted", a.kind, a.name)
                } else {
                    format!("{}/{} did not exist", a.kind, a.name)
                }))
            },
        )
        .tool(
            ToolSpec::new("k8s_pod_logs", "A pod's logs.").read_only(),
            |a: PodLogsArgs| {
                let options = LogOptions {
                    container: a.container,
                    tail_lines: a.tail,
                    since_seconds: a.since_seconds,
                };
                Ok(ToolOutput::text(kube::logs(&scope(a.namespace)?, &a.pod, &options)?))
            },
        )
        .tool(
            ToolSpec::new("k8s_exec", "Run a command in a pod and return its exit code and output.")
                .open_world(),
            |a: ExecArgs| {
                let out = kube::exec(
                    &scope(a.namespace)?,
                    &a.pod,
                    a.container.as_deref(),
                    &a.command,
                    a.stdin.as_ref().map(|s| s.as_bytes()),
                    Some(a.timeout_secs.unwrap_or(60).saturating_mul(1000)),
                )?;
                ToolOutput::json(&json!({
                    "exit_code": out.exit_code,
                    "stdout": String::from_utf8_lossy(&out.stdout),
                    "stderr": String::from_utf8_lossy(&out.stderr),
                    "truncated": out.truncated,
                    "timed_out": out.timed_out,
                }))
            },
        )
        .tool(
            ToolSpec::new(
                "k8s_port_forward",
                "Forward a loopback port on the berth host to a pod's port; returns the local address.",
            ),
            |a: ForwardArgs| {
                let address = kube::port_forward(&scope(a.namespace)?, &a.pod, a.port)?;
                ToolOutput::json(&json!({ "address": address }))
            },
        )
        .tool(
            ToolSpec::new("k8s_stop_forward", "Stop a port-forward opened by k8s_port_forward.").idempotent(),
            |a: StopForwardArgs| {
                let stopped = kube::stop_forward(&a.address)?;
                Ok(ToolOutput::text(if stopped {
                    format!("forward {} stopped", a.address)
                } else {
                    format!("no forward at {}", a.address)
                }))
            },
        );
    workloads::tools::<K8s>(toolbox, "k8s", "k8s_delete")
}
