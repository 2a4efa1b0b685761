//! Where a call's logs, progress and questions go, whoever serves the call
//! (a plugin, a host tool, an upstream server) and whoever listens (an MCP
//! client, the command line, nobody).

use futures::future::BoxFuture;

use crate::contract::bindings::shared::berth::plugin::context::{ElicitAnswer, LogLevel};
use crate::contract::bindings::types::Error as WitError;

/// Where a call's logs, progress and questions go: the MCP client, the CLI,
/// or nowhere.
pub trait CallSink: Send + Sync {
    /// Forward a log message; resolves once it is sent, so it arrives
    /// before the call's result.
    fn log(&self, level: LogLevel, message: String) -> BoxFuture<'_, ()>;
    /// Forward progress; resolves once it is sent.
    fn progress(&self, done: f64, total: Option<f64>, message: Option<String>)
    -> BoxFuture<'_, ()>;
    /// Whether the caller gave up on this call.
    fn cancelled(&self) -> bool;
    /// Resolves when the caller gives up on this call (never, for a caller
    /// that cannot). The default checks [`CallSink::cancelled`] every
    /// 100 ms; a sink that is told at once overrides it.
    fn until_cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
            while !self.cancelled() {
                tick.tick().await;
            }
        })
    }
    /// Ask the user; `schema` is the requested JSON Schema.
    fn elicit(
        &self,
        message: String,
        schema: serde_json::Value,
    ) -> BoxFuture<'_, Result<ElicitAnswer, WitError>>;
}

/// A sink for calls nobody is listening to (load-time calls, tests): logs
/// reach only the host log, progress is dropped, elicitation is unavailable.
pub struct Unattended;

impl CallSink for Unattended {
    fn log(&self, _: LogLevel, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn progress(&self, _: f64, _: Option<f64>, _: Option<String>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn cancelled(&self) -> bool {
        false
    }

    fn until_cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
    fn elicit(
        &self,
        _: String,
        _: serde_json::Value,
    ) -> BoxFuture<'_, Result<ElicitAnswer, WitError>> {
        Box::pin(async { Err(WitError::Unavailable("no client is attached to ask".into())) })
    }
}
