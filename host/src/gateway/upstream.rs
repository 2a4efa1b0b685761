//! One upstream MCP server: a supervisor that keeps it connected
//! (reconnecting with backoff, pinging it while connected) and its current
//! tools. Forwarding calls to it is [`super::forward`]'s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ClientRequest, ServerNotification, SubscriptionFilter};
use rmcp::service::ServiceError;
use rmcp::{Peer, RoleClient};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{Calls, Handler};
use super::config::Endpoint;
use super::connect::Connector;
use super::{convert, names};
use crate::contract::bindings::types::{Tool, ToolHints};
use crate::runtime::filter::ToolFilter;
use crate::state::secrets::Redactor;

/// First wait before reconnecting; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Time an upstream has to list its tools.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a connected upstream is pinged: an HTTP server that went
/// away is noticed by the next request, and there may be none for a while.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// Time an upstream has to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an upstream's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The first connection is being made.
    Connecting,
    /// Connected; its tools are served.
    Connected,
    /// The connection failed or ended; berth is trying again.
    Reconnecting,
}

/// One upstream tool as berth serves it.
#[derive(Clone)]
pub(super) struct Served {
    /// The name berth serves it under.
    pub(super) name: String,
    /// The name the upstream knows it by.
    pub(super) original: String,
    /// The contract form.
    tool: Tool,
}

/// One live connection: what a call needs to use it.
#[derive(Clone)]
pub(super) struct Live {
    /// The MCP session.
    pub(super) peer: Peer<RoleClient>,
    /// Its calls in flight, by progress token (tokens are per session).
    pub(super) calls: Arc<Calls>,
    /// Woken when a call finds this connection broken.
    pub(super) broken: Arc<Notify>,
    /// Redacts the secrets this connection was given.
    pub(super) redactor: Arc<Redactor>,
}

/// What clients see of a served tool, to tell whether a new list differs.
fn signature(served: &Served) -> (&str, &str, &str, Option<&str>, Option<&str>, ToolHints) {
    let tool = &served.tool;
    (
        &tool.name,
        &tool.description,
        &tool.input_schema,
        tool.output_schema.as_deref(),
        tool.title.as_deref(),
        tool.hints,
    )
}

pub(super) struct State {
    phase: Phase,
    /// The connection, while there is one.
    pub(super) live: Option<Live>,
    /// The tools, kept while reconnecting.
    pub(super) tools: Vec<Served>,
    pub(super) last_error: Option<String>,
    attempts: u32,
    since: Instant,
}

impl State {
    /// Serve `tools` from now on; whether clients see a difference.
    fn replace_tools(&mut self, tools: Vec<Served>) -> bool {
        let differs = self
            .tools
            .iter()
            .map(signature)
            .ne(tools.iter().map(signature));
        self.tools = tools;
        differs
    }
}

/// What started an upstream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A `[servers.NAME]` entry.
    Config,
    /// A workload deployed from a template.
    Template {
        /// The backend that runs it.
        backend: String,
        /// The workload's name.
        workload: String,
    },
}

/// An upstream and its supervisor.
pub struct Upstream {
    pub(super) name: String,
    source: Source,
    endpoint: Endpoint,
    filter: ToolFilter,
    init_timeout: Duration,
    state: Mutex<State>,
    stop: CancellationToken,
    /// Calls that may be in flight at once (`[limits] max_concurrent`);
    /// more wait their turn.
    pub(super) slots: tokio::sync::Semaphore,
}

/// How `list_servers` shows an upstream.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Its name, the prefix of its tools.
    pub name: String,
    /// What started it.
    pub source: Source,
    /// `stdio` or the URL's transport.
    pub transport: &'static str,
    /// Where its connection stands.
    pub phase: Phase,
    /// Tools it serves through berth.
    pub tools: Vec<String>,
    /// The last connection error, while reconnecting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed attempts since the last good connection.
    pub attempts: u32,
    /// Seconds in the current phase.
    pub for_secs: u64,
}

