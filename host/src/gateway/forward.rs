//! Forwarding one call to an upstream: within berth's concurrency cap and
//! timeout, with the caller's progress token mapped to berth's, the
//! caller's cancellation (or its going away) passed on, the upstream's
//! errors kept, and the output cap and redaction applied to the result.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientRequest,
    ProgressToken, RequestId, ServerResult,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use rmcp::{Peer, RoleClient};
use serde_json::Value;

use super::client::{self, Calls};
use super::convert;
use super::upstream::Upstream;
use crate::contract::bindings::types::{Error as WitError, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::limits::LimitsConfig;

/// A call in its connection's table. When dropped, however the call ended,
/// it leaves the table; unless its answer came, the upstream is told to
/// cancel it (the reason given, or the caller going away).
struct InFlight {
    calls: Arc<Calls>,
    token: ProgressToken,
    peer: Peer<RoleClient>,
    id: RequestId,
    cancel: Option<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let calls = self.calls.clone();
        let token = self.token.clone();
        let cancel = self
            .cancel
            .take()
            .map(|reason| (self.peer.clone(), self.id.clone(), reason));
        runtime.spawn(async move {
            calls.lock().await.remove(&token);
            if let Some((peer, id, reason)) = cancel {
                let params = CancelledNotificationParam::new(Some(id), Some(reason));
                // The upstream may be gone already; nobody waits for this.
                let _ = peer.notify_cancelled(params).await;
            }
        });
    }
}

/// The length of `value` as JSON, counted without building the text (a
/// result may be many megabytes).
fn encoded_len(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

impl Upstream {
    /// Forward a call of served tool `served`, within `limits`.
    pub async fn call(
        &self,
        served: &str,
        arguments: Value,
        sink: Arc<dyn CallSink>,
        limits: &LimitsConfig,
    ) -> Result<ToolOutput, CallError> {
        let _slot = tokio::select! {
            slot = self.slots.acquire() => slot.map_err(|_| {
                CallError::Plugin(WitError::Unavailable(format!("server `{}` was detached", self.name)))
            })?,
            () = sink.until_cancelled() => {
                return Err(CallError::Plugin(WitError::Failed(
                    "the call was cancelled while it waited for a free slot".into(),
                )));
            }
        };
        // Read after the wait: the connection may have changed meanwhile.
        let (live, original) = {
            let state = self.state();
            let Some(live) = state.live.clone() else {
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
            (live, tool.original.clone())
        };
        let Value::Object(arguments) = arguments else {
            return Err(CallError::Plugin(WitError::InvalidInput(
                "arguments must be a JSON object".into(),
            )));
        };
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(
            CallToolRequestParams::new(original).with_arguments(arguments),
        ));
        let (handle, mut in_flight) = {
            let mut calls = live.calls.lock().await;
            let options = PeerRequestOptions::no_options().with_meta(client::logging_meta());
            let handle = live
                .peer
                .send_cancellable_request(request, options)
                .await
                .map_err(|e| {
                    live.broken.notify_one();
                    self.unavailable(&e)
                })?;
            calls.insert(handle.progress_token.clone(), sink.clone());
            let in_flight = InFlight {
                calls: live.calls.clone(),
                token: handle.progress_token.clone(),
                peer: live.peer.clone(),
                id: handle.id.clone(),
                cancel: Some("the caller went away".into()),
            };
            (handle, in_flight)
        };
        let limit = Duration::from_millis(limits.timeout_ms);
        let answer = tokio::select! {
            answer = handle.await_response() => answer,
            () = sink.until_cancelled() => {
                in_flight.cancel = Some("the client cancelled the call".into());
                return Err(CallError::Plugin(WitError::Failed(format!(
                    "the call was cancelled; server `{}` was told to stop it",
                    self.name
                ))));
            }
            () = tokio::time::sleep(limit) => {
                in_flight.cancel = Some("the call ran past berth's time limit".into());
                return Err(CallError::Plugin(WitError::Timeout(format!(
                    "server `{}` did not answer within {} ms; the call was cancelled there",
                    self.name, limits.timeout_ms
                ))));
            }
        };
        in_flight.cancel = None;
        match answer {
            Ok(ServerResult::CallToolResult(result)) => {
                let value = serde_json::to_value(&result).map_err(|e| {
                    CallError::Plugin(WitError::Failed(format!(
                        "server `{}` sent a result berth cannot re-encode: {e}",
                        self.name
                    )))
                })?;
                let size = encoded_len(&value);
                if size > limits.max_output_bytes {
                    return Err(CallError::OutputTooLarge {
                        plugin: format!("server:{}", self.name),
                        size,
                        limit: limits.max_output_bytes,
                    });
                }
                Ok(convert::output(&value, &live.redactor))
            }
            Ok(_) => Err(CallError::Plugin(WitError::Failed(format!(
                "server `{}` answered tools/call with something other than a tool result",
                self.name
            )))),
            Err(ServiceError::McpError(error)) => Err(CallError::Plugin(convert::upstream_error(
                &self.name,
                error.code.0,
                &error.message,
                &live.redactor,
            ))),
            Err(other) => {
                live.broken.notify_one();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counted_length_is_the_encoded_length() {
        let value =
            serde_json::json!({"content": [{"type": "text", "text": "é\"x"}], "n": [1, 2.5]});
        assert_eq!(encoded_len(&value), value.to_string().len() as u64);
    }
}
