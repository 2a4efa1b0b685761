//! A trivial tool call end to end, each figure against a baseline from the
//! same run:
//!
//! - the floor (a fresh store from the pre-linked component and the guest
//!   call), the whole in-process host path, and sequential calls from a raw
//!   JSON-RPC client over stdio, as p50 and p95 and as multiples of the
//!   floor's p50;
//! - kept-alive connections under load over streamable HTTP (2026-07-28
//!   stateless requests): for 1, 16 and 64 connections, each sending its
//!   requests one after another on its own connection, the p50 and p99
//!   latency and the requests per second of `tools/call`, against
//!   `server/discover` (which touches no plugin) on the same server.
//!
//! `cargo bench -p berth --bench end_to_end`

mod common;

use std::time::{Duration, Instant};

use std::sync::Arc;

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::Unattended;
use common::floor::Floor;
use common::{conformance_wasm, fixture_dir, post, serve, stateless};
use serde_json::{Value, json};

/// Requests each connection sends before and while measuring.
const WARM_UP: usize = 50;
const REQUESTS: usize = 400;

/// Sequential calls timed in-process and over stdio, after as many again
/// to warm up.
const STDIO_CALLS: usize = 2000;
const STDIO_WARM_UP: usize = 50;

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

/// Latencies of `CALLS` sequential `tools/call` requests over stdio from a
/// raw JSON-RPC client (one line per message), after `WARM_UP` more.
fn stdio_calls(dir: &std::path::Path) -> Vec<Duration> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let mut child = Command::new(common::berth())
        .args(["--no-bundled", "--log", "warn", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // Send one message; with an id, wait for the answer carrying it.
    let mut exchange = |message: Value| {
        writeln!(input, "{message}").unwrap();
        let Some(id) = message.get("id").cloned() else {
            return;
        };
        loop {
            line.clear();
            assert!(
                output.read_line(&mut line).unwrap() > 0,
                "berth closed stdout"
            );
            let answer: Value = serde_json::from_str(&line).unwrap();
            if answer.get("id") == Some(&id) {
                assert!(answer.get("result").is_some(), "{answer}");
                return;
            }
        }
    };
    exchange(json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "0"}}
    }));
    exchange(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let mut times = Vec::with_capacity(STDIO_CALLS);
    for id in 1..=(STDIO_WARM_UP + STDIO_CALLS) {
        let request = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "test_simple_text", "arguments": {}}
        });
        let at = Instant::now();
        exchange(request);
        if id > STDIO_WARM_UP {
            times.push(at.elapsed());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    times.sort();
    times
}

/// Latencies of `STDIO_CALLS` sequential runs of `call`, after
/// `STDIO_WARM_UP` more, sorted.
async fn sequential<F: Future<Output = ()>>(call: impl Fn() -> F) -> Vec<Duration> {
    for _ in 0..STDIO_WARM_UP {
        call().await;
    }
    let mut times = Vec::with_capacity(STDIO_CALLS);
    for _ in 0..STDIO_CALLS {
        let at = Instant::now();
        call().await;
        times.push(at.elapsed());
    }
    times.sort();
    times
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_dir();

    let floor = Floor::new(&conformance_wasm());
    let floor_times = runtime.block_on(sequential(|| floor.call("test_simple_text")));
    let config = Config {
        data_dir: dir.path().join("data"),
        plugin_dirs: vec![dir.path().join("plugins")],
        bundled_plugins: false,
        ..Config::default()
    };
    let host = runtime.block_on(PluginHost::start(config)).unwrap();
    let host_times = runtime.block_on(sequential(|| async {
        host.call_tool("test_simple_text", json!({}), Arc::new(Unattended))
            .await
            .unwrap();
    }));
    drop(host);
    let stdio_times = stdio_calls(dir.path());
    let floor_p50 = percentile(&floor_times, 0.5);
    println!(
        "{:>22} | {:>8} {:>8} | {:>8}",
        "one call, sequential", "p50 µs", "p95 µs", "÷ floor"
    );
    for (name, times) in [
        ("floor (baseline)", &floor_times),
        ("in-process host path", &host_times),
        ("stdio, raw client", &stdio_times),
    ] {
        let p50 = percentile(times, 0.5);
        println!(
            "{name:>22} | {:>8.1} {:>8.1} | {:>7.2}×",
            us(p50),
            us(percentile(times, 0.95)),
            p50.as_secs_f64() / floor_p50.as_secs_f64()
        );
    }
    println!();

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
