//! Streamable HTTP: `/mcp`, `/metrics` and `/healthz`, behind the gate
//! (Host, Origin and CORS, bearer token, body limits), on a listener with
//! a connection cap and timeouts, with a cap on sessions.

mod gate;
mod listener;
mod sessions;
pub mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Semaphore;

use crate::app::config::HttpConfig;
use crate::app::host::PluginHost;
use crate::server::handler::BerthServer;
use crate::server::pending::Shared;
use crate::server::transport::{shutdown_signal, watch_for_reload};

pub use gate::Gate;
pub use sessions::CappedSessions;

/// Host names that always count as this machine.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

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

/// Refuse limits that would make the endpoint unusable, naming the field.
fn check_limits(http: &HttpConfig) -> anyhow::Result<()> {
    for (field, value) in [
        ("max_connections", http.max_connections as u64),
        ("max_sessions", http.max_sessions as u64),
        ("idle_timeout_secs", http.idle_timeout_secs),
        ("max_request_mib", http.max_request_mib as u64),
        (
            "max_requests_in_memory_mib",
            http.max_requests_in_memory_mib as u64,
        ),
    ] {
        if value == 0 {
            anyhow::bail!("[http] {field} is 0; it must be at least 1");
        }
    }
    if http.max_requests_in_memory_mib < http.max_request_mib {
        anyhow::bail!(
            "[http] max_requests_in_memory_mib ({}) is below max_request_mib ({}): the largest request could never be read",
            http.max_requests_in_memory_mib,
            http.max_request_mib
        );
    }
    Ok(())
}

/// Serve streamable HTTP at `/mcp` (plus `/healthz` and `/metrics`) on
/// `addr` until the process is stopped. Every bind needs a token: the
/// configured one, or one generated into the data dir.
pub async fn serve_http(host: Arc<PluginHost>, addr: SocketAddr) -> anyhow::Result<()> {
    let http = host.config().http.clone();
    check_limits(&http)?;
    let (token, origin) = token::resolve(http.token.as_deref(), &host.config().data_dir)?;
    match &origin {
        token::Origin::Configured => {
            tracing::info!("HTTP clients need the configured bearer token")
        }
        token::Origin::Stored(path) => tracing::info!(
            "HTTP clients need the bearer token in {} (Authorization: Bearer <token>)",
            path.display()
        ),
        token::Origin::Generated(path) => tracing::info!(
            "generated an HTTP bearer token into {} (0600); clients send it as Authorization: Bearer <token>",
            path.display()
        ),
    }
    let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
    hosts.extend(http.allowed_hosts.iter().cloned());
    if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
        hosts.push(addr.ip().to_string());
    }

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let idle = Duration::from_secs(http.idle_timeout_secs);
    let gate = Gate {
        token: token.into(),
        hosts: hosts.into(),
        origins: http.allowed_origins.clone().into(),
        port: local.port(),
        body_budget: Arc::new(Semaphore::new(http.max_requests_in_memory_mib << 10)),
        max_body: http.max_request_mib << 20,
        body_timeout: idle,
        metrics: host.metrics().clone(),
    };

    let shared = Arc::new(Shared::default());
    let _reloads = BerthServer::watch_reloads(&host, &shared);
    let _watchers = watch_for_reload(host.clone());
    // A request that sends no notification is answered as one JSON body
    // (rmcp falls back to an event stream when the handler notifies first).
    // The gate has checked the Host header of every request before rmcp
    // sees it, against the same list.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_json_response(true);
    let factory_host = host.clone();
    let service = StreamableHttpService::new(
        move || Ok(BerthServer::new(factory_host.clone(), shared.clone())),
        Arc::new(CappedSessions::new(
            http.max_sessions,
            host.metrics().clone(),
        )),
        config,
    );
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(host.clone())
        .layer(middleware::from_fn_with_state(gate, gate::guard));

    tracing::info!("listening on http://{local}/mcp");
    listener::serve(
        listener,
        app,
        listener::Limits {
            max_connections: http.max_connections,
            header_timeout: idle,
        },
        host.metrics().clone(),
        shutdown_signal(),
    )
    .await;
    Ok(())
}
