//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer
//! ships: answers arrive as `message` events on one long GET, requests are
//! POSTed to the endpoint the first `endpoint` event names.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};

/// Why an SSE exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The HTTP request failed.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an unexpected status.
    #[error("POST {url} answered HTTP {status}")]
    Status {
        /// The endpoint.
        url: Url,
        /// The status.
        status: reqwest::StatusCode,
    },
}

type Events = Pin<Box<dyn Stream<Item = Result<Sse, String>> + Send>>;

/// A connected legacy SSE session.
pub struct SseTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    endpoint: Url,
    events: Events,
    since_event: Arc<AtomicUsize>,
    max_event_bytes: usize,
}

impl SseTransport {
    /// Open the event stream at `url` and wait for its `endpoint` event.
    /// The endpoint must be on the same origin as `url`: the headers
    /// (perhaps holding secrets) are sent there too.
    pub async fn connect(
        client: reqwest::Client,
        url: &str,
        headers: HeaderMap,
        max_event_bytes: usize,
    ) -> Result<Self, String> {
        let base = Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let response = client
            .get(base.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let kind = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !status.is_success() || !kind.starts_with("text/event-stream") {
            return Err(format!(
                "GET {url} answered HTTP {status} with content type `{kind}`, not an SSE stream (is it a streamable HTTP server? then leave `transport` unset)"
            ));
        }
        let since_event = Arc::new(AtomicUsize::new(0));
        let counter = since_event.clone();
        // Count the bytes of the event being read, so a server that never
        // ends an event cannot make berth buffer without bound.
        let bytes = response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .map(move |chunk| {
                let chunk = chunk?;
                if counter.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > max_event_bytes
                {
                    return Err(std::io::Error::other(format!(
                        "an SSE event is larger than {max_event_bytes} bytes"
                    )));
                }
                Ok(chunk)
            });
        let mut events: Events =
            Box::pin(SseStream::from_bytes_stream(bytes).map_err(|e| e.to_string()));
        let endpoint = loop {
            match events.next().await {
                Some(Ok(sse)) if sse.event.as_deref() == Some("endpoint") => {
                    let data = sse.data.unwrap_or_default();
                    let endpoint = base
                        .join(data.trim())
                        .map_err(|e| format!("the endpoint event `{data}` is not a URL: {e}"))?;
                    if endpoint.origin() != base.origin() {
                        return Err(format!(
                            "the server named endpoint {endpoint}, on another origin than {url}; refused"
                        ));
                    }
                    break endpoint;
                }
                Some(Ok(_)) => since_event.store(0, Ordering::Relaxed),
                Some(Err(e)) => return Err(format!("reading the event stream of {url}: {e}")),
                None => {
                    return Err(format!(
                        "{url} closed the event stream before naming its endpoint"
                    ));
                }
            }
        };
        since_event.store(0, Ordering::Relaxed);
        Ok(Self {
            client,
            headers,
            endpoint,
            events,
            since_event,
            max_event_bytes,
        })
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .json(&item);
        let url = self.endpoint.clone();
        async move {
            let response = request.send().await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::Status {
                    url,
                    status: response.status(),
                })
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let event = match self.events.next().await? {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(
                        limit = self.max_event_bytes,
                        "SSE upstream stream failed: {err}"
                    );
                    return None;
                }
            };
            self.since_event.store(0, Ordering::Relaxed);
            if !matches!(event.event.as_deref(), None | Some("message")) {
                continue;
            }
            let Some(data) = event.data else { continue };
            match serde_json::from_str(&data) {
                Ok(message) => return Some(message),
                Err(err) => {
                    tracing::warn!("SSE upstream sent a message that is not JSON-RPC: {err}")
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
