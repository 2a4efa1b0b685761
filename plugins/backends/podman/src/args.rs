//! The `podman run` flags berth builds: the hardened defaults every
//! container gets, a workload's run arguments, published ports and mounts,
//! and the labels the reaper and `list` read.

use berth_sdk::checks::{env_name, image, name};
use berth_sdk::workloads::Stamp;
use berth_sdk::{
    Command, Error, File, McpTransport, Mount, Port, Resources, SandboxSpec, Workload,
};

use crate::settings::{ROOTS_SETTING, Settings};

/// Label on everything berth creates.
pub const MANAGED: &str = "berth.managed";
/// `sandbox` or `workload`.
pub const KIND: &str = "berth.kind";
/// The workload's own name.
pub const NAME: &str = "berth.name";
/// Unix time after which the reaper removes it; `0` for never.
pub const EXPIRES: &str = "berth.expires";
/// The berth deployment that created it (`berth_sdk::instance`).
pub const OWNER: &str = "berth.owner";
/// Prefix of workload container names.
pub const WORKLOAD_PREFIX: &str = "berth-";
/// Prefix of sandbox container names.
pub const SANDBOX_PREFIX: &str = "berth-sb-";
/// The unprivileged user sandboxes run as.
pub const SANDBOX_USER: &str = "65534:65534";

