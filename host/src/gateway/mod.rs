//! The gateway: upstream MCP servers whose tools berth serves as its own,
//! as `SERVER__tool`, with the same validation, filters, audit and limits
//! as every tool. Servers come from `[servers.NAME]` in berth.toml; the
//! agent sees them with `list_servers` and attaches or detaches them with
//! `attach_server` / `detach_server`.

pub mod client;
pub mod config;
pub mod connect;
pub mod convert;
pub mod forward;
pub mod names;
pub mod process;
pub mod sse;
pub mod upstream;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::contract::bindings::types::{Content, Error as WitError, Tool, ToolHints, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::host_tools::templates::Attacher;
use crate::runtime::filter::ToolFilter;
use crate::runtime::host_tool::{HostToolSet, host_tool};
use crate::runtime::limits::LimitsConfig;
use crate::runtime::plugin::Plugin;
use crate::runtime::registry::Registry;
use crate::runtime::world::World;
use config::{AttachMode, ServerConfig, WorkloadTransport};
use connect::Connector;
use upstream::{Source, Upstream};

/// Lists the upstream servers.
pub const LIST_TOOL: &str = "list_servers";
/// Connects a configured server.
pub const ATTACH_TOOL: &str = "attach_server";
/// Disconnects a server and removes its tools.
pub const DETACH_TOOL: &str = "detach_server";
/// Seconds a server has for its handshake unless its entry says otherwise.
const DEFAULT_INIT_TIMEOUT_SECS: u64 = 30;

/// The upstream servers berth knows and the ones it is attached to.
pub struct Gateway {
    connector: Arc<Connector>,
    configured: BTreeMap<String, ServerConfig>,
    attached: RwLock<BTreeMap<String, Arc<Upstream>>>,
    changes: tokio::sync::watch::Sender<u64>,
    refresh: std::sync::OnceLock<RefreshHook>,
    limits: LimitsConfig,
    /// The secrets each deployed workload was given, by (backend,
    /// workload), so an attach later still redacts them.
    given: std::sync::Mutex<BTreeMap<(String, String), Vec<String>>>,
}

/// Rebuilds the owning host's tool set.
pub type RefreshHook = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl Gateway {
    /// A gateway over the `[servers]` entries `configured`; nothing is
    /// connected until [`Gateway::start`].
    pub fn new(
        connector: Connector,
        configured: BTreeMap<String, ServerConfig>,
        limits: LimitsConfig,
    ) -> Self {
        Self {
            connector: Arc::new(connector),
            configured,
            attached: RwLock::default(),
            changes: tokio::sync::watch::channel(0).0,
            refresh: std::sync::OnceLock::new(),
            limits,
            given: Default::default(),
        }
    }

    /// Join the host that owns this gateway: `registry` finds backends for
    /// workload upstreams, `refresh` rebuilds the host's tool set (awaited
    /// by attach and detach, so their answer is already true of
    /// tools/list). Set once.
    pub fn join_host(&self, registry: connect::RegistrySource, refresh: RefreshHook) {
        let _ = self.connector.registry.set(registry);
        let _ = self.refresh.set(refresh);
    }

    /// Rebuild the host's tool set now, when a host has joined.
    async fn refresh_host(&self) {
        if let Some(refresh) = self.refresh.get() {
            refresh().await;
        }
    }

    /// Changes whenever an upstream's tools or connection change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Attach every configured server whose entry says `attach = "start"`;
    /// an entry that is not valid is logged and left out.
    pub fn start(&self) {
        for (name, entry) in &self.configured {
            if entry.attach == AttachMode::Start
                && let Err(err) = self.attach_configured(name)
            {
                tracing::error!(server = %name, "not attached: {err}");
            }
        }
    }

    /// Detach every server (for a berth about to exit).
    pub fn stop(&self) {
        let attached =
            std::mem::take(&mut *self.attached.write().unwrap_or_else(|e| e.into_inner()));
        for upstream in attached.values() {
            upstream.stop();
        }
    }

    fn attach_configured(&self, name: &str) -> Result<(), WitError> {
        let entry = self.configured.get(name).ok_or_else(|| {
            WitError::NotFound(format!(
                "server `{name}` is not configured; configured servers: {}",
                self.configured
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let endpoint = entry
            .endpoint(name)
            .map_err(|e| WitError::InvalidInput(e.to_string()))?;
        self.attach(Upstream::new(
            name,
            Source::Config,
            endpoint,
            entry.tools.clone(),
            Duration::from_secs(entry.init_timeout_secs.unwrap_or(DEFAULT_INIT_TIMEOUT_SECS)),
            self.limits.max_concurrent as usize,
        ))
    }

    /// Attach workload `workload` of `backend` as server `server`.
    pub fn attach_workload(
        &self,
        server: &str,
        backend: &str,
        workload: &str,
        transport: WorkloadTransport,
        redact: Vec<String>,
    ) -> Result<(), WitError> {
        self.check_new_name(server)?;
        let endpoint = config::Endpoint::Workload {
            backend: backend.to_string(),
            workload: workload.to_string(),
            transport,
            redact,
        };
        self.attach(Upstream::new(
            server,
            Source::Template {
                backend: backend.to_string(),
                workload: workload.to_string(),
            },
            endpoint,
            ToolFilter::default(),
            Duration::from_secs(DEFAULT_INIT_TIMEOUT_SECS),
            self.limits.max_concurrent as usize,
        ))
    }

    /// Whether an agent may attach a new server called `server`.
    fn check_new_name(&self, server: &str) -> Result<(), WitError> {
        if !config::is_valid_server_name(server) {
            return Err(WitError::InvalidInput(
                config::ServerConfigError::Name(server.to_string()).to_string(),
            ));
        }
        // A configured name is the operator's; an agent may not shadow it.
        if self.configured.contains_key(server) {
            return Err(WitError::InvalidInput(format!(
                "server name `{server}` belongs to a [servers.{server}] entry of berth.toml; pick another"
            )));
        }
        if self.upstream(server).is_some() {
            return Err(WitError::InvalidInput(format!(
                "server `{server}` is already attached; detach it first or pick another name"
            )));
        }
        Ok(())
    }

    /// Start keeping `upstream` connected and serve its tools; refused when
    /// its name is taken.
    fn attach(&self, upstream: Arc<Upstream>) -> Result<(), WitError> {
        let name = upstream.name().to_string();
        let mut attached = self.attached.write().unwrap_or_else(|e| e.into_inner());
        if attached.contains_key(&name) {
            return Err(WitError::InvalidInput(format!(
                "server `{name}` is already attached; detach it first"
            )));
        }
        let changes = self.changes.clone();
        upstream.start(
            self.connector.clone(),
            Arc::new(move || changes.send_modify(|g| *g += 1)),
        );
        attached.insert(name, upstream);
        drop(attached);
        self.changes.send_modify(|g| *g += 1);
        Ok(())
    }

    fn detach(&self, name: &str) -> Result<(), WitError> {
        let removed = self
            .attached
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        match removed {
            Some(upstream) => {
                upstream.stop();
                self.changes.send_modify(|g| *g += 1);
                Ok(())
            }
            None => Err(WitError::NotFound(format!(
                "server `{name}` is not attached; list_servers shows the attached ones"
            ))),
        }
    }

    fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.attached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn list(&self) -> ToolOutput {
        let attached: Vec<upstream::Summary> = self
            .attached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|u| u.summary())
            .collect();
        let detached: Vec<&String> = self
            .configured
            .keys()
            .filter(|name| !attached.iter().any(|a| &a.name == *name))
            .collect();
        let mut lines: Vec<String> = attached
            .iter()
            .map(|s| {
                let mut line = format!(
                    "{} ({}, {}): {} tools",
                    s.name,
                    s.transport,
                    serde_json::to_value(s.phase)
                        .unwrap_or_default()
                        .as_str()
                        .unwrap_or(""),
                    s.tools.len()
                );
                if let Some(err) = &s.last_error {
                    line.push_str(&format!("; last error: {err}"));
                }
                line
            })
            .collect();
        lines.extend(
            detached
                .iter()
                .map(|n| format!("{n} (configured, not attached)")),
        );
        if lines.is_empty() {
            lines.push("no servers configured; add [servers.NAME] to berth.toml".into());
        }
        ToolOutput {
            content: vec![Content::Text(lines.join("\n"))],
            structured: Some(json!({"servers": attached, "detached": detached}).to_string()),
            is_error: false,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // A host dropped without shutdown must not leave supervisors
        // reconnecting and their processes running.
        self.stop();
    }
}

fn name_argument(arguments: &Value) -> &str {
    arguments
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The gateway's own tools.
fn own_tools() -> Vec<Tool> {
    let name = json!({
        "type": "object",
        "properties": {"name": {"type": "string", "description": "The server's name (the prefix of its tools)."}},
        "required": ["name"],
        "additionalProperties": false
    });
    vec![
        host_tool(
            LIST_TOOL,
            "List upstream MCP servers",
            "List the MCP servers whose tools berth serves as SERVER__tool: how each is reached, whether it is connected, its tools and its last error; and the configured servers not attached.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ToolHints::READ_ONLY | ToolHints::IDEMPOTENT,
        ),
        host_tool(
            ATTACH_TOOL,
            "Attach an MCP server",
            "Connect an MCP server: one configured in berth.toml ([servers.NAME]), or, with `backend` and `workload`, a running workload deployed from an MCP-server template. Its tools join this server's as NAME__tool, and clients are told the tool list changed.",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The server's name (the prefix of its tools): a configured one, or a new one (1-24 of a-z, 0-9, '-') for a workload."},
                    "backend": {"type": "string", "description": "The backend running the workload, e.g. `podman`."},
                    "workload": {"type": "string", "description": "The workload's name, as deploy_template reported it."},
                    "transport": {"type": "string", "enum": ["stdio", "http"], "default": "stdio", "description": "How the workload speaks MCP."}
                },
                "required": ["name"],
                "dependentRequired": {"backend": ["workload"], "workload": ["backend"]},
                "additionalProperties": false
            }),
            ToolHints::OPEN_WORLD,
        ),
        host_tool(
            DETACH_TOOL,
            "Detach an MCP server",
            "Disconnect a server (stopping its process when berth started one) and remove its tools.",
            name,
            ToolHints::DESTRUCTIVE | ToolHints::IDEMPOTENT,
        ),
    ]
}

impl Attacher for Gateway {
    fn check(&self, server: &str) -> Result<(), WitError> {
        self.check_new_name(server)
    }

    fn gave(&self, backend: &str, workload: &str, secrets: Vec<String>) {
        let mut given = self.given.lock().unwrap_or_else(|e| e.into_inner());
        let key = (backend.to_string(), workload.to_string());
        if secrets.is_empty() {
            given.remove(&key);
        } else {
            given.insert(key, secrets);
        }
    }

    fn attach(
        &self,
        server: &str,
        backend: &str,
        workload: &str,
        stdio: bool,
        redact: Vec<String>,
    ) -> Result<(), WitError> {
        let transport = if stdio {
            WorkloadTransport::Stdio
        } else {
            WorkloadTransport::Http
        };
        self.attach_workload(server, backend, workload, transport, redact)
    }
}

fn text(message: String) -> ToolOutput {
    ToolOutput {
        content: vec![Content::Text(message)],
        structured: None,
        is_error: false,
    }
}

impl HostToolSet for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    /// The gateway's own tools while there is something to attach: a
    /// configured server, an attached one, or a backend to deploy template
    /// servers on; then every attached server's tools.
    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool> {
        let attached = self.attached.read().unwrap_or_else(|e| e.into_inner());
        let useful = !self.configured.is_empty()
            || !attached.is_empty()
            || plugins.iter().any(|p| p.world == World::Backend);
        let mut tools = if useful { own_tools() } else { Vec::new() };
        for upstream in attached.values() {
            tools.extend(upstream.tools());
        }
        tools
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Value,
        _: Arc<Registry>,
        sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>> {
        Box::pin(async move {
            match tool {
                LIST_TOOL => Ok(self.list()),
                ATTACH_TOOL => {
                    let name = name_argument(&arguments);
                    let text_of = |key| arguments.get(key).and_then(Value::as_str);
                    match (text_of("backend"), text_of("workload")) {
                        (Some(backend), Some(workload)) => {
                            let transport = match text_of("transport") {
                                Some("http") => WorkloadTransport::Http,
                                _ => WorkloadTransport::Stdio,
                            };
                            let given = self
                                .given
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&(backend.to_string(), workload.to_string()))
                                .cloned()
                                .unwrap_or_default();
                            self.attach_workload(name, backend, workload, transport, given)
                        }
                        _ => self.attach_configured(name),
                    }
                    .map_err(CallError::Plugin)?;
                    self.refresh_host().await;
                    Ok(text(format!(
                        "attaching server `{name}`; its tools appear as {name}__* once it is connected (list_servers shows its state)"
                    )))
                }
                DETACH_TOOL => {
                    let name = name_argument(&arguments);
                    self.detach(name).map_err(CallError::Plugin)?;
                    self.refresh_host().await;
                    Ok(text(format!(
                        "server `{name}` detached; its tools are gone"
                    )))
                }
                served => {
                    let server = served.split_once(names::SEPARATOR).map(|(s, _)| s);
                    let upstream = server.and_then(|s| self.upstream(s)).ok_or_else(|| {
                        CallError::Plugin(WitError::Unavailable(format!(
                            "`{served}` belongs to a server that was detached"
                        )))
                    })?;
                    upstream.call(served, arguments, sink, &self.limits).await
                }
            }
        })
    }
}