impl Upstream {
    /// An upstream named `name` at `endpoint`, not yet connected.
    pub fn new(
        name: &str,
        source: Source,
        endpoint: Endpoint,
        filter: ToolFilter,
        init_timeout: Duration,
        max_concurrent: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            source,
            endpoint,
            filter,
            init_timeout,
            state: Mutex::new(State {
                phase: Phase::Connecting,
                live: None,
                tools: Vec::new(),
                last_error: None,
                attempts: 0,
                since: Instant::now(),
            }),
            stop: CancellationToken::new(),
            slots: tokio::sync::Semaphore::new(max_concurrent.max(1)),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its tools as berth serves them (the last known ones while it
    /// reconnects: they answer `unavailable` until it is back).
    pub fn tools(&self) -> Vec<Tool> {
        self.state().tools.iter().map(|s| s.tool.clone()).collect()
    }

    /// How `list_servers` shows it.
    pub fn summary(&self) -> Summary {
        let state = self.state();
        Summary {
            name: self.name.clone(),
            source: self.source.clone(),
            transport: match &self.endpoint {
                Endpoint::Command { .. } => "stdio",
                Endpoint::Workload { transport, .. } => match transport {
                    super::config::WorkloadTransport::Stdio => "stdio (backend attach)",
                    super::config::WorkloadTransport::Http => "streamable-http (workload)",
                },
                Endpoint::Url { transport, .. } => match transport {
                    super::config::HttpTransport::StreamableHttp => "streamable-http",
                    super::config::HttpTransport::Sse => "sse",
                },
            },
            phase: state.phase,
            tools: state.tools.iter().map(|s| s.name.clone()).collect(),
            last_error: state.last_error.clone(),
            attempts: state.attempts,
            for_secs: state.since.elapsed().as_secs(),
        }
    }

    /// Keep it connected until [`Upstream::stop`]; `changed` is called
    /// whenever its tools change.
    pub fn start(
        self: &Arc<Self>,
        connector: Arc<Connector>,
        changed: Arc<dyn Fn() + Send + Sync>,
    ) {
        let upstream = self.clone();
        tokio::spawn(async move { upstream.supervise(connector, changed).await });
    }

    /// Disconnect for good: the process (if any) is stopped, calls in
    /// flight fail as `unavailable`.
    pub fn stop(&self) {
        self.stop.cancel();
        self.slots.close();
    }

    async fn supervise(
        self: Arc<Self>,
        connector: Arc<Connector>,
        changed: Arc<dyn Fn() + Send + Sync>,
    ) {
        let mut backoff = FIRST_BACKOFF;
        while !self.stop.is_cancelled() {
            let error = match self.session(&connector, &changed).await {
                Ok(()) => break,
                Err(error) => error,
            };
            let ran_well = {
                let mut state = self.state();
                let ran_well = state.phase == Phase::Connected;
                if ran_well {
                    state.attempts = 0;
                }
                state.attempts += 1;
                state.phase = Phase::Reconnecting;
                state.live = None;
                state.last_error = Some(error.clone());
                state.since = Instant::now();
                ran_well
            };
            if ran_well {
                backoff = FIRST_BACKOFF;
            }
            // Its tools stay listed (they answer `unavailable`), so the
            // host's tool set is unchanged.
            tracing::warn!(server = %self.name, retry_in_ms = backoff.as_millis() as u64, "upstream unavailable: {error}");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.state().live = None;
    }

    /// `work`, unless the upstream is stopped first (`None`).
    async fn unless_stopped<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            out = work => Some(out),
            () = self.stop.cancelled() => None,
        }
    }

    /// One connection, from connect to its end: `Ok` when stopped, the
    /// reason otherwise, with the secrets it was given redacted.
    async fn session(
        &self,
        connector: &Connector,
        changed: &Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), String> {
        let resolved = connector.resolve(&self.endpoint)?;
        let redactor = resolved.redactor.clone();
        self.connected(connector, resolved, changed)
            .await
            .map_err(|e| redactor.redact(&e))
    }

    async fn connected(
        &self,
        connector: &Connector,
        resolved: super::connect::Resolved,
        changed: &Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), String> {
        let tools_changed = Arc::new(Notify::new());
        let calls = Arc::new(Calls::default());
        let handler = Handler {
            server: self.name.clone(),
            calls: calls.clone(),
            tools_changed: tools_changed.clone(),
            redactor: resolved.redactor.clone(),
        };
        let Some(connection) = self
            .unless_stopped(connector.connect(&self.name, &resolved, handler, self.init_timeout))
            .await
        else {
            return Ok(());
        };
        let connection = connection?;
        let peer = connection.service.peer().clone();
        let Some(tools) = self
            .unless_stopped(self.list(&peer, &resolved.redactor))
            .await
        else {
            return Ok(());
        };
        let tools = tools?;
        let modern = peer
            .peer_info()
            .is_some_and(|info| !info.protocol_version.has_initialize());
        let announces_changes = peer.peer_info().is_some_and(|info| {
            info.capabilities
                .tools
                .as_ref()
                .and_then(|t| t.list_changed)
                .unwrap_or(false)
        });
        let broken = Arc::new(Notify::new());
        let tools_differ = {
            let mut state = self.state();
            state.phase = Phase::Connected;
            state.live = Some(Live {
                peer: peer.clone(),
                calls,
                broken: broken.clone(),
                redactor: resolved.redactor.clone(),
            });
            state.last_error = None;
            state.since = Instant::now();
            state.replace_tools(tools)
        };
        tracing::info!(server = %self.name, "upstream connected");
        // A reconnection to the same tools changes nothing clients see.
        if tools_differ {
            changed();
        }
        // A 2026-07-28 server sends list changes only on a listen stream.
        let mut subscription = if modern && announces_changes {
            let filter = SubscriptionFilter::builder().tools_list_changed().build();
            peer.listen(filter).await.ok()
        } else {
            None
        };
        let process = connection.process;
        let mut closed = std::pin::pin!(connection.service.waiting());
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        loop {
            let mut lost = false;
            let next = async {
                match subscription.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                reason = &mut closed => {
                    let tail = process.as_ref().map(|p| p.stderr_tail()).unwrap_or_default();
                    let reason = match reason {
                        Ok(reason) => format!("{reason:?}"),
                        Err(err) => err.to_string(),
                    };
                    return Err(if tail.is_empty() {
                        format!("the connection ended ({reason})")
                    } else {
                        format!("the connection ended ({reason}); its stderr ended with:\n{tail}")
                    });
                }
                () = tools_changed.notified() => {
                    self.unless_stopped(self.relist(&peer, &resolved.redactor, changed)).await
                }
                _ = ping.tick() => self.unless_stopped(Self::ping(&peer)).await,
                () = broken.notified() => return Err("a call found the connection broken".into()),
                note = next => match note {
                    Ok(Some(ServerNotification::ToolListChangedNotification(_))) => {
                        self.unless_stopped(self.relist(&peer, &resolved.redactor, changed)).await
                    }
                    Ok(Some(_)) => Some(Ok(())),
                    Ok(None) | Err(_) => {
                        lost = true;
                        Some(Ok(()))
                    }
                },
                () = self.stop.cancelled() => return Ok(()),
            };
            match outcome {
                None => return Ok(()),
                Some(result) => result?,
            }
            if lost {
                subscription = None;
            }
        }
    }

    /// Whether the upstream still answers: any answer, even an error,
    /// says the connection works.
    async fn ping(peer: &Peer<RoleClient>) -> Result<(), String> {
        let request = ClientRequest::PingRequest(Default::default());
        match tokio::time::timeout(PING_TIMEOUT, peer.send_request(request)).await {
            Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_))) => Ok(()),
            Ok(Err(err)) => Err(format!("the connection failed: {err}")),
            Err(_) => Err(format!(
                "no answer to a ping within {} s",
                PING_TIMEOUT.as_secs()
            )),
        }
    }

    async fn relist(
        &self,
        peer: &Peer<RoleClient>,
        redactor: &Redactor,
        changed: &Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), String> {
        let tools = self.list(peer, redactor).await?;
        let differs = self.state().replace_tools(tools);
        if differs {
            tracing::info!(server = %self.name, "upstream tools changed");
            changed();
        }
        Ok(())
    }

    /// The upstream's tools that pass its filter, named as berth serves
    /// them; a name listed twice is served once.
    async fn list(
        &self,
        peer: &Peer<RoleClient>,
        redactor: &Redactor,
    ) -> Result<Vec<Served>, String> {
        let listed = tokio::time::timeout(LIST_TIMEOUT, peer.list_all_tools())
            .await
            .map_err(|_| {
                format!(
                    "tools/list got no answer within {} s",
                    LIST_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("tools/list failed: {e}"))?;
        let mut served: Vec<Served> = Vec::new();
        for tool in listed {
            if !self.filter.admits(&tool.name) || served.iter().any(|s| s.original == tool.name) {
                continue;
            }
            let name = names::served_name(&self.name, &tool.name);
            served.push(Served {
                tool: convert::tool(&name, &tool, redactor),
                original: tool.name.to_string(),
                name,
            });
        }
        Ok(served)
    }
}
