//! One upstream MCP server: a supervisor that keeps it connected
//! (reconnecting with backoff), its current tools, and calls forwarded to
//! it with progress, logs and cancellation passed through.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest,
    ServerNotification, ServerResult, SubscriptionFilter,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use rmcp::{Peer, RoleClient};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::{self, Calls, Handler};
use super::config::Endpoint;
use super::connect::Connector;
use super::{convert, names};
use crate::contract::bindings::types::{Error as WitError, Tool, ToolHints, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::filter::ToolFilter;
use crate::runtime::limits::LimitsConfig;
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
struct Served {
    /// The name berth serves it under.
    name: String,
    /// The name the upstream knows it by.
    original: String,
    /// The contract form.
    tool: Tool,
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

struct State {
    phase: Phase,
    peer: Option<Peer<RoleClient>>,
    tools: Vec<Served>,
    redactor: Arc<Redactor>,
    last_error: Option<String>,
    attempts: u32,
    since: Instant,
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
    name: String,
    source: Source,
    endpoint: Endpoint,
    filter: ToolFilter,
    init_timeout: Duration,
    state: Mutex<State>,
    calls: Arc<Calls>,
    stop: CancellationToken,
    /// Woken when a forwarded call finds the connection broken.
    broken: Notify,
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
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            source,
            endpoint,
            filter,
            init_timeout,
            state: Mutex::new(State {
                phase: Phase::Connecting,
                peer: None,
                tools: Vec::new(),
                redactor: Arc::default(),
                last_error: None,
                attempts: 0,
                since: Instant::now(),
            }),
            calls: Arc::default(),
            stop: CancellationToken::new(),
            broken: Notify::new(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
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
    /// whenever its tools or phase change.
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
                state.peer = None;
                state.last_error = Some(error.clone());
                state.since = Instant::now();
                ran_well
            };
            if ran_well {
                backoff = FIRST_BACKOFF;
            }
            tracing::warn!(server = %self.name, retry_in_ms = backoff.as_millis() as u64, "upstream unavailable: {error}");
            changed();
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.state().peer = None;
    }

    /// One connection, from connect to its end: `Ok` when stopped, the
    /// reason otherwise.
    async fn session(
        &self,
        connector: &Connector,
        changed: &Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), String> {
        let resolved = connector.resolve(&self.endpoint)?;
        let tools_changed = Arc::new(Notify::new());
        let handler = Handler {
            server: self.name.clone(),
            calls: self.calls.clone(),
            tools_changed: tools_changed.clone(),
            redactor: resolved.redactor.clone(),
        };
        let connection = tokio::select! {
            connection = connector.connect(&self.name, &resolved, handler, self.init_timeout) => connection?,
            () = self.stop.cancelled() => return Ok(()),
        };
        let peer = connection.service.peer().clone();
        let tools = self.list(&peer).await?;
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
        {
            let mut state = self.state();
            state.phase = Phase::Connected;
            state.peer = Some(peer.clone());
            state.tools = tools;
            state.redactor = resolved.redactor.clone();
            state.last_error = None;
            state.since = Instant::now();
        }
        tracing::info!(server = %self.name, "upstream connected");
        changed();
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
            tokio::select! {
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
                () = tools_changed.notified() => self.relist(&peer, changed).await?,
                _ = ping.tick() => Self::ping(&peer).await?,
                () = self.broken.notified() => return Err("a call found the connection broken".into()),
                note = next => match note {
                    Ok(Some(ServerNotification::ToolListChangedNotification(_))) => {
                        self.relist(&peer, changed).await?;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => lost = true,
                },
                () = self.stop.cancelled() => return Ok(()),
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
        changed: &Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), String> {
        let tools = self.list(peer).await?;
        let differs = {
            let mut state = self.state();
            let differs = state
                .tools
                .iter()
                .map(signature)
                .ne(tools.iter().map(signature));
            state.tools = tools;
            differs
        };
        if differs {
            tracing::info!(server = %self.name, "upstream tools changed");
            changed();
        }
        Ok(())
    }

    /// The upstream's tools that pass its filter, named as berth serves
    /// them; a name listed twice is served once.
    async fn list(&self, peer: &Peer<RoleClient>) -> Result<Vec<Served>, String> {
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
                tool: convert::tool(&name, &tool),
                original: tool.name.to_string(),
                name,
            });
        }
        Ok(served)
    }

    /// Forward a call of served tool `served`, within `limits`.
    pub async fn call(
        &self,
        served: &str,
        arguments: Value,
        sink: Arc<dyn CallSink>,
        limits: &LimitsConfig,
    ) -> Result<ToolOutput, CallError> {
        let (peer, original, redactor) = {
            let state = self.state();
            let Some(peer) = state.peer.clone() else {
                return Err(CallError::Plugin(WitError::Unavailable(format!(
                    "server `{}` is not connected ({}); berth is reconnecting, try again shortly",
                    self.name,
                    state.last_error.as_deref().unwrap_or("still connecting")
                ))));
            };
            let Some(tool) = state.tools.iter().find(|t| t.name == served) else {
                return Err(CallError::Plugin(WitError::NotFound(format!(
                    "server `{}` no longer offers `{served}`",
                    self.name
                ))));
            };
            (peer, tool.original.clone(), state.redactor.clone())
        };
        let Value::Object(arguments) = arguments else {
            return Err(CallError::Plugin(WitError::InvalidInput(
                "arguments must be a JSON object".into(),
            )));
        };
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(
            CallToolRequestParams::new(original).with_arguments(arguments),
        ));
        let handle = {
            let mut calls = self.calls.lock().await;
            let handle = peer
                .send_cancellable_request(
                    request,
                    PeerRequestOptions::no_options().with_meta(client::logging_meta()),
                )
                .await
                .map_err(|e| self.unavailable(&e))?;
            calls.insert(handle.progress_token.clone(), sink.clone());
            handle
        };
        let token = handle.progress_token.clone();
        let id = handle.id.clone();
        let limit = Duration::from_millis(limits.timeout_ms);
        let outcome = tokio::select! {
            answer = handle.await_response() => Ok(answer),
            () = sink.until_cancelled() => Err("the client cancelled the call"),
            () = tokio::time::sleep(limit) => Err("the call ran past its time limit"),
        };
        self.calls.lock().await.remove(&token);
        let answer = match outcome {
            Ok(answer) => answer,
            Err(reason) => {
                let params = CancelledNotificationParam::new(Some(id), Some(reason.to_string()));
                // The upstream may be gone already; the caller's error
                // stands either way.
                let _ = peer.notify_cancelled(params).await;
                return Err(CallError::Plugin(if reason.contains("time limit") {
                    WitError::Timeout(format!(
                        "server `{}` did not answer within {} ms; the call was cancelled there",
                        self.name, limits.timeout_ms
                    ))
                } else {
                    WitError::Failed(format!(
                        "the call was cancelled; server `{}` was told to stop it",
                        self.name
                    ))
                }));
            }
        };
        match answer {
            Ok(ServerResult::CallToolResult(result)) => {
                let value = serde_json::to_value(&result).map_err(|e| {
                    CallError::Plugin(WitError::Failed(format!(
                        "server `{}` sent a result berth cannot re-encode: {e}",
                        self.name
                    )))
                })?;
                let size = value.to_string().len() as u64;
                if size > limits.max_output_bytes {
                    return Err(CallError::OutputTooLarge {
                        plugin: format!("server:{}", self.name),
                        size,
                        limit: limits.max_output_bytes,
                    });
                }
                Ok(convert::output(&value, &redactor))
            }
            Ok(_) => Err(CallError::Plugin(WitError::Failed(format!(
                "server `{}` answered tools/call with something other than a tool result",
                self.name
            )))),
            Err(ServiceError::McpError(error)) => Err(CallError::Plugin(convert::upstream_error(
                &self.name,
                error.code.0,
                &error.message,
                &redactor,
            ))),
            Err(other) => {
                self.broken.notify_one();
                Err(self.unavailable(&other))
            }
        }
    }

    fn unavailable(&self, error: &ServiceError) -> CallError {
        CallError::Plugin(WitError::Unavailable(format!(
            "server `{}` could not be reached during the call ({error}); berth reconnects on its own",
            self.name
        )))
    }
}
