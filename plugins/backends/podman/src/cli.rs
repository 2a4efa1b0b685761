//! Driving the `podman` program through the `process` capability, and
//! reading its JSON output: inspect, ps, rm, and a workload's status.

use berth_sdk::{Command, Error, File, ProcessOutput, WorkloadStatus, process};
use serde_json::Value;

use crate::args::{KIND, MANAGED, NAME, OWNER};

/// Run podman with `args`, failing with podman's own message.
pub fn podman(args: Vec<String>) -> berth_sdk::Result<String> {
    podman_with(args, Vec::new(), None, None)
}

pub fn podman_with(
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
pub fn podman_error(out: &ProcessOutput) -> Error {
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

/// A workload's status from `podman inspect` output.
pub fn status_from_inspect(value: &Value) -> WorkloadStatus {
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

pub fn inspect(container: &str) -> berth_sdk::Result<Value> {
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
pub fn managed(kind: Option<&str>) -> berth_sdk::Result<Vec<Value>> {
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

pub fn remove(container: &str) -> berth_sdk::Result<()> {
    podman(vec![
        "rm".into(),
        "--force".into(),
        "--time=0".into(),
        container.into(),
    ])
    .map(|_| ())
}
