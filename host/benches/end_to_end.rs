//! A trivial tool call end to end, each figure against a baseline from the
//! same run:
//!
//! - the floor (a fresh store from the pre-linked component and the guest
//!   call), the whole in-process host path, and sequential requests from a
//!   raw JSON-RPC client over stdio (a line through `cat` and back, which
//!   is what the pipes cost, then `ping`, which is the transport alone,
//!   `tools/call` and `tools/list`), as p50 and p95 and as multiples of the
//!   floor's p50; when `BERTH_BENCH_WASSETTE` names a wassette binary and
//!   `BERTH_BENCH_WASSETTE_COMPONENT` a component, the same client against
//!   wassette in the same run;
//! - kept-alive connections under load over streamable HTTP (2026-07-28
//!   stateless requests): for 1, 16 and 64 connections, each sending its
//!   requests one after another on its own connection, the p50 and p99
//!   latency and the requests per second of `tools/call`, against
//!   `server/discover` (which touches no plugin) on the same server; then
//!   `tools/list` at 16 connections.
//!
//! `cargo bench -p berth --bench end_to_end`

mod common;
// Beside `common`, not in it: only this bench drives a raw client.
#[path = "common/raw.rs"]
mod raw;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::Unattended;
use common::floor::Floor;
use common::{conformance_wasm, fixture_dir, post, serve, stateless};
use raw::RawClient;
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
            let client = berth::gateway::connect::http_builder()
                .unwrap()
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

/// berth serving `dir`'s plugins on stdio to a raw client.
fn berth_on_stdio(dir: &std::path::Path) -> RawClient {
    RawClient::start(
        Command::new(common::berth())
            .args(["--no-bundled", "--log", "warn", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--plugin-dir")
            .arg(dir.join("plugins"))
            .arg("serve"),
    )
}

/// wassette serving one component on stdio, when `BERTH_BENCH_WASSETTE`
/// names its binary and `BERTH_BENCH_WASSETTE_COMPONENT` the component;
/// with the tool to call (`BERTH_BENCH_WASSETTE_TOOL`, or its first).
fn wassette_on_stdio(dir: &std::path::Path) -> Option<(RawClient, String)> {
    let binary = std::env::var_os("BERTH_BENCH_WASSETTE")?;
    let component = std::env::var_os("BERTH_BENCH_WASSETTE_COMPONENT")
        .expect("BERTH_BENCH_WASSETTE_COMPONENT names the component wassette serves");
    let plugins = dir.join("wassette");
    std::fs::create_dir_all(&plugins).unwrap();
    let component = std::path::Path::new(&component);
    std::fs::copy(component, plugins.join(component.file_name().unwrap())).unwrap();
    let mut client = RawClient::start(
        Command::new(binary)
            .args(["serve", "--stdio", "--plugin-dir"])
            .arg(&plugins)
            .env("RUST_LOG", "warn"),
    );
    let tool = match std::env::var("BERTH_BENCH_WASSETTE_TOOL") {
        Ok(tool) => tool,
        Err(_) => client.request("tools/list", json!({}))["tools"][0]["name"]
            .as_str()
            .expect("wassette serves a tool")
            .to_string(),
    };
    Some((client, tool))
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
    let call = json!({"name": "test_simple_text", "arguments": {}});
    let mut stdio = berth_on_stdio(dir.path());
    let time = |client: &mut RawClient, method: &str, params: &Value| {
        client.time(method, params, STDIO_WARM_UP, STDIO_CALLS)
    };
    let mut rows = vec![
        ("floor (baseline)", floor_times),
        ("in-process host path", host_times),
        (
            "pipe round trip (cat)",
            raw::pipe_round_trips(STDIO_WARM_UP, STDIO_CALLS),
        ),
        ("stdio ping", time(&mut stdio, "ping", &json!({}))),
        ("stdio tools/call", time(&mut stdio, "tools/call", &call)),
        (
            "stdio tools/list",
            time(&mut stdio, "tools/list", &json!({})),
        ),
    ];
    drop(stdio);
    if let Some((mut wassette, tool)) = wassette_on_stdio(dir.path()) {
        let call = json!({"name": tool, "arguments": {}});
        rows.push(("wassette ping", time(&mut wassette, "ping", &json!({}))));
        rows.push((
            "wassette tools/call",
            time(&mut wassette, "tools/call", &call),
        ));
    }
    let floor_p50 = percentile(&rows[0].1, 0.5);
    println!(
        "{:>22} | {:>8} {:>8} | {:>8}",
        "one request, sequential", "p50 µs", "p95 µs", "÷ floor"
    );
    for (name, times) in &rows {
        let p50 = percentile(times, 0.5);
        println!(
            "{name:>22} | {:>8.1} {:>8.1} | {:>7.2}×",
            us(p50),
            us(percentile(times, 0.95)),
            p50.as_secs_f64() / floor_p50.as_secs_f64()
        );
    }
    let p50_of = |name: &str| {
        rows.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, times)| percentile(times, 0.5).as_secs_f64())
    };
    if let (Some(berth), Some(wassette)) =
        (p50_of("stdio tools/call"), p50_of("wassette tools/call"))
    {
        println!(
            "berth tools/call ÷ wassette tools/call (p50): {:.2}×",
            berth / wassette
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
    let base = runtime.block_on(load(&url, 16, discover));
    let list = runtime.block_on(load(&url, 16, || stateless("tools/list", None, json!({}))));
    println!(
        "tools/list at 16 connections: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s; p50 {:.2}× discover's",
        ms(list.p50),
        ms(list.p99),
        list.per_second,
        list.p50.as_secs_f64() / base.p50.as_secs_f64()
    );
}
