//! Serving MCP over stdio, shutting down on a signal, and reloading
//! plugins on SIGHUP and on changes in plugin directories.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;

use crate::app::host::PluginHost;
use crate::server::handler::BerthServer;
use crate::server::pending::Shared;

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
    // Let the last answers leave before berth exits.
    drain.wait(Duration::from_secs(2)).await;
    ended
}

/// Whether `message` is one JSON value in UTF-8; the reason if not.
pub(super) fn check_json(message: &[u8]) -> Result<(), String> {
    // serde skips over strings it ignores without checking their UTF-8, so
    // that is checked first.
    let text = std::str::from_utf8(message).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(drop)
        .map_err(|e| e.to_string())
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

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
