//! berth as an MCP client of one upstream: where the upstream's progress,
//! log messages and list changes go.
#![allow(deprecated)] // MCP logging is deprecated by SEP-2577 but still part of 2025-11-25.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, RequestMetaObject,
};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use tokio::sync::{Mutex, Notify};

use crate::contract::bindings::shared::berth::plugin::context::LogLevel;
use crate::contract::sink::CallSink;
use crate::state::secrets::Redactor;

/// The calls in flight to one upstream, by the progress token berth gave
/// each request, so the upstream's notifications reach the right caller.
#[derive(Default)]
pub struct Calls {
    by_token: Mutex<HashMap<ProgressToken, Arc<dyn CallSink>>>,
}

impl Calls {
    /// Hold the table while a request is sent and its token registered, so
    /// a progress notification that arrives at once is not lost.
    pub async fn lock(
        &self,
    ) -> tokio::sync::MutexGuard<'_, HashMap<ProgressToken, Arc<dyn CallSink>>> {
        self.by_token.lock().await
    }

    /// The call that owns `token`.
    async fn sink(&self, token: &ProgressToken) -> Option<Arc<dyn CallSink>> {
        self.by_token.lock().await.get(token).cloned()
    }

    /// The one call in flight, when there is exactly one.
    async fn only(&self) -> Option<Arc<dyn CallSink>> {
        let calls = self.by_token.lock().await;
        match calls.len() {
            1 => calls.values().next().cloned(),
            _ => None,
        }
    }
}

/// berth's client side of one upstream connection.
pub struct Handler {
    /// The upstream's name, for log lines.
    pub server: String,
    /// Calls in flight.
    pub calls: Arc<Calls>,
    /// Woken when the upstream says its tool list changed.
    pub tools_changed: Arc<Notify>,
    /// The secrets this upstream was given, kept out of what it sends back.
    pub redactor: Arc<Redactor>,
}

/// The `_meta` of a forwarded call: a 2026-07-28 server logs only when a
/// request asks, so berth asks for everything and the caller's own level
/// filters what reaches it.
pub fn logging_meta() -> RequestMetaObject {
    let mut meta = RequestMetaObject::default();
    meta.set_log_level(LoggingLevel::Debug);
    meta
}

fn level(level: LoggingLevel) -> LogLevel {
    match level {
        LoggingLevel::Debug => LogLevel::Debug,
        LoggingLevel::Info => LogLevel::Info,
        LoggingLevel::Notice => LogLevel::Notice,
        LoggingLevel::Warning => LogLevel::Warning,
        LoggingLevel::Error => LogLevel::Error,
        LoggingLevel::Critical => LogLevel::Critical,
        LoggingLevel::Alert => LogLevel::Alert,
        LoggingLevel::Emergency => LogLevel::Emergency,
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("berth", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        if let Some(sink) = self.calls.sink(&params.progress_token).await {
            let message = params.message.map(|m| self.redactor.redact(&m));
            sink.progress(params.progress, params.total, message).await;
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        let text = match &params.data {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text = self.redactor.redact(&text);
        // A log message names no request; it goes to the caller only when
        // one call is in flight, so one client never sees another's logs.
        match self.calls.only().await {
            Some(sink) => sink.log(level(params.level), text).await,
            None => tracing::debug!(server = %self.server, "upstream log: {text}"),
        }
    }

    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }
}
