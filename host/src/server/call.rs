//! The MCP side of one tool call: where a plugin's logs, progress and
//! questions go, and how cancellation reaches it.
#![allow(deprecated)] // MCP logging is deprecated by SEP-2577 but still part of 2025-11-25.

use futures::future::BoxFuture;
use rmcp::model::{
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken,
};
use rmcp::{Peer, RoleServer};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::contract::bindings::shared::berth::plugin::context::{ElicitAnswer, LogLevel};
use crate::contract::bindings::types::Error as WitError;
use crate::contract::sink::CallSink;

/// A question a plugin asked while running detached (2026-07-28 clients
/// answer through a retried `tools/call`).
pub struct Question {
    /// The elicitation to send.
    pub params: ElicitRequestParams,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<ElicitAnswer, WitError>>,
}

/// How questions reach the user.
pub enum Asker {
    /// Send `elicitation/create` on the session (2025-11-25 era).
    Direct(Peer<RoleServer>),
    /// Hand the question to the request handler, which returns an
    /// input-required result (2026-07-28 era).
    Deferred(mpsc::Sender<Question>),
    /// The client cannot be asked; the reason is reported to the plugin.
    Unavailable(&'static str),
}

/// A [`CallSink`] for one MCP `tools/call`.
pub struct McpCall {
    /// The session, for notifications.
    pub peer: Peer<RoleServer>,
    /// The client's progress token, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// Cancelled when the client cancels the request.
    pub cancel: CancellationToken,
    /// Lowest level to forward; `None` forwards no log messages.
    pub log_level: Option<LoggingLevel>,
    /// Logger name sent with each message.
    pub logger: String,
    /// How to ask questions.
    pub asker: Asker,
}

/// Severity rank of an MCP logging level.
pub fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

fn mcp_level(level: LogLevel) -> LoggingLevel {
    match level {
        LogLevel::Debug => LoggingLevel::Debug,
        LogLevel::Info => LoggingLevel::Info,
        LogLevel::Notice => LoggingLevel::Notice,
        LogLevel::Warning => LoggingLevel::Warning,
        LogLevel::Error => LoggingLevel::Error,
        LogLevel::Critical => LoggingLevel::Critical,
        LogLevel::Alert => LoggingLevel::Alert,
        LogLevel::Emergency => LoggingLevel::Emergency,
    }
}

/// Build the MCP elicitation for a plugin's question; MCP accepts only flat
/// objects of primitive properties.
pub fn elicitation(
    message: String,
    schema: serde_json::Value,
) -> Result<ElicitRequestParams, WitError> {
    let serde_json::Value::Object(object) = schema else {
        return Err(WitError::InvalidInput(
            "elicitation schema must be a JSON object".into(),
        ));
    };
    let requested_schema = ElicitationSchema::from_json_schema(object).map_err(|e| {
        WitError::InvalidInput(format!(
            "elicitation schema is not one MCP clients accept (flat object of string, number, integer, boolean or enum properties): {e}"
        ))
    })?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema,
    })
}

/// The plugin-side answer for an MCP elicitation result.
pub fn answer(result: ElicitResult) -> ElicitAnswer {
    match result.action {
        ElicitationAction::Accept => ElicitAnswer::Accept(
            result
                .content
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string(),
        ),
        ElicitationAction::Decline => ElicitAnswer::Decline,
        _ => ElicitAnswer::Cancel,
    }
}

impl CallSink for McpCall {
    fn log(&self, level: LogLevel, message: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let level = mcp_level(level);
            if self.log_level.is_some_and(|min| rank(level) >= rank(min)) {
                let params =
                    LoggingMessageNotificationParam::new(level, serde_json::Value::String(message))
                        .with_logger(self.logger.clone());
                // A client that went away just misses the message.
                let _ = self.peer.notify_logging_message(params).await;
            }
        })
    }

    fn progress(
        &self,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(token) = self.progress_token.clone() else {
                return;
            };
            let mut params = ProgressNotificationParam::new(token, done);
            if let Some(total) = total {
                params = params.with_total(total);
            }
            if let Some(message) = message {
                params = params.with_message(message);
            }
            let _ = self.peer.notify_progress(params).await;
        })
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn until_cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.cancel.cancelled())
    }

    fn elicit(
        &self,
        message: String,
        schema: serde_json::Value,
    ) -> BoxFuture<'_, Result<ElicitAnswer, WitError>> {
        Box::pin(async move {
            let params = elicitation(message, schema)?;
            match &self.asker {
                Asker::Unavailable(why) => Err(WitError::Unavailable((*why).to_string())),
                Asker::Direct(peer) => {
                    let result = peer.create_elicitation(params).await.map_err(|e| {
                        WitError::Failed(format!("the client did not answer the elicitation: {e}"))
                    })?;
                    Ok(answer(result))
                }
                Asker::Deferred(questions) => {
                    let (reply, answer) = oneshot::channel();
                    questions
                        .send(Question { params, reply })
                        .await
                        .map_err(|_| {
                            WitError::Failed(
                                "the call was abandoned before the user answered".into(),
                            )
                        })?;
                    answer
                        .await
                        .map_err(|_| WitError::Failed("the question expired unanswered".into()))?
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_schemas_become_elicitations_and_nested_ones_are_refused() {
        let flat = serde_json::json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
        assert!(elicitation("Name?".into(), flat).is_ok());
        let nested = serde_json::json!({"type":"object","properties":{"a":{"type":"object","properties":{}}}});
        assert!(matches!(
            elicitation("Q".into(), nested),
            Err(WitError::InvalidInput(_))
        ));
    }

    #[test]
    fn accept_without_content_is_an_empty_object() {
        let result = ElicitResult::new(ElicitationAction::Accept);
        assert!(matches!(answer(result), ElicitAnswer::Accept(json) if json == "{}"));
        assert!(matches!(
            answer(ElicitResult::new(ElicitationAction::Decline)),
            ElicitAnswer::Decline
        ));
    }

    #[test]
    fn levels_are_ranked_by_severity() {
        assert!(rank(LoggingLevel::Error) > rank(LoggingLevel::Info));
        assert_eq!(rank(mcp_level(LogLevel::Debug)), 0);
    }
}
