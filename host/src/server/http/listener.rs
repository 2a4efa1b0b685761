//! Accepting HTTP connections with a cap and a header-read timeout, so
//! slow or silent clients cannot hold berth's sockets and memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::metrics::Metrics;

/// How long in-flight requests may finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Connection limits.
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers, also the time an
    /// idle kept-alive connection stays open.
    pub header_timeout: Duration,
}

/// Serve `app` on `listener` until `shutdown` resolves, then let open
/// requests finish (up to ten seconds).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept:
                    // keep serving the connections already open.
                    tracing::warn!("accepting an HTTP connection failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.record_connection_refused();
            if last_refusal_log.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    cap = limits.max_connections,
                    "HTTP connection cap reached ([http] max_connections): closing new connections"
                );
                last_refusal_log = Some(Instant::now());
            }
            drop(tcp);
            continue;
        };
        // Without TCP_NODELAY, a response's last small write waits for the
        // client's delayed ACK: 40 ms per request on a kept-alive connection.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a connection: {err}");
        }
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        let metrics = metrics.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            metrics.record_connection(true);
            // hyper's header timeout starts with the first byte; a client
            // that connects and stays silent is held to the same deadline.
            let first = tokio::time::timeout(header_timeout, tcp.peek(&mut [0u8; 1])).await;
            if matches!(first, Ok(Ok(n)) if n > 0) {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                if let Err(err) = watcher.watch(connection).await {
                    tracing::debug!("HTTP connection ended: {err}");
                }
            }
            metrics.record_connection(false);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "HTTP connections still open {} s after shutdown; closing them",
            DRAIN.as_secs()
        );
    }
}
