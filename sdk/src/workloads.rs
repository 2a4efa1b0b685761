//! What every workload backend's tools share: the deploy arguments common to
//! all platforms, the arguments naming a workload, and the status, logs,
//! stop and list tools, served through the backend's [`Backend`] methods.
//!
//! ```no_run
//! use berth_sdk::workloads::{self, DeployArgs};
//! use berth_sdk::{Backend, Plugin, ToolOutput, ToolSpec, Toolbox};
//!
//! struct Nomad;
//! impl Backend for Nomad {}
//! impl Plugin for Nomad {
//!     fn toolbox() -> Toolbox {
//!         let toolbox = Toolbox::new().tool(
//!             ToolSpec::new("nomad_deploy", "Deploy a workload on Nomad."),
//!             |args: DeployArgs| {
//!                 let workload = args.workload(Vec::new())?;
//!                 ToolOutput::json(&Nomad::deploy(workload)?.to_json())
//!             },
//!         );
//!         workloads::tools::<Nomad>(toolbox, "nomad", "nomad_stop")
//!     }
//! }
//! berth_sdk::export_backend!(Nomad);
//! ```

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Backend, Error, HealthCheck, Port, Resources, Result, ToolOutput, ToolSpec, Toolbox, Workload,
    WorkloadStatus,
};

/// Seconds since the Unix epoch, the unit of the expiry labels backends put
/// on what they create (0 if the clock is before 1970).
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who creates something and when: what a backend stamps on every object it
/// creates, so that only this deployment lists and reaps it, once its TTL
/// has passed. Taken once per call with [`Stamp::current`]; functions that
/// build manifests or flags take it as an argument, so they stay pure and
/// testable without a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// This berth deployment's id ([`crate::instance`]).
    pub owner: String,
    /// Seconds since the Unix epoch.
    pub now: u64,
}

impl Stamp {
    /// This deployment, now.
    pub fn current() -> Stamp {
        Stamp {
            owner: crate::instance(),
            now: now(),
        }
    }

    /// The Unix time a TTL of `ttl_seconds` ends at, or 0 (never) without
    /// one.
    ///
    /// ```
    /// let stamp = berth_sdk::workloads::Stamp { owner: "a1".into(), now: 100 };
    /// assert_eq!(stamp.expires_at(Some(60)), 160);
    /// assert_eq!(stamp.expires_at(None), 0);
    /// ```
    pub fn expires_at(&self, ttl_seconds: Option<u64>) -> u64 {
        ttl_seconds.map_or(0, |ttl| self.now.saturating_add(ttl))
    }
}

/// Deploy arguments every platform understands. A backend's deploy tool
/// takes these flattened (`#[serde(flatten)]`) next to its own (ports,
/// replicas, volumes), and builds the [`Workload`] with
/// [`DeployArgs::workload`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DeployArgs {
    /// Workload name, a DNS label.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint and its arguments, replacing the image's.
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments after the image.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Memory limit, MiB.
    pub memory_mb: Option<u32>,
    /// CPU limit, thousandths of a core.
    pub cpu_millis: Option<u32>,
    /// Give the workload a network (off by default).
    #[serde(default)]
    pub network: bool,
    /// Keep the root filesystem writable (read-only by default).
    #[serde(default)]
    pub writable_root: bool,
    /// Path of an HTTP health check on the first port.
    pub health_path: Option<String>,
    /// Seconds until the reaper removes it.
    pub ttl_seconds: Option<u64>,
}

