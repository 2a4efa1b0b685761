//! Serving MCP over stdio and over streamable HTTP, and reloading plugins
//! on SIGHUP and on changes in plugin directories.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::app::host::PluginHost;
use crate::server::handler::BerthServer;
use crate::server::pending::Shared;

/// Host names that always count as this machine.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Serve one client on stdin/stdout until it disconnects.
pub async fn serve_stdio(host: Arc<PluginHost>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let _reloads = BerthServer::watch_reloads(&host, &shared);
    let _watchers = watch_for_reload(host.clone());
    let (pipes, drain) = crate::server::stdio::pipes();
    let running = BerthServer::new(host, shared)
        .serve(pipes)
        .await
        .context("MCP handshake on stdio failed")?;
    // A SIGTERM ends the session like a closed stdin, so the caller's
    // shutdown (audit flush, sandbox cleanup) still runs.
    let ended = tokio::select! {
        ended = running.waiting() => ended.map(drop).context("stdio session ended abnormally"),
        _ = shutdown_signal() => Ok(()),
    };
    // The last answers are written by the stdout thread; let them leave.
    tokio::task::spawn_blocking(move || drain.wait(Duration::from_secs(2)))
        .await
        .ok();
    ended
}

/// The JSON-RPC answer to a message that is not JSON.
pub(super) fn parse_error(detail: &str) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32700, "message": format!("Parse error: the message is not valid JSON ({detail})") },
    })
    .to_string()
}

/// Who may talk to the HTTP endpoint.
#[derive(Clone)]
struct Gate {
    token: Option<String>,
    hosts: Vec<String>,
    origins: Vec<String>,
    host: Arc<PluginHost>,
}

impl Gate {
    fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        let Ok(uri) = origin.parse::<axum::http::Uri>() else {
            return false;
        };
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        self.hosts.iter().any(|h| h == host)
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(presented.as_bytes(), expected.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !gate.origin_allowed(origin)
    {
        gate.host.metrics().record_rejected();
        return (
            StatusCode::FORBIDDEN,
            format!("Origin `{origin}` is not allowed"),
        )
            .into_response();
    }
    if !gate.token_ok(headers) {
        gate.host.metrics().record_rejected();
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        )
            .into_response();
    }
    if request.method() == axum::http::Method::POST {
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
                    .into_response();
            }
        };
        if let Err(err) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                parse_error(&err.to_string()),
            )
                .into_response();
        }
        return next
            .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
    }
    next.run(request).await
}

/// Shortest bearer token accepted: an empty or guessable one would let
/// any client in while looking configured.
const MIN_TOKEN_CHARS: usize = 16;

/// Largest JSON-RPC message accepted over HTTP (rmcp's own default).
const MAX_BODY_BYTES: usize = 4 << 20;

async fn healthz(State(host): State<Arc<PluginHost>>) -> impl IntoResponse {
    let registry = host.registry();
    axum::Json(serde_json::json!({
        "status": "ok",
        "plugins": registry.plugins().count(),
        "tools": registry.tools().count(),
        "load_failures": registry.failures(),
    }))
}

async fn metrics(State(host): State<Arc<PluginHost>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        host.metrics().render(),
    )
}

/// Serve streamable HTTP at `/mcp` (plus `/healthz` and `/metrics`) on
/// `addr` until the process is stopped. A non-loopback address needs a token.
pub async fn serve_http(host: Arc<PluginHost>, addr: SocketAddr) -> anyhow::Result<()> {
    let token = host.config().http.token.clone();
    if let Some(token) = &token
        && token.chars().count() < MIN_TOKEN_CHARS
    {
        anyhow::bail!(
            "the HTTP bearer token ([http] token or BERTH_TOKEN) is {} characters; at least {MIN_TOKEN_CHARS} are required (e.g. `openssl rand -hex 32`)",
            token.chars().count()
        );
    }
    if !addr.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "refusing to listen on {addr} without a bearer token: set BERTH_TOKEN or [http] token in berth.toml, or bind 127.0.0.1"
        );
    }
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
    hosts.extend(host.config().http.allowed_hosts.iter().cloned());
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }
    let gate = Gate {
        token,
        hosts: hosts.clone(),
        origins: host.config().http.allowed_origins.clone(),
        host: host.clone(),
    };

    let shared = Arc::new(Shared::default());
    let _reloads = BerthServer::watch_reloads(&host, &shared);
    let _watchers = watch_for_reload(host.clone());
    // A request that sends no notification is answered as one JSON body
    // (rmcp falls back to an event stream when the handler notifies first).
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_json_response(true);
    let factory_host = host.clone();
    let service = StreamableHttpService::new(
        move || Ok(BerthServer::new(factory_host.clone(), shared.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let protected = axum::Router::new()
        .nest_service("/mcp", service)
        .route("/metrics", get(metrics))
        .with_state(host.clone())
        .layer(middleware::from_fn_with_state(gate, guard));
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .with_state(host)
        .merge(protected);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    // Without TCP_NODELAY, a response's last small write waits for the
    // client's delayed ACK: 40 ms per request on a kept-alive connection.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a connection: {err}");
        }
    });
    tracing::info!("listening on http://{local}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("shutting down");
}

/// Reload on SIGHUP, and shortly after any change in a plugin directory.
/// The returned handles stop the watchers when dropped.
pub fn watch_for_reload(host: Arc<PluginHost>) -> Vec<Box<dyn std::any::Any + Send>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(16);
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let tx = tx.clone();
        keep.push(Box::new(AbortOnDrop(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = tx.send("SIGHUP").await;
            }
        }))));
    }
    let dirs = host.config().plugin_dirs.clone();
    if !dirs.is_empty() {
        let fs_tx = tx.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _ = fs_tx.try_send("plugin directory change");
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(mut watcher) => {
                use notify::Watcher;
                for dir in &dirs {
                    if let Err(err) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
                        tracing::warn!(dir = %dir.display(), "cannot watch plugin directory: {err}");
                    }
                }
                keep.push(Box::new(watcher));
            }
            Err(err) => tracing::warn!("cannot watch plugin directories: {err}"),
        }
    }
    keep.push(Box::new(AbortOnDrop(tokio::spawn(async move {
        while let Some(reason) = rx.recv().await {
            // Let a burst of file events (a copy in progress) settle first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            tracing::info!(reason, "reloading plugins");
            host.reload().await;
        }
    }))));
    keep
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
