//! The MCP server handler: tools/list and tools/call over the plugin host,
//! logging levels, elicitation in both protocol eras, and
//! `tools/list_changed` after reloads.
#![allow(deprecated)] // MCP logging is deprecated by SEP-2577 but still part of 2025-11-25.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestMethod,
    CompleteRequestParams, CompleteResult, Implementation, InputRequest, InputRequiredResult,
    InputResponses, ListPromptsRequestMethod, ListPromptsResult,
    ListResourceTemplatesRequestMethod, ListResourceTemplatesResult, ListResourcesRequestMethod,
    ListResourcesResult, ListToolsResult, LoggingLevel, PaginatedRequestParams, ProtocolVersion,
    Request, ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::host::{PluginHost, ToolCallError};
use crate::contract::bindings::types::ToolOutput;
use crate::contract::sink::CallSink;
use crate::server::call::{Asker, McpCall, Question};
use crate::server::convert;
use crate::server::tools::TOOLS_TTL_MS;

use crate::server::pending::{
    CallTask, Pending, QUESTION_KEY, Shared, pick_answer, requested_schema,
};

/// One MCP session's handler (HTTP creates one per session or stateless
/// request; all share the host and [`Shared`]).
#[derive(Clone)]
pub struct BerthServer {
    host: Arc<PluginHost>,
    shared: Arc<Shared>,
    log_level: Arc<Mutex<LoggingLevel>>,
}

impl BerthServer {
    /// A handler over `host`.
    pub fn new(host: Arc<PluginHost>, shared: Arc<Shared>) -> Self {
        Self {
            host,
            shared,
            log_level: Arc::new(Mutex::new(LoggingLevel::Info)),
        }
    }

    /// Start the task that sends `tools/list_changed` after each reload that
    /// changed the tool set.
    pub fn watch_reloads(host: &Arc<PluginHost>, shared: &Arc<Shared>) -> JoinHandle<()> {
        let mut changes = host.subscribe();
        let shared = shared.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                shared.notify_tools_changed().await;
            }
        })
    }

    fn capabilities() -> ServerCapabilities {
        ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_logging()
            .build()
    }

    async fn finish(
        result: Result<ToolOutput, ToolCallError>,
    ) -> Result<CallToolResponse, McpError> {
        match result {
            Ok(output) => Ok(convert::output(output).into()),
            Err(ToolCallError::UnknownTool(name)) => Err(McpError::invalid_params(
                format!("unknown tool `{name}`; list the available tools with tools/list"),
                None,
            )),
            Err(err) => Ok(convert::call_error(&err).into()),
        }
    }

    /// Run a detached call until it finishes or asks a question. A question
    /// is answered from `preset` (answers a stateless client sent up front)
    /// when one fits; otherwise the call is parked and the question becomes
    /// an input-required result.
    async fn drive(
        &self,
        mut task: CallTask,
        mut questions: mpsc::Receiver<Question>,
        mut preset: Option<InputResponses>,
    ) -> Result<CallToolResponse, McpError> {
        loop {
            tokio::select! {
                joined = &mut task => {
                    let result = joined.map_err(|e| McpError::internal_error(format!("tool call task failed: {e}"), None))?;
                    return Self::finish(result).await;
                }
                Some(question) = questions.recv() => {
                    let schema = requested_schema(&question);
                    if let Some(answer) = preset.take().and_then(|responses| pick_answer(&responses, &schema)) {
                        let _ = question.reply.send(Ok(answer));
                        continue;
                    }
                    let request = InputRequest::Elicitation(Request::new(question.params));
                    let pending = Pending { task, questions, reply: question.reply, schema, since: Instant::now() };
                    let token = self.shared.park(pending);
                    let mut requests = std::collections::BTreeMap::new();
                    requests.insert(QUESTION_KEY.to_string(), request);
                    return Ok(InputRequiredResult::new(Some(requests), Some(token)).into());
                }
            }
        }
    }

    async fn resume(
        &self,
        request: &CallToolRequestParams,
        token: &str,
    ) -> Result<CallToolResponse, McpError> {
        let pending = self.shared.unpark(token).ok_or_else(|| {
            McpError::invalid_params(
                "requestState does not name a pending call (unknown, tampered with, or expired)",
                None,
            )
        })?;
        let answer = request
            .input_responses
            .as_ref()
            .and_then(|responses| pick_answer(responses, &pending.schema));
        let Some(answer) = answer else {
            self.shared.park_as(token.to_string(), pending);
            return Err(McpError::invalid_params(
                format!(
                    "inputResponses has no answer that matches the question's requestedSchema (expected key `{QUESTION_KEY}`)"
                ),
                None,
            ));
        };
        // The plugin may have given up waiting; then the task reports why.
        let _ = pending.reply.send(Ok(answer));
        self.drive(pending.task, pending.questions, None).await
    }
}

