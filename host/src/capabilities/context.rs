//! `berth:plugin/context`: logs, progress, cancellation and elicitation for
//! the call a plugin is serving. Log, progress and cancellation are always
//! granted; elicitation needs the `elicit` grant.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::HostState;
use super::unit::Switch;
use crate::contract::bindings::shared::berth::plugin::context::{
    self as wit, ElicitAnswer, LogLevel,
};
use crate::contract::bindings::types::Error as WitError;

/// The `elicit` capability: asking the user questions. Logs, progress and
/// cancellation need no grant.
pub struct Elicit;

impl Switch for Elicit {
    const KEY: &'static str = "elicit";
}

/// Write a plugin log message to the host log at the matching level.
pub fn log_to_host(plugin: &str, level: LogLevel, message: &str) {
    match level {
        LogLevel::Debug => tracing::debug!(plugin, "{message}"),
        LogLevel::Info | LogLevel::Notice => tracing::info!(plugin, "{message}"),
        LogLevel::Warning => tracing::warn!(plugin, "{message}"),
        _ => tracing::error!(plugin, "{message}"),
    }
}

/// Largest log message or elicitation text accepted from a plugin.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

fn clip(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Validate an elicitation request: the message must be non-empty and the
/// schema a JSON object schema.
pub fn parse_elicitation(message: &str, schema: &str) -> Result<serde_json::Value, WitError> {
    if message.trim().is_empty() {
        return Err(WitError::InvalidInput(
            "elicitation message is empty".into(),
        ));
    }
    let schema: serde_json::Value = serde_json::from_str(schema)
        .map_err(|e| WitError::InvalidInput(format!("elicitation schema is not JSON: {e}")))?;
    if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(WitError::InvalidInput(
            "elicitation schema must be a JSON Schema with \"type\": \"object\"".into(),
        ));
    }
    Ok(schema)
}

impl wit::Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let message = clip(&message);
        log_to_host(&self.caller.plugin, level, message);
        self.call.log(level, message.to_string()).await;
        Ok(())
    }

    async fn progress(
        &mut self,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> wasmtime::Result<()> {
        if done.is_finite() && total.is_none_or(f64::is_finite) {
            self.call
                .progress(done, total, message.as_deref().map(|m| clip(m).to_string()))
                .await;
        }
        Ok(())
    }

    async fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.call.cancelled())
    }

    async fn instance(&mut self) -> wasmtime::Result<String> {
        Ok(self.services.instance.clone())
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        // A plugin's own settings are always readable by it, and only by it.
        Ok(self.caller.config.to_string())
    }

    async fn elicit(
        &mut self,
        message: String,
        requested_schema: String,
    ) -> wasmtime::Result<Result<ElicitAnswer, WitError>> {
        if !self.caller.grants.elicit {
            return Ok(Err(self.caller.denied("elicit")));
        }
        let schema = match parse_elicitation(&message, &requested_schema) {
            Ok(schema) => schema,
            Err(err) => return Ok(Err(err)),
        };
        Ok(self.call.elicit(clip(&message).to_string(), schema).await)
    }
}

/// Add `berth:plugin/context` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A guest's stdout or stderr, turned into host log lines (bounded, so a
/// plugin printing without newlines cannot grow memory).
#[derive(Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    stream: &'static str,
    tail: Option<Arc<std::sync::Mutex<String>>>,
}

/// How much of a call's stderr is kept for crash reports, bytes.
const TAIL_BYTES: usize = 2048;

impl GuestOutput {
    /// Output of `plugin` on `stream` (`stdout` or `stderr`).
    pub fn new(plugin: Arc<str>, stream: &'static str) -> Self {
        Self {
            plugin,
            stream,
            tail: None,
        }
    }

    /// Also keep the last lines in `tail` (for the message of a crash).
    pub fn keeping_tail(mut self, tail: Arc<std::sync::Mutex<String>>) -> Self {
        self.tail = Some(tail);
        self
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            out: self.clone(),
            line: Vec::new(),
        })
    }
}

struct LineLogger {
    out: GuestOutput,
    line: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        tracing::info!(plugin = %self.out.plugin, stream = self.out.stream, "{}", text.trim_end());
        if let Some(tail) = &self.out.tail {
            let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
            tail.push_str(text.trim_end());
            tail.push('\n');
            if tail.len() > TAIL_BYTES {
                let mut cut = tail.len() - TAIL_BYTES;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail.drain(..cut);
            }
        }
        self.line.clear();
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        for &byte in data {
            if byte == b'\n' || self.line.len() >= 4096 {
                self.emit();
            }
            if byte != b'\n' {
                self.line.push(byte);
            }
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.line.is_empty() {
            self.emit();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elicitation_schema_must_be_an_object_schema() {
        assert!(parse_elicitation("Name?", r#"{"type":"object","properties":{}}"#).is_ok());
        assert!(matches!(
            parse_elicitation("", r#"{"type":"object"}"#),
            Err(WitError::InvalidInput(_))
        ));
        assert!(matches!(
            parse_elicitation("Q", "not json"),
            Err(WitError::InvalidInput(_))
        ));
        assert!(
            matches!(parse_elicitation("Q", r#"{"type":"string"}"#), Err(WitError::InvalidInput(m)) if m.contains("object"))
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_MESSAGE_BYTES);
        assert!(clipped.chars().all(|c| c == 'é'));
    }
}
