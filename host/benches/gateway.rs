//! A forwarded trivial call against a direct call to the same upstream,
//! in the same run: a raw JSON-RPC client calls `test_simple_text` of a
//! berth serving the conformance fixture on stdio (direct), then
//! `up__test_simple_text` of a second berth that has the first as its
//! upstream `[servers.up]` (forwarded). The difference of the p50s is what
//! the gateway adds; the goal is at most 1 ms.
//!
//! `cargo bench -p berth --bench gateway`

// This bench uses a small part of what the benches share.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/raw.rs"]
mod raw;

use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture_dir;
use raw::RawClient;
use serde_json::json;

const WARM_UP: usize = 50;
const CALLS: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let dir = fixture_dir();
    let upstream: Vec<String> = vec![
        common::berth().display().to_string(),
        "--no-bundled".into(),
        "--log".into(),
        "warn".into(),
        "--data-dir".into(),
        dir.path().join("upstream-data").display().to_string(),
        "--plugin-dir".into(),
        dir.path().join("plugins").display().to_string(),
        "serve".into(),
    ];
    let mut direct = RawClient::start(Command::new(&upstream[0]).args(&upstream[1..]));
    let call = json!({"name": "test_simple_text", "arguments": {}});
    let direct_times = direct.time("tools/call", &call, WARM_UP, CALLS);
    drop(direct);

    // The upstream's data dir is its own; isolation is off so the
    // upstream berth may write it (the bench measures forwarding, not
    // bubblewrap's start).
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("[runs]\nisolate = false\n\n[servers.up]\ncommand = {upstream:?}\n"),
    )
    .unwrap();
    let mut gateway = RawClient::start(
        Command::new(common::berth())
            .args(["--no-bundled", "--log", "warn", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("gateway-data"))
            .arg("serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = gateway.request("tools/list", json!({}));
        let names: Vec<&str> = listed["tools"]
            .as_array()
            .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        if names.contains(&"up__test_simple_text") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream never connected: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let forwarded = json!({"name": "up__test_simple_text", "arguments": {}});
    let forwarded_times = gateway.time("tools/call", &forwarded, WARM_UP, CALLS);

    let direct_p50 = percentile(&direct_times, 0.5);
    let forwarded_p50 = percentile(&forwarded_times, 0.5);
    println!(
        "{:>26} | {:>8} {:>8}",
        "tools/call, sequential", "p50 µs", "p95 µs"
    );
    for (name, times) in [
        ("direct (baseline)", &direct_times),
        ("through the gateway", &forwarded_times),
    ] {
        println!(
            "{name:>26} | {:>8.1} {:>8.1}",
            us(percentile(times, 0.5)),
            us(percentile(times, 0.95))
        );
    }
    println!(
        "the gateway adds {:.1} µs at p50 ({:.2}× the direct call; goal: at most 1000 µs added)",
        us(forwarded_p50) - us(direct_p50),
        forwarded_p50.as_secs_f64() / direct_p50.as_secs_f64()
    );
}
