//! The podman backend: sandboxes for `run_<language>` and long-running
//! workloads as podman containers, driven only through the `process`
//! capability for the `podman` program, reading podman's JSON output.
//!
//! Every container gets safe defaults: `--init`, all capabilities dropped,
//! `no-new-privileges`, a read-only root unless asked otherwise, memory,
//! CPU and process limits, no network unless asked for, published ports
//! bound to 127.0.0.1, and berth's labels (kind, name, expiry) so the
//! reaper can find what outlived its TTL.

mod checks;
mod exec;
mod payload;

use std::time::{SystemTime, UNIX_EPOCH};

use berth_sdk::{
    Backend, Command, Error, ExecRequest, File, HealthCheck, Mount, Plugin, Port, ProcessOutput,
    Resources, SandboxSpec, ToolOutput, ToolSpec, Toolbox, Workload, WorkloadStatus, process,
};
use checks::Settings;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Label on everything berth creates.
const MANAGED: &str = "berth.managed";
/// `sandbox` or `workload`.
const KIND: &str = "berth.kind";
/// The workload's own name.
const NAME: &str = "berth.name";
/// Unix time after which the reaper removes it; `0` for never.
const EXPIRES: &str = "berth.expires";
/// The berth deployment that created it (`berth_sdk::instance`).
const OWNER: &str = "berth.owner";
/// Prefix of workload container names.
const WORKLOAD_PREFIX: &str = "berth-";
/// Prefix of sandbox container names.
const SANDBOX_PREFIX: &str = "berth-sb-";
/// The unprivileged user sandboxes run as.
const SANDBOX_USER: &str = "65534:65534";

struct Podman;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run podman with `args`, failing with podman's own message.
fn podman(args: Vec<String>) -> berth_sdk::Result<String> {
    podman_with(args, Vec::new(), None, None)
}

