//! The Kubernetes backend: sandboxes for `run_<language>` as pods,
//! workloads as deployments with services, and kubectl-style tools, all
//! through the host's `kube` capability (kube-rs in the host; this plugin
//! never sees credentials).
//!
//! Everything it creates carries `app.kubernetes.io/managed-by=berth`, this
//! deployment's owner label, and, with a TTL, an expiry annotation the
//! reaper reads.

mod manifests;
mod settings;
mod tools;

use berth_sdk::kube::{self, ObjectRef, WaitUntil};
use berth_sdk::workloads::{Stamp, now};
use berth_sdk::{
    Backend, Error, ExecRequest, File, Plugin, ProcessOutput, SandboxSpec, Toolbox, Workload,
    WorkloadStatus, state,
};
use manifests::{EXPIRES, NAME, OWNER, SANDBOX_PREFIX};
use serde_json::Value;
use settings::Settings;

struct K8s;

fn pod(name: &str) -> ObjectRef {
    kube::object("v1", "Pod", name)
}

fn deployment(name: &str) -> ObjectRef {
    kube::object("apps/v1", "Deployment", name)
}

fn service(name: &str) -> ObjectRef {
    kube::object("v1", "Service", name)
}

/// The state key holding a workload's port-forward address.
fn forward_key(name: &str) -> String {
    format!("forward/{name}")
}

/// Apply objects (as one JSON array) in the configured namespace.
fn apply(settings: &Settings, objects: &[Value]) -> berth_sdk::Result<()> {
    let text = serde_json::to_string(objects)
        .map_err(|e| Error::failed(format!("serialising manifests: {e}")))?;
    kube::apply(&settings.scope(), &text).map(|_| ())
}

/// Why a pod is not running, from its container statuses, when it says.
fn pod_problem(settings: &Settings, name: &str) -> Option<String> {
    let pod = kube::get(&settings.scope(), &pod(name)).ok()?;
    let statuses = pod["status"]["containerStatuses"].as_array()?;
    statuses.iter().find_map(|s| {
        let waiting = &s["state"]["waiting"];
        let terminated = &s["state"]["terminated"];
        let (state, reason, message) = if waiting.is_object() {
            ("waiting", &waiting["reason"], &waiting["message"])
        } else if terminated.is_object() {
            ("terminated", &terminated["reason"], &terminated["message"])
        } else {
            return None;
        };
        Some(format!(
            "container {} is {state}: {} {}",
            s["name"].as_str().unwrap_or("?"),
            reason.as_str().unwrap_or(""),
            message.as_str().unwrap_or("")
        ))
    })
}

/// A path inside the sandbox workspace, refusing escapes.
fn workspace_path(path: &str) -> berth_sdk::Result<String> {
    berth_sdk::checks::workspace_path("/work", path)
}

fn expired(object: &Value, now: u64) -> bool {
    object["metadata"]["annotations"][EXPIRES]
        .as_str()
        .and_then(|e| e.parse::<u64>().ok())
        .is_some_and(|at| at < now)
}

fn owned(object: &Value) -> bool {
    object["metadata"]["labels"][OWNER].as_str() == Some(berth_sdk::instance().as_str())
}