impl DeployArgs {
    /// The workload these arguments describe, exposing `ports`; the health
    /// check goes to the first port. Mounts, labels and a process limit are
    /// left for the backend to add.
    ///
    /// ```
    /// let args: berth_sdk::workloads::DeployArgs = serde_json::from_value(
    ///     serde_json::json!({"name": "web", "image": "nginx", "health_path": "/"}),
    /// ).unwrap();
    /// let error = args.workload(Vec::new()).unwrap_err();
    /// assert!(error.message().contains("health_path needs at least one port"));
    /// ```
    pub fn workload(self, ports: Vec<Port>) -> Result<Workload> {
        let health = match (self.health_path, ports.first()) {
            (Some(path), Some(port)) => Some(HealthCheck {
                path,
                port: port.container_port,
            }),
            (Some(_), None) => {
                return Err(Error::invalid_input("health_path needs at least one port"));
            }
            (None, _) => None,
        };
        Ok(Workload {
            name: self.name,
            image: self.image,
            command: self.command,
            args: self.args,
            env: self.env.into_iter().collect(),
            ports,
            resources: Resources {
                memory_mb: self.memory_mb,
                cpu_millis: self.cpu_millis,
                pids: None,
            },
            health,
            mcp: None,
            network: self.network,
            writable_root: self.writable_root,
            mounts: Vec::new(),
            ttl_seconds: self.ttl_seconds,
            labels: Vec::new(),
        })
    }
}

/// Arguments naming one workload.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct NameArgs {
    /// Workload name.
    pub name: String,
}

/// Arguments of a logs tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct LogsArgs {
    /// Workload name.
    pub name: String,
    /// Lines from the end (default 100).
    pub tail: Option<u32>,
}

/// Arguments of a tool that takes none.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// Add `PLATFORM_status`, `PLATFORM_logs`, `PLATFORM_list` and the stop tool
/// `stop_tool` to `toolbox`, each answered by `B`'s [`Backend`] methods.
pub fn tools<B: Backend + 'static>(toolbox: Toolbox, platform: &str, stop_tool: &str) -> Toolbox {
    toolbox
        .tool(
            ToolSpec::new(
                format!("{platform}_status"),
                "Phase and endpoints of a workload.",
            )
            .read_only(),
            |a: NameArgs| ToolOutput::json(&B::status(a.name)?.to_json()),
        )
        .tool(
            ToolSpec::new(
                format!("{platform}_logs"),
                "The last lines of a workload's output.",
            )
            .read_only(),
            |a: LogsArgs| Ok(ToolOutput::text(B::logs(a.name, a.tail)?)),
        )
        .tool(
            ToolSpec::new(
                stop_tool,
                "Stop and remove a workload berth started, with what belongs to it.",
            )
            .destructive()
            .idempotent(),
            |a: NameArgs| {
                B::stop(a.name.clone())?;
                Ok(ToolOutput::text(format!(
                    "workload `{}` stopped and removed",
                    a.name
                )))
            },
        )
        .tool(
            ToolSpec::new(
                format!("{platform}_list"),
                format!("Every workload berth runs on {platform}."),
            )
            .read_only(),
            |_: NoArgs| {
                let all: Vec<Value> = B::list()?.iter().map(WorkloadStatus::to_json).collect();
                ToolOutput::json(&json!({ "workloads": all }))
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> DeployArgs {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_health_check_goes_to_the_first_port() {
        let port = |n| Port {
            container_port: n,
            host_port: None,
            protocol: "tcp".into(),
        };
        let workload = args(json!({"name": "web", "image": "nginx", "health_path": "/up"}))
            .workload(vec![port(8080), port(9090)])
            .unwrap();
        let health = workload.health.unwrap();
        assert_eq!((health.path.as_str(), health.port), ("/up", 8080));
    }

    #[test]
    fn defaults_are_closed() {
        let workload = args(json!({"name": "web", "image": "nginx"}))
            .workload(Vec::new())
            .unwrap();
        assert!(!workload.network && !workload.writable_root);
        assert!(workload.health.is_none() && workload.mounts.is_empty());
    }

    #[test]
    fn expiry_saturates_instead_of_wrapping() {
        let stamp = Stamp {
            owner: "a1".into(),
            now: u64::MAX - 1,
        };
        assert_eq!(stamp.expires_at(Some(60)), u64::MAX);
    }
}