fn podman_with(
    args: Vec<String>,
    files: Vec<File>,
    stdin: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
) -> berth_sdk::Result<String> {
    let out = process::run_with(Command::new("podman").args(args), files, stdin, timeout_ms)?;
    if out.exit_code != Some(0) {
        return Err(podman_error(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An error carrying podman's message, classified where podman says why.
fn podman_error(out: &ProcessOutput) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let message = format!("podman failed (exit {:?}): {stderr}", out.exit_code);
    if out.timed_out {
        Error::Timeout(message)
    } else if stderr.contains("no such container") || stderr.contains("no container with name") {
        Error::not_found(message)
    } else if stderr.contains("address already in use")
        || stderr.contains("image not known")
        || stderr.contains("manifest unknown")
        || stderr.contains("already in use")
    {
        Error::invalid_input(message)
    } else {
        Error::failed(message)
    }
}

/// The flags every container gets, with the caller's limits.
fn hardened(
    resources: &Resources,
    network: bool,
    writable_root: bool,
    settings: &Settings,
) -> Vec<String> {
    let memory = resources
        .memory_mb
        .unwrap_or(settings.default_memory_mb)
        .max(6);
    let cpus = resources
        .cpu_millis
        .unwrap_or(settings.default_cpu_millis)
        .max(10);
    let pids = resources.pids.unwrap_or(settings.default_pids).max(8);
    let mut flags = vec![
        "--init".to_string(),
        "--cap-drop=all".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--memory={memory}m"),
        format!("--memory-swap={memory}m"),
        format!("--cpus={}.{:03}", cpus / 1000, cpus % 1000),
        format!("--pids-limit={pids}"),
        format!("--pull={}", settings.pull),
        format!("--label={MANAGED}=true"),
        format!("--label={OWNER}={}", berth_sdk::instance()),
    ];
    if !writable_root {
        flags.push("--read-only".into());
        flags.push("--tmpfs=/tmp:rw,exec,mode=1777".into());
    }
    if !network {
        flags.push("--network=none".into());
    }
    flags
}

fn expiry(ttl: Option<u64>) -> String {
    ttl.map_or(0, |t| now().saturating_add(t)).to_string()
}

/// `podman run` arguments for a workload.
fn run_args(workload: &Workload, settings: &Settings) -> berth_sdk::Result<Vec<String>> {
    checks::name(&workload.name)?;
    checks::image(&workload.image)?;
    let mut args = vec![
        "run".to_string(),
        "--detach".into(),
        format!("--name={WORKLOAD_PREFIX}{}", workload.name),
        format!("--label={KIND}=workload"),
        format!("--label={NAME}={}", workload.name),
        format!("--label={EXPIRES}={}", expiry(workload.ttl_seconds)),
    ];
    args.extend(hardened(
        &workload.resources,
        workload.network,
        workload.writable_root,
        settings,
    ));
    if !workload.ports.is_empty() && !workload.network {
        return Err(Error::invalid_input(format!(
            "workload `{}` publishes ports but has no network; set network",
            workload.name
        )));
    }
    for port in &workload.ports {
        args.push(publish(port)?);
    }
    for mount in &workload.mounts {
        args.push(format!("--volume={}", checks::mount(mount, settings)?));
    }
    for (key, value) in &workload.env {
        checks::env_name(key)?;
        args.push(format!("--env={key}={value}"));
    }
    for (key, value) in &workload.labels {
        if key.starts_with("berth.") || key.contains('=') {
            return Err(Error::invalid_input(format!(
                "label `{key}` is reserved or malformed"
            )));
        }
        args.push(format!("--label={key}={value}"));
    }
    if let Some(health) = &workload.health {
        args.push(format!(
            "--label=berth.health={}:{}",
            health.port, health.path
        ));
    }
    if let Some(entry) = workload.command.first() {
        args.push(format!("--entrypoint={entry}"));
    }
    args.push("--".into());
    args.push(workload.image.clone());
    args.extend(workload.command.iter().skip(1).cloned());
    args.extend(workload.args.iter().cloned());
    Ok(args)
}

fn publish(port: &Port) -> berth_sdk::Result<String> {
    if port.container_port == 0 {
        return Err(Error::invalid_input("container port 0 is not a port"));
    }
    let protocol = match port.protocol.as_str() {
        "" | "tcp" => "tcp",
        "udp" => "udp",
        other => {
            return Err(Error::invalid_input(format!(
                "port protocol `{other}` must be tcp or udp"
            )));
        }
    };
    let host = port.host_port.map(|p| p.to_string()).unwrap_or_default();
    Ok(format!(
        "--publish=127.0.0.1:{host}:{}/{protocol}",
        port.container_port
    ))
}

/// A workload's status from `podman inspect` output.
fn status_from_inspect(value: &Value) -> WorkloadStatus {
    let labels = &value["Config"]["Labels"];
    let name = labels[NAME].as_str().unwrap_or_default().to_string();
    let state = &value["State"];
    let phase = match state["Status"].as_str().unwrap_or_default() {
        "running" => "running",
        "created" | "configured" | "initialized" => "pending",
        "exited" | "stopped" if state["ExitCode"].as_i64() == Some(0) => "stopped",
        "exited" | "stopped" | "dead" => "failed",
        _ => "pending",
    };
    let mut endpoints = Vec::new();
    if let Some(ports) = value["NetworkSettings"]["Ports"].as_object() {
        for bindings in ports.values().filter_map(Value::as_array) {
            for b in bindings {
                let ip = b["HostIp"].as_str().unwrap_or("127.0.0.1");
                if let Some(port) = b["HostPort"].as_str().filter(|p| !p.is_empty()) {
                    endpoints.push(format!("{ip}:{port}"));
                }
            }
        }
    }
    let error = state["Error"].as_str().filter(|e| !e.is_empty());
    WorkloadStatus {
        name,
        id: value["Id"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect(),
        phase: phase.into(),
        endpoints,
        message: error.map(String::from).or_else(|| {
            state["Status"]
                .as_str()
                .map(|s| format!("podman state: {s}"))
        }),
    }
}

fn inspect(container: &str) -> berth_sdk::Result<Value> {
    let out = podman(vec![
        "inspect".into(),
        "--type=container".into(),
        container.into(),
    ])?;
    let parsed: Value = serde_json::from_str(&out).map_err(|e| {
        Error::failed(format!(
            "podman inspect printed something that is not JSON: {e}"
        ))
    })?;
    parsed
        .get(0)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("container `{container}`")))
}

/// Containers berth manages, optionally of one kind, from `podman ps`.
fn managed(kind: Option<&str>) -> berth_sdk::Result<Vec<Value>> {
    let mut args = vec![
        "ps".to_string(),
        "--all".into(),
        "--format=json".into(),
        format!("--filter=label={MANAGED}=true"),
        format!("--filter=label={OWNER}={}", berth_sdk::instance()),
    ];
    if let Some(kind) = kind {
        args.push(format!("--filter=label={KIND}={kind}"));
    }
    let out = podman(args)?;
    let parsed: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .map_err(|e| Error::failed(format!("podman ps printed something that is not JSON: {e}")))?;
    Ok(parsed.as_array().cloned().unwrap_or_default())
}

fn remove(container: &str) -> berth_sdk::Result<()> {
    podman(vec![
        "rm".into(),
        "--force".into(),
        "--time=0".into(),
        container.into(),
    ])
    .map(|_| ())
}

impl Backend for Podman {
    fn create_sandbox(spec: SandboxSpec) -> berth_sdk::Result<String> {
        let settings = Settings::load()?;
        let image = spec.checked_image()?;
        let name = berth_sdk::checks::new_sandbox_id(SANDBOX_PREFIX);
        let mut args = vec![
            "run".to_string(),
            "--detach".into(),
            // Stdin stays open for the sandbox's last command (see `exec`).
            "--interactive".into(),
            "--rm".into(),
            format!("--name={name}"),
            format!("--label={KIND}=sandbox"),
            format!("--label={EXPIRES}={}", expiry(spec.ttl_seconds)),
            format!("--user={SANDBOX_USER}"),
            "--workdir=/work".into(),
            "--tmpfs=/work:rw,exec,mode=1777".into(),
        ];
        let resources = Resources {
            memory_mb: None,
            cpu_millis: None,
            pids: None,
        };
        args.extend(hardened(&resources, spec.network, false, &settings));
        for mount in &spec.mounts {
            args.push(format!("--volume={}", checks::mount(mount, &settings)?));
        }
        args.extend(["--".into(), image, "sh".into(), "-c".into()]);
        args.push(exec::main_process(spec.ttl_seconds));
        if let Err(err) = podman(args) {
            // A container that was created but did not start must not linger.
            let _ = remove(&name);
            return Err(err);
        }
        Ok(name)
    }

    fn exec(id: String, request: ExecRequest) -> berth_sdk::Result<ProcessOutput> {
        berth_sdk::checks::sandbox_id(&id, SANDBOX_PREFIX)?;
        exec::run(&id, request)
    }

    fn destroy_sandbox(id: String) -> berth_sdk::Result<()> {
        berth_sdk::checks::sandbox_id(&id, SANDBOX_PREFIX)?;
        match remove(&id) {
            // A sandbox whose last command ended has removed itself.
            Err(Error::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    fn reap(all_sandboxes: bool) -> berth_sdk::Result<u32> {
        let now = now();
        let mut removed = 0;
        for container in managed(None)? {
            let labels = &container["Labels"];
            let is_sandbox = labels[KIND].as_str() == Some("sandbox");
            let expires: u64 = labels[EXPIRES]
                .as_str()
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let expired = expires != 0 && expires < now;
            if (is_sandbox && all_sandboxes) || expired {
                let id = container["Id"].as_str().unwrap_or_default();
                if remove(id).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn deploy(workload: Workload) -> berth_sdk::Result<WorkloadStatus> {
        let settings = Settings::load()?;
        let args = run_args(&workload, &settings)?;
        let container = format!("{WORKLOAD_PREFIX}{}", workload.name);
        if let Err(err) = podman(args) {
            // `podman run` may have created the container before failing to
            // start it (a port in use, say): leave nothing behind, unless
            // the name was taken by an existing workload.
            if !err.message().contains("name") || !err.message().contains("is already in use by") {
                let _ = remove(&container);
            }
            return Err(err);
        }
        Ok(status_from_inspect(&inspect(&container)?))
    }

    fn status(name: String) -> berth_sdk::Result<WorkloadStatus> {
        checks::name(&name)?;
        let not_found = || Error::not_found(format!("workload `{name}`"));
        let value = inspect(&format!("{WORKLOAD_PREFIX}{name}")).map_err(|e| match e {
            Error::NotFound(_) | Error::Failed(_) => not_found(),
            other => other,
        })?;
        // Another deployment's container with the same name is not ours.
        if value["Config"]["Labels"][OWNER].as_str() != Some(berth_sdk::instance().as_str()) {
            return Err(not_found());
        }
        Ok(status_from_inspect(&value))
    }

    fn logs(name: String, tail: Option<u32>) -> berth_sdk::Result<String> {
        checks::name(&name)?;
        let out = process::run(Command::new("podman").args([
            "logs".to_string(),
            format!("--tail={}", tail.unwrap_or(100)),
            format!("{WORKLOAD_PREFIX}{name}"),
        ]))?;
        if out.exit_code != Some(0) {
            return Err(match podman_error(&out) {
                Error::NotFound(_) | Error::Failed(_) => {
                    Error::not_found(format!("workload `{name}`"))
                }
                other => other,
            });
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(text)
    }

    fn stop(name: String) -> berth_sdk::Result<()> {
        checks::name(&name)?;
        Self::status(name.clone())?;
        remove(&format!("{WORKLOAD_PREFIX}{name}"))
    }

    fn list() -> berth_sdk::Result<Vec<WorkloadStatus>> {
        managed(Some("workload"))?
            .iter()
            .filter_map(|c| c["Id"].as_str())
            .map(|id| inspect(id).map(|v| status_from_inspect(&v)))
            .collect()
    }
}

/// A port of `podman_start`.
#[derive(Deserialize, JsonSchema)]
struct PortArg {
    /// Port inside the container.
    container_port: u16,
    /// Loopback port to publish on; podman picks a free one when absent.
    host_port: Option<u16>,
    /// `tcp` (default) or `udp`.
    protocol: Option<String>,
}

/// Arguments of `podman_start`.
#[derive(Deserialize, JsonSchema)]
struct StartArgs {
    /// Workload name, a DNS label; the container is `berth-NAME`.
    name: String,
    /// Image reference.
    image: String,
    /// Entrypoint and its arguments, replacing the image's.
    #[serde(default)]
    command: Vec<String>,
    /// Arguments after the image.
    #[serde(default)]
    args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    /// Ports to publish on 127.0.0.1 (needs `network`).
    #[serde(default)]
    ports: Vec<PortArg>,
    /// `HOST:CONTAINER[:ro]` volumes, within the allowed volume roots.
    #[serde(default)]
    volumes: Vec<String>,
    /// Memory limit, MiB.
    memory_mb: Option<u32>,
    /// CPU limit, thousandths of a core.
    cpu_millis: Option<u32>,
    /// Process limit.
    pids: Option<u32>,
    /// Give the container a network (off by default).
    #[serde(default)]
    network: bool,
    /// Keep the root filesystem writable (read-only by default).
    #[serde(default)]
    writable_root: bool,
    /// Path of an HTTP health check on the first port.
    health_path: Option<String>,
    /// Seconds until the reaper removes it.
    ttl_seconds: Option<u64>,
}

/// Arguments naming one workload.
#[derive(Deserialize, JsonSchema)]
struct NameArgs {
    /// Workload name.
    name: String,
}

/// Arguments of `podman_logs`.
#[derive(Deserialize, JsonSchema)]
struct LogsArgs {
    /// Workload name.
    name: String,
    /// Lines from the end (default 100).
    tail: Option<u32>,
}

/// Arguments of `podman_list`.
#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

fn parse_volume(text: &str) -> berth_sdk::Result<Mount> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, inside, read_only) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        _ => {
            return Err(Error::invalid_input(format!(
                "volume `{text}` is not HOST:CONTAINER[:ro]"
            )));
        }
    };
    Ok(Mount {
        host_path: host.into(),
        container_path: inside.into(),
        read_only,
    })
}

fn start(args: StartArgs) -> berth_sdk::Result<ToolOutput> {
    let ports: Vec<Port> = args
        .ports
        .iter()
        .map(|p| Port {
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: p.protocol.clone().unwrap_or_else(|| "tcp".into()),
        })
        .collect();
    let health = match (&args.health_path, ports.first()) {
        (Some(path), Some(port)) => Some(HealthCheck {
            path: path.clone(),
            port: port.container_port,
        }),
        (Some(_), None) => {
            return Err(Error::invalid_input("health_path needs at least one port"));
        }
        _ => None,
    };
    let workload = Workload {
        name: args.name,
        image: args.image,
        command: args.command,
        args: args.args,
        env: args.env.into_iter().collect(),
        ports,
        resources: Resources {
            memory_mb: args.memory_mb,
            cpu_millis: args.cpu_millis,
            pids: args.pids,
        },
        health,
        mcp: None,
        network: args.network,
        writable_root: args.writable_root,
        mounts: args
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<berth_sdk::Result<_>>()?,
        ttl_seconds: args.ttl_seconds,
        labels: Vec::new(),
    };
    let status = Podman::deploy(workload)?;
    ToolOutput::json(&status.to_json())
}

impl Plugin for Podman {
    fn description() -> String {
        "Containers on podman: sandboxes for run_<language> and workloads, with safe defaults"
            .into()
    }

    fn toolbox() -> Toolbox {
        Toolbox::new()
            .tool(
                ToolSpec::new(
                    "podman_start",
                    "Start a container from an image with safe defaults (no capabilities, no-new-privileges, read-only root, memory/CPU/pids limits, no network unless asked, ports published on 127.0.0.1 only).",
                )
                .open_world(),
                start,
            )
            .tool(
                ToolSpec::new("podman_stop", "Stop and remove a workload started by berth.")
                    .destructive()
                    .idempotent(),
                |a: NameArgs| {
                    Podman::stop(a.name.clone())?;
                    Ok(ToolOutput::text(format!("workload `{}` stopped and removed", a.name)))
                },
            )
            .tool(
                ToolSpec::new("podman_status", "Phase and endpoints of a workload.").read_only(),
                |a: NameArgs| ToolOutput::json(&Podman::status(a.name)?.to_json()),
            )
            .tool(
                ToolSpec::new("podman_logs", "The last lines of a workload's output.").read_only(),
                |a: LogsArgs| Ok(ToolOutput::text(Podman::logs(a.name, a.tail)?)),
            )
            .tool(
                ToolSpec::new("podman_list", "Every workload berth runs on podman.").read_only(),
                |_: NoArgs| {
                    let all: Vec<Value> = Podman::list()?.iter().map(WorkloadStatus::to_json).collect();
                    ToolOutput::json(&json!({ "workloads": all }))
                },
            )
    }
}

berth_sdk::export_backend!(Podman);
