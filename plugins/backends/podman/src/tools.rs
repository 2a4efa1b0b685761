//! The tools this backend serves: `podman_start` with podman's own
//! arguments (published ports, volumes, a process limit), and the shared
//! workload tools (`podman_status`, `podman_logs`, `podman_stop`,
//! `podman_list`).

use berth_sdk::workloads::{self, DeployArgs};
use berth_sdk::{Backend, Error, Mount, Port, ToolOutput, ToolSpec, Toolbox};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::Podman;

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
    /// What every platform understands.
    #[serde(flatten)]
    workload: DeployArgs,
    /// Ports to publish on 127.0.0.1 (needs `network`).
    #[serde(default)]
    ports: Vec<PortArg>,
    /// `HOST:CONTAINER[:ro]` volumes, within the allowed volume roots.
    #[serde(default)]
    volumes: Vec<String>,
    /// Process limit.
    pids: Option<u32>,
}

/// A `HOST:CONTAINER[:ro|:rw]` volume argument as a mount.
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
    let ports = args
        .ports
        .into_iter()
        .map(|p| Port {
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: p.protocol.unwrap_or_else(|| "tcp".into()),
        })
        .collect();
    let mut workload = args.workload.workload(ports)?;
    workload.resources.pids = args.pids;
    workload.mounts = args
        .volumes
        .iter()
        .map(|v| parse_volume(v))
        .collect::<berth_sdk::Result<_>>()?;
    ToolOutput::json(&Podman::deploy(workload)?.to_json())
}

/// Every tool of the backend.
pub fn toolbox() -> Toolbox {
    let toolbox = Toolbox::new().tool(
        ToolSpec::new(
            "podman_start",
            "Start a container from an image with safe defaults (no capabilities, no-new-privileges, read-only root, memory/CPU/pids limits, no network unless asked, ports published on 127.0.0.1 only).",
        )
        .open_world(),
        start,
    );
    workloads::tools::<Podman>(toolbox, "podman", "podman_stop")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_host_container_and_an_optional_mode() {
        let ro = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (
                ro.host_path.as_str(),
                ro.container_path.as_str(),
                ro.read_only
            ),
            ("/srv/data", "/data", true)
        );
        assert!(!parse_volume("/a:/b").unwrap().read_only);
        let err = parse_volume("/a:/b:rx").unwrap_err();
        assert!(err.message().contains("`/a:/b:rx`"), "{}", err.message());
    }

    #[test]
    fn start_arguments_take_the_shared_fields_flattened() {
        let args: StartArgs = serde_json::from_value(serde_json::json!({
            "name": "web", "image": "nginx", "ports": [{"container_port": 80}],
            "pids": 64, "network": true
        }))
        .unwrap();
        assert_eq!(args.workload.name, "web");
        assert!(args.workload.network);
        assert_eq!((args.ports.len(), args.pids), (1, Some(64)));
    }
}
