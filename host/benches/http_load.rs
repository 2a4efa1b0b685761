//! Kept-alive connections under load over streamable HTTP (2026-07-28
//! stateless requests): for 1, 16 and 64 connections, each sending its
//! requests one after another on its own connection, the p50 and p99
//! latency and the requests per second of a trivial `tools/call`, against
//! `server/discover` (which touches no plugin) on the same server in the
//! same run as the baseline.
//!
//! `cargo bench -p berth --bench http_load`

mod common;

use std::time::{Duration, Instant};

use common::{fixture_dir, post, serve, stateless};
use serde_json::{Value, json};

/// Requests each connection sends before and while measuring.
const WARM_UP: usize = 50;
const REQUESTS: usize = 400;

/// What one case measured.
struct Load {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `connections` kept-alive clients sending `request` concurrently.
async fn load(
    url: &str,
    connections: usize,
    request: impl Fn() -> (reqwest::header::HeaderMap, Value) + Clone + Send + 'static,
) -> Load {
    let started = Instant::now();
    let clients = (0..connections).map(|_| {
        let url = url.to_string();
        let request = request.clone();
        tokio::spawn(async move {
            // One connection per client, reused for every request.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()
                .unwrap();
            for _ in 0..WARM_UP {
                post(&client, &url, request()).await;
            }
            let mut times = Vec::with_capacity(REQUESTS);
            for _ in 0..REQUESTS {
                let at = Instant::now();
                post(&client, &url, request()).await;
                times.push(at.elapsed());
            }
            times
        })
    });
    let mut times = Vec::new();
    for client in futures::future::join_all(clients).await {
        times.extend(client.unwrap());
    }
    let elapsed = started.elapsed();
    times.sort();
    Load {
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        per_second: (connections * (REQUESTS + WARM_UP)) as f64 / elapsed.as_secs_f64(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_dir();
    let server = serve(dir.path(), "info");
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let discover = || stateless("server/discover", None, json!({}));
    let call = || {
        stateless(
            "tools/call",
            Some("test_simple_text"),
            json!({"name": "test_simple_text", "arguments": {}}),
        )
    };
    println!(
        "{:>11} | {:>26} | {:>26} | {:>13}",
        "connections", "server/discover (baseline)", "tools/call", "call ÷ discover"
    );
    println!(
        "{:>11} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>6} {:>6}",
        "", "p50 ms", "p99 ms", "req/s", "p50 ms", "p99 ms", "req/s", "p50", "p99"
    );
    for connections in [1, 16, 64] {
        let base = runtime.block_on(load(&url, connections, discover));
        let tool = runtime.block_on(load(&url, connections, call));
        println!(
            "{connections:>11} | {:>8.2} {:>8.2} {:>8.0} | {:>8.2} {:>8.2} {:>8.0} | {:>5.2}× {:>5.2}×",
            ms(base.p50),
            ms(base.p99),
            base.per_second,
            ms(tool.p50),
            ms(tool.p99),
            tool.per_second,
            tool.p50.as_secs_f64() / base.p50.as_secs_f64(),
            tool.p99.as_secs_f64() / base.p99.as_secs_f64(),
        );
    }
}