impl ServerHandler for BerthServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(Self::capabilities())
            .with_server_info(
                Implementation::new("berth", env!("CARGO_PKG_VERSION"))
                    .with_title("berth")
                    .with_description("MCP tools from WebAssembly plugins"),
            )
            .with_instructions(
                "Tools come from berth plugins; each tool's description says what it does.",
            )
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = request.level;
        Ok(())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.shared.tools.list(&self.host.registry());
        Ok(ListToolsResult::with_all_items(tools.all().to_vec())
            .with_ttl_ms(TOOLS_TTL_MS)
            .with_cache_scope(CacheScope::Private))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared
            .tools
            .list(&self.host.registry())
            .get(name)
            .cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if let Some(token) = request.request_state.clone() {
            return self.resume(&request, &token).await;
        }
        let name = request.name.to_string();
        let registry = self.host.registry();
        let plugin = registry
            .tool(&name)
            .map(|t| t.owner.name())
            .ok_or_else(|| {
                McpError::invalid_params(
                    format!("unknown tool `{name}`; list the available tools with tools/list"),
                    None,
                )
            })?;
        drop(registry);
        let arguments = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        let stateless = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        let can_elicit = context
            .client_capabilities()
            .is_some_and(|c| c.elicitation.is_some());
        let log_level = if stateless {
            context.meta.log_level()
        } else {
            Some(*self.log_level.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let sink = |asker| McpCall {
            peer: context.peer.clone(),
            progress_token: context.meta.get_progress_token(),
            cancel: context.ct.clone(),
            log_level,
            logger: plugin.clone(),
            asker,
        };
        if stateless && can_elicit {
            let (ask, questions) = mpsc::channel(1);
            let sink: Arc<dyn CallSink> = Arc::new(sink(Asker::Deferred(ask)));
            let host = self.host.clone();
            let task = tokio::spawn(async move { host.call_tool(&name, arguments, sink).await });
            return self
                .drive(task, questions, request.input_responses.clone())
                .await;
        }
        let asker = if !can_elicit {
            Asker::Unavailable("the client did not declare the elicitation capability")
        } else {
            Asker::Direct(context.peer.clone())
        };
        let sink: Arc<dyn CallSink> = Arc::new(sink(asker));
        tokio::select! {
            result = self.host.call_tool(&name, arguments, sink) => Self::finish(result).await,
            _ = context.ct.cancelled() => Err(McpError::internal_error("the client cancelled the call", None)),
        }
    }

    async fn list_prompts(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Err(McpError::method_not_found::<ListPromptsRequestMethod>())
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Err(McpError::method_not_found::<ListResourcesRequestMethod>())
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Err(McpError::method_not_found::<
            ListResourceTemplatesRequestMethod,
        >())
    }

    async fn complete(
        &self,
        _: CompleteRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Err(McpError::method_not_found::<CompleteRequestMethod>())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Some(client) = context.peer.peer_info() {
            tracing::info!(
                client = %client.client_info.name,
                version = %client.client_info.version,
                protocol = %client.protocol_version,
                "client connected"
            );
        }
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&Self::capabilities()))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let sink = context.sink().clone();
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink.clone());
        context.cancelled().await;
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s.id() != sink.id());
        Ok(())
    }
}
