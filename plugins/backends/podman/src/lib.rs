//! The podman backend: sandboxes for `run_<language>` and long-running
//! workloads as podman containers, driven only through the `process`
//! capability for the `podman` program, reading podman's JSON output.
//!
//! Every container gets safe defaults: `--init`, all capabilities dropped,
//! `no-new-privileges`, a read-only root unless asked otherwise, memory,
//! CPU and process limits, no network unless asked for, published ports
//! bound to 127.0.0.1, and berth's labels (kind, name, expiry) so the
//! reaper can find what outlived its TTL.

mod args;
mod cli;
mod exec;
mod payload;
mod realpath;
mod settings;
mod tools;

use berth_sdk::workloads::{Stamp, now};
use berth_sdk::{
    Backend, Command, Error, ExecRequest, Plugin, ProcessOutput, SandboxSpec, StdioLink, Toolbox,
    Workload, WorkloadStatus, process,
};

use args::{EXPIRES, KIND, OWNER, SANDBOX_PREFIX, WORKLOAD_PREFIX};
use cli::{inspect, managed, podman, podman_error, podman_with, remove, status_from_inspect};
use settings::Settings;

/// The backend.
struct Podman;

impl Backend for Podman {
    fn create_sandbox(mut spec: SandboxSpec) -> berth_sdk::Result<String> {
        let mut settings = Settings::load()?;
        realpath::resolve(&mut spec.mounts, &mut settings)?;
        let image = spec.checked_image()?;
        let name = berth_sdk::checks::new_sandbox_id(SANDBOX_PREFIX);
        let args = args::sandbox_args(&name, &spec, image, &settings, &Stamp::current())?;
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

    fn deploy(mut workload: Workload) -> berth_sdk::Result<WorkloadStatus> {
        let mut settings = Settings::load()?;
        realpath::resolve(&mut workload.mounts, &mut settings)?;
        let env = args::env_file(&workload)?;
        let args = args::run_args(&workload, &settings, &Stamp::current())?;
        let container = format!("{WORKLOAD_PREFIX}{}", workload.name);
        if let Err(err) = podman_with(args, env.into_iter().collect(), None, None) {
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
        berth_sdk::checks::name(&name)?;
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
        berth_sdk::checks::name(&name)?;
        // Another deployment's container of that name is not ours to read.
        Self::status(name.clone())?;
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
        berth_sdk::checks::name(&name)?;
        Self::status(name.clone())?;
        remove(&format!("{WORKLOAD_PREFIX}{name}"))
    }

    fn attach(name: String) -> berth_sdk::Result<StdioLink> {
        let status = Self::status(name.clone())?;
        if status.phase != "running" {
            return Err(Error::unavailable(format!(
                "workload `{name}` is {} ({}); deploy it again to reconnect",
                status.phase,
                status.message.unwrap_or_default()
            )));
        }
        Ok(StdioLink::Command(args::attach_command(&name)))
    }

    fn list() -> berth_sdk::Result<Vec<WorkloadStatus>> {
        managed(Some("workload"))?
            .iter()
            .filter_map(|c| c["Id"].as_str())
            .map(|id| inspect(id).map(|v| status_from_inspect(&v)))
            .collect()
    }
}

impl Plugin for Podman {
    fn description() -> String {
        "Containers on podman: sandboxes for run_<language> and workloads, with safe defaults"
            .into()
    }

    fn toolbox() -> Toolbox {
        tools::toolbox()
    }
}

berth_sdk::export_backend!(Podman);