fn status_of(name: &str, deployment: &Value) -> WorkloadStatus {
    let wanted = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = &deployment["status"];
    let available = status["availableReplicas"].as_i64().unwrap_or(0);
    let failed = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing" && c["status"] == "False");
    let phase = if failed.is_some() {
        "failed"
    } else if wanted == 0 {
        "stopped"
    } else if available >= wanted {
        "running"
    } else {
        "pending"
    };
    let mut endpoints = Vec::new();
    if let Ok(Some(address)) = state::get(&forward_key(name)) {
        endpoints.push(String::from_utf8_lossy(&address).into_owned());
    }
    let namespace = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let message = match failed {
        Some(condition) => condition["message"].as_str().map(String::from),
        None => Some(format!(
            "{available} of {wanted} replicas available in namespace {namespace}"
        )),
    };
    WorkloadStatus {
        name: name.to_string(),
        id: deployment["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        phase: phase.into(),
        endpoints,
        message,
    }
}

/// The pods of a workload, oldest first.
fn workload_pods(settings: &Settings, name: &str) -> berth_sdk::Result<Vec<Value>> {
    let selector = format!("{NAME}={name},{OWNER}={}", berth_sdk::instance());
    kube::list(&settings.scope(), "v1", "Pod", Some(&selector))
}

/// Deploy `workload` with `replicas`, wait for its rollout, and forward a
/// loopback port to its first port. A rollout that fails is removed again.
fn deploy_with(workload: &Workload, replicas: u32) -> berth_sdk::Result<WorkloadStatus> {
    let settings = Settings::load()?;
    let mut objects =
        manifests::workload_objects(workload, replicas, &settings, &Stamp::current())?;
    if !workload.network {
        objects.insert(0, manifests::deny_network());
    }
    apply(&settings, &objects)?;
    let at = settings.scope();
    let name = &workload.name;
    let timeout = settings.ready_timeout_secs * 1000;
    if let Err(err) = kube::wait(&at, &deployment(name), &WaitUntil::RolloutComplete, timeout) {
        let problem = workload_pods(&settings, name)
            .ok()
            .and_then(|pods| {
                pods.first()
                    .and_then(|p| p["metadata"]["name"].as_str().map(String::from))
            })
            .and_then(|p| pod_problem(&settings, &p));
        let _ = remove_workload(&settings, name);
        return Err(Error::failed(format!(
            "workload `{name}` did not become ready and was removed: {}{}",
            err.message(),
            problem.map(|p| format!("; {p}")).unwrap_or_default()
        )));
    }
    if let Some(port) = workload.ports.first() {
        let pods = workload_pods(&settings, name)?;
        let ready = pods.iter().find(|p| p["status"]["phase"] == "Running");
        if let Some(pod_name) = ready.and_then(|p| p["metadata"]["name"].as_str()) {
            let address = kube::port_forward(&at, pod_name, port.container_port)?;
            if let Ok(Some(old)) = state::get(&forward_key(name)) {
                let _ = kube::stop_forward(&String::from_utf8_lossy(&old));
            }
            state::set(&forward_key(name), address.as_bytes())?;
        }
    }
    K8s::status(name.clone())
}

fn remove_workload(settings: &Settings, name: &str) -> berth_sdk::Result<()> {
    let at = settings.scope();
    if let Some(address) = state::get(&forward_key(name))? {
        let _ = kube::stop_forward(&String::from_utf8_lossy(&address));
        state::delete(&forward_key(name))?;
    }
    kube::delete(&at, &service(name))?;
    kube::delete(&at, &deployment(name))?;
    Ok(())
}

impl Backend for K8s {
    fn create_sandbox(spec: SandboxSpec) -> berth_sdk::Result<String> {
        let settings = Settings::load()?;
        let image = spec.checked_image()?;
        let name = berth_sdk::checks::new_sandbox_id(SANDBOX_PREFIX);
        let mut objects = vec![manifests::sandbox_pod(
            &name,
            &image,
            &spec,
            &settings,
            &Stamp::current(),
        )?];
        if !spec.network {
            objects.insert(0, manifests::deny_network());
        }
        apply(&settings, &objects)?;
        let at = settings.scope();
        let ready = WaitUntil::Condition("Ready".into());
        if let Err(err) = kube::wait(&at, &pod(&name), &ready, settings.ready_timeout_secs * 1000) {
            let problem = pod_problem(&settings, &name);
            let _ = kube::delete(&at, &pod(&name));
            return Err(Error::failed(format!(
                "sandbox pod {name} did not become ready and was removed: {}{}",
                err.message(),
                problem.map(|p| format!("; {p}")).unwrap_or_default()
            )));
        }
        Ok(name)
    }

    fn exec(id: String, request: ExecRequest) -> berth_sdk::Result<ProcessOutput> {
        berth_sdk::checks::sandbox_id(&id, SANDBOX_PREFIX)?;
        // `last` changes nothing here: every command is a pod exec.
        let ExecRequest {
            files,
            command,
            stdin,
            timeout_ms,
            last: _,
        } = request;
        let at = Settings::load()?.scope();
        put_files(&at, &id, files)?;
        let cwd = match &command.cwd {
            Some(dir) => workspace_path(dir)?,
            None => "/work".into(),
        };
        let mut argv = vec!["sh".to_string(), "-c".into()];
        match &stdin {
            Some(_) => {
                argv.push("cd \"$0\" || exit 127; n=$1; shift; head -c \"$n\" | \"$@\"".into())
            }
            None => argv.push("cd \"$0\" || exit 127; shift; exec \"$@\" < /dev/null".into()),
        }
        argv.push(cwd);
        argv.push(stdin.as_ref().map_or(0, Vec::len).to_string());
        argv.push("env".into());
        argv.push("HOME=/work".into());
        for (key, value) in &command.env {
            berth_sdk::checks::env_name(key)?;
            argv.push(format!("{key}={value}"));
        }
        argv.push(command.program);
        argv.extend(command.args);
        kube::exec(&at, &id, None, &argv, stdin.as_deref(), timeout_ms)
    }

    fn destroy_sandbox(id: String) -> berth_sdk::Result<()> {
        berth_sdk::checks::sandbox_id(&id, SANDBOX_PREFIX)?;
        kube::delete(&Settings::load()?.scope(), &pod(&id)).map(|_| ())
    }

    fn reap(all_sandboxes: bool) -> berth_sdk::Result<u32> {
        let settings = Settings::load()?;
        let at = settings.scope();
        let now = now();
        let mut removed = 0;
        for sandbox in kube::list(&at, "v1", "Pod", Some(&manifests::selector("sandbox")))? {
            let name = sandbox["metadata"]["name"].as_str().unwrap_or_default();
            if (all_sandboxes || expired(&sandbox, now)) && kube::delete(&at, &pod(name))? {
                removed += 1;
            }
        }
        for workload in kube::list(
            &at,
            "apps/v1",
            "Deployment",
            Some(&manifests::selector("workload")),
        )? {
            let name = workload["metadata"]["name"].as_str().unwrap_or_default();
            if expired(&workload, now) {
                remove_workload(&settings, name)?;
                removed += 1;
            }
        }
        if all_sandboxes {
            // Forwards live in the host process; at start none survive.
            for key in state::keys("forward/")? {
                state::delete(&key)?;
            }
        }
        Ok(removed)
    }

    fn deploy(workload: Workload) -> berth_sdk::Result<WorkloadStatus> {
        deploy_with(&workload, 1)
    }

    fn status(name: String) -> berth_sdk::Result<WorkloadStatus> {
        berth_sdk::checks::name(&name)?;
        let settings = Settings::load()?;
        let not_found = || Error::not_found(format!("workload `{name}`"));
        let object = kube::get(&settings.scope(), &deployment(&name)).map_err(|e| match e {
            Error::NotFound(_) => not_found(),
            other => other,
        })?;
        if !owned(&object) {
            return Err(not_found());
        }
        Ok(status_of(&name, &object))
    }

    fn logs(name: String, tail: Option<u32>) -> berth_sdk::Result<String> {
        Self::status(name.clone())?;
        let settings = Settings::load()?;
        let options = kube::LogOptions {
            container: None,
            tail_lines: Some(tail.unwrap_or(100)),
            since_seconds: None,
        };
        let mut text = String::new();
        for pod in workload_pods(&settings, &name)? {
            let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
            text.push_str(&format!("==> pod/{pod_name} <==\n"));
            match pod["status"]["phase"].as_str() {
                Some("Running" | "Succeeded" | "Failed") => {
                    text.push_str(&kube::logs(&settings.scope(), pod_name, &options)?)
                }
                phase => text.push_str(&format!(
                    "(no logs yet: the pod is {})\n",
                    phase.unwrap_or("starting")
                )),
            }
        }
        Ok(text)
    }

    fn stop(name: String) -> berth_sdk::Result<()> {
        Self::status(name.clone())?;
        remove_workload(&Settings::load()?, &name)
    }

    fn list() -> berth_sdk::Result<Vec<WorkloadStatus>> {
        let settings = Settings::load()?;
        let deployments = kube::list(
            &settings.scope(),
            "apps/v1",
            "Deployment",
            Some(&manifests::selector("workload")),
        )?;
        Ok(deployments
            .iter()
            .map(|d| status_of(d["metadata"]["name"].as_str().unwrap_or_default(), d))
            .collect())
    }
}

impl Plugin for K8s {
    fn description() -> String {
        "Kubernetes: sandboxes as pods, workloads as deployments, and kubectl-style tools".into()
    }

    fn toolbox() -> Toolbox {
        tools::toolbox()
    }
}

berth_sdk::export_backend!(K8s);

/// Write `files` into sandbox `id`'s workspace, one exec each.
fn put_files(at: &kube::Scope, id: &str, files: Vec<File>) -> berth_sdk::Result<()> {
    for file in files {
        let path = workspace_path(&file.path)?;
        let mode = if file.executable { "755" } else { "644" };
        // `head -c` stops after exactly the file's bytes, so this works
        // on API servers whose exec streams cannot signal end of input.
        let script = format!(
            "mkdir -p \"$(dirname \"$0\")\" && head -c \"$1\" > \"$0\" && chmod {mode} \"$0\""
        );
        let command = vec![
            "sh".to_string(),
            "-c".into(),
            script,
            path.clone(),
            file.contents.len().to_string(),
        ];
        let out = kube::exec(at, id, None, &command, Some(&file.contents), Some(60_000))?;
        if out.exit_code != Some(0) {
            return Err(Error::failed(format!(
                "writing {path} in sandbox {id} failed (exit {:?}): {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}