/// The flags every container gets, with the caller's limits.
pub fn hardened(
    resources: &Resources,
    network: bool,
    writable_root: bool,
    settings: &Settings,
    stamp: &Stamp,
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
        format!("--label={OWNER}={}", stamp.owner),
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

/// The file in the call's workspace that carries a workload's environment
/// to `podman run`: values there are not on its command line, where every
/// local user could read them in `ps` (templates put secrets there).
pub const ENV_FILE: &str = "workload.env";

/// The contents of [`ENV_FILE`] for `workload`, `KEY=VALUE` per line, or
/// nothing when it sets no variables.
pub fn env_file(workload: &Workload) -> berth_sdk::Result<Option<File>> {
    if workload.env.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for (key, value) in &workload.env {
        env_name(key)?;
        // An env file holds one variable per line and has no quoting.
        if value.contains(['\n', '\r', '\0']) {
            return Err(Error::invalid_input(format!(
                "environment variable `{key}` of workload `{}` contains a line break or NUL; podman cannot pass such a value",
                workload.name
            )));
        }
        text.push_str(&format!("{key}={value}\n"));
    }
    Ok(Some(File::new(ENV_FILE, text)))
}

/// The command that connects to the stdio of MCP workload `name`: no
/// detach keys (an MCP message may hold their bytes) and no signals passed
/// on, so ending the attach leaves the server running.
pub fn attach_command(name: &str) -> Command {
    Command::new("podman").args([
        "attach".to_string(),
        "--detach-keys=".into(),
        "--sig-proxy=false".into(),
        format!("{WORKLOAD_PREFIX}{name}"),
    ])
}

/// `podman run` arguments for a workload.
pub fn run_args(
    workload: &Workload,
    settings: &Settings,
    stamp: &Stamp,
) -> berth_sdk::Result<Vec<String>> {
    name(&workload.name)?;
    image(&workload.image)?;
    let mut args = vec![
        "run".to_string(),
        "--detach".into(),
        format!("--name={WORKLOAD_PREFIX}{}", workload.name),
        format!("--label={KIND}=workload"),
        format!("--label={NAME}={}", workload.name),
        format!(
            "--label={EXPIRES}={}",
            stamp.expires_at(workload.ttl_seconds)
        ),
    ];
    if workload.mcp == Some(McpTransport::Stdio) {
        // An MCP server on stdio reads its requests there: stdin stays
        // open for `podman attach` (see `attach_command`).
        args.push("--interactive".into());
    }
    args.extend(hardened(
        &workload.resources,
        workload.network,
        workload.writable_root,
        settings,
        stamp,
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
        args.push(format!("--volume={}", volume(mount, settings)?));
    }
    if !workload.env.is_empty() {
        args.push(format!("--env-file={ENV_FILE}"));
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

/// A mount whose host path lies under an allowed root, as podman's
/// `HOST:CONTAINER:MODE`.
pub fn volume(mount: &Mount, settings: &Settings) -> berth_sdk::Result<String> {
    berth_sdk::checks::mount(mount, &settings.allowed_volume_roots, ROOTS_SETTING)?;
    let mode = if mount.read_only { "ro" } else { "rw" };
    Ok(format!(
        "{}:{}:{mode}",
        mount.host_path, mount.container_path
    ))
}

/// `podman run` arguments for sandbox `name`: an unprivileged user, a
/// writable tmpfs `/work`, and a main process that keeps it alive until
/// its TTL (see `exec`).
pub fn sandbox_args(
    name: &str,
    spec: &SandboxSpec,
    image: String,
    settings: &Settings,
    stamp: &Stamp,
) -> berth_sdk::Result<Vec<String>> {
    let mut args = vec![
        "run".to_string(),
        "--detach".into(),
        // Stdin stays open for the sandbox's last command (see `exec`).
        "--interactive".into(),
        "--rm".into(),
        format!("--name={name}"),
        format!("--label={KIND}=sandbox"),
        format!("--label={EXPIRES}={}", stamp.expires_at(spec.ttl_seconds)),
        format!("--user={SANDBOX_USER}"),
        "--workdir=/work".into(),
        "--tmpfs=/work:rw,exec,mode=1777".into(),
    ];
    let resources = Resources {
        memory_mb: None,
        cpu_millis: None,
        pids: None,
    };
    args.extend(hardened(&resources, spec.network, false, settings, stamp));
    for mount in &spec.mounts {
        args.push(format!("--volume={}", volume(mount, settings)?));
    }
    args.extend(["--".into(), image, "sh".into(), "-c".into()]);
    args.push(crate::exec::main_process(spec.ttl_seconds));
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            owner: "0123abcd".into(),
            now: 1_000,
        }
    }

    fn workload(value: serde_json::Value) -> Workload {
        let args: berth_sdk::workloads::DeployArgs = serde_json::from_value(value).unwrap();
        args.workload(Vec::new()).unwrap()
    }

    fn port(container_port: u16, protocol: &str) -> Port {
        Port {
            container_port,
            host_port: None,
            protocol: protocol.into(),
        }
    }

    #[test]
    fn every_container_is_hardened_and_closed_by_default() {
        let limits = Resources {
            memory_mb: Some(1),
            cpu_millis: Some(1500),
            pids: None,
        };
        let flags = hardened(&limits, false, false, &Settings::default(), &stamp());
        for flag in [
            "--cap-drop=all",
            "--security-opt=no-new-privileges",
            "--read-only",
            "--network=none",
            // Limits below the floor are raised to it.
            "--memory=6m",
            "--cpus=1.500",
            "--pids-limit=256",
            "--label=berth.owner=0123abcd",
        ] {
            assert!(
                flags.iter().any(|f| f == flag),
                "{flag} missing from {flags:?}"
            );
        }
        let open = hardened(&limits, true, true, &Settings::default(), &stamp());
        assert!(
            !open
                .iter()
                .any(|f| f == "--read-only" || f == "--network=none")
        );
    }

    #[test]
    fn a_stdio_mcp_workload_keeps_stdin_open_for_attach() {
        let mut mcp = workload(serde_json::json!({"name": "srv", "image": "img"}));
        mcp.mcp = Some(McpTransport::Stdio);
        let args = run_args(&mcp, &Settings::default(), &stamp()).unwrap();
        assert!(args.iter().any(|a| a == "--interactive"), "{args:?}");
        mcp.mcp = Some(McpTransport::Http);
        let args = run_args(&mcp, &Settings::default(), &stamp()).unwrap();
        assert!(!args.iter().any(|a| a == "--interactive"), "{args:?}");
        let attach = attach_command("srv");
        assert_eq!(attach.program, "podman");
        assert_eq!(
            attach.args,
            ["attach", "--detach-keys=", "--sig-proxy=false", "berth-srv"]
        );
    }

    #[test]
    fn a_workload_environment_travels_in_a_file_not_on_argv() {
        let w = workload(serde_json::json!({
            "name": "web", "image": "nginx", "env": {"API_KEY": "s3cret", "MODE": "a=b c"}
        }));
        let args = run_args(&w, &Settings::default(), &stamp()).unwrap();
        assert!(args.contains(&format!("--env-file={ENV_FILE}")));
        assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
        let file = env_file(&w).unwrap().unwrap();
        assert_eq!(file.path, ENV_FILE);
        assert_eq!(file.contents, b"API_KEY=s3cret\nMODE=a=b c\n");

        let bare = workload(serde_json::json!({"name": "web", "image": "nginx"}));
        assert!(env_file(&bare).unwrap().is_none());
        assert!(
            !run_args(&bare, &Settings::default(), &stamp())
                .unwrap()
                .iter()
                .any(|a| a.starts_with("--env-file"))
        );

        let broken = workload(serde_json::json!({
            "name": "web", "image": "nginx", "env": {"KEY": "two\nlines"}
        }));
        let err = env_file(&broken).unwrap_err();
        assert!(err.message().contains("`KEY`"), "{}", err.message());
    }

    #[test]
    fn a_workload_runs_its_image_after_the_flags() {
        let mut w = workload(serde_json::json!({
            "name": "web", "image": "nginx", "command": ["/bin/server", "--x"], "args": ["y"],
            "network": true, "ttl_seconds": 60
        }));
        w.ports = vec![port(8080, "")];
        let args = run_args(&w, &Settings::default(), &stamp()).unwrap();
        assert!(args.contains(&"--name=berth-web".to_string()));
        assert!(args.contains(&"--publish=127.0.0.1::8080/tcp".to_string()));
        assert!(args.contains(&"--entrypoint=/bin/server".to_string()));
        assert!(args.contains(&"--label=berth.expires=1060".to_string()));
        let image_at = args.iter().position(|a| a == "nginx").unwrap();
        assert_eq!(args[image_at - 1], "--");
        assert_eq!(&args[image_at + 1..], ["--x", "y"]);
    }

    #[test]
    fn ports_need_a_network_and_a_known_protocol() {
        let mut w = workload(serde_json::json!({"name": "web", "image": "nginx"}));
        w.ports = vec![port(80, "tcp")];
        let err = run_args(&w, &Settings::default(), &stamp()).unwrap_err();
        assert!(
            err.message().contains("has no network"),
            "{}",
            err.message()
        );
        let err = publish(&port(80, "sctp")).unwrap_err();
        assert!(err.message().contains("`sctp`"), "{}", err.message());
        assert!(publish(&port(0, "tcp")).is_err());
    }

    #[test]
    fn berth_labels_cannot_be_set_by_a_caller() {
        let mut w = workload(serde_json::json!({"name": "web", "image": "nginx"}));
        w.labels = vec![("berth.owner".into(), "someone-else".into())];
        let err = run_args(&w, &Settings::default(), &stamp()).unwrap_err();
        assert!(err.message().contains("`berth.owner`"), "{}", err.message());
    }

    #[test]
    fn volumes_outside_the_allowed_roots_are_refused() {
        let mount = Mount {
            host_path: "/etc".into(),
            container_path: "/x".into(),
            read_only: true,
        };
        let err = volume(&mount, &Settings::default()).unwrap_err();
        assert!(
            err.message().contains("allowed_volume_roots"),
            "{}",
            err.message()
        );
    }
}
