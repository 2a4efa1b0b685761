//! Hostile plugins: each fails only its own call, within its limit, with a
//! clear error, while good calls keep succeeding and the host's memory
//! returns to its baseline.

mod common;

use common::{Sandbox, drive, first_text, http_job, python};
use serde_json::{Value, json};

const LIMITS: &str = r#"
[plugin_limits.loop-forever]
cpu_ms = 500
timeout_ms = 20000

[plugin_limits.exhaust-memory]
memory_mib = 256

[plugin_limits.huge-output]
max_output_bytes = 1048576
"#;

fn category(outcome: &Value) -> &str {
    outcome["result"]["_meta"]["berth/error"]["category"]
        .as_str()
        .unwrap_or("(none)")
}

fn hostile_sandbox() -> Sandbox {
    let sandbox = Sandbox::with_fixtures(&[
        "conformance",
        "loop-forever",
        "trap",
        "panic",
        "exhaust-memory",
        "huge-output",
        "probe-ungranted",
    ]);
    sandbox.write_config(LIMITS);
    sandbox
}

#[test]
fn each_hostile_call_fails_alone_while_good_calls_succeed() {
    let Some(py) = python() else { return };
    let sandbox = hostile_sandbox();
    let server = sandbox.serve_http(&[]);
    let mut calls = vec![
        json!({"tool": "loop_forever"}),
        json!({"tool": "trap"}),
        json!({"tool": "panic"}),
        json!({"tool": "exhaust_memory"}),
        json!({"tool": "huge_output", "args": {"megabytes": 16}}),
    ];
    let good = 24;
    calls.extend((0..good).map(|_| json!({"tool": "test_simple_text"})));
    let results = drive(
        &py,
        http_job(
            &server,
            "legacy",
            json!([{"op": "concurrent", "calls": calls}]),
        ),
    );
    let results = results[0]["results"].as_array().unwrap();

    let looped = &results[0];
    assert_eq!(category(looped), "cpu-limit", "{looped}");
    assert!(
        looped["seconds"].as_f64().unwrap() < 15.0,
        "CPU limit took too long: {looped}"
    );
    assert!(first_text(looped).contains("500 ms"), "{looped}");
    assert_eq!(category(&results[1]), "crashed", "{}", results[1]);
    assert!(
        first_text(&results[1]).contains("unreachable"),
        "{}",
        results[1]
    );
    assert_eq!(category(&results[2]), "crashed", "{}", results[2]);
    assert!(
        first_text(&results[2]).contains("fixture panicked on purpose"),
        "panic message missing: {}",
        results[2]
    );
    assert_eq!(category(&results[3]), "memory-limit", "{}", results[3]);
    assert!(
        first_text(&results[3]).contains("256 MiB"),
        "{}",
        results[3]
    );
    assert_eq!(category(&results[4]), "output-too-large", "{}", results[4]);
    assert!(
        first_text(&results[4]).contains("1048576"),
        "{}",
        results[4]
    );
    for (i, ok) in results[5..].iter().enumerate() {
        assert_eq!(
            first_text(ok),
            "This is a simple text response for testing.",
            "good call {i} failed: {ok}"
        );
    }

    // Hostile plugins stay usable for their next call: every call has a fresh instance.
    let again = drive(
        &py,
        http_job(
            &server,
            "legacy",
            json!([{"op": "call", "tool": "huge_output", "args": {"megabytes": 0}}]),
        ),
    );
    assert_eq!(again[0]["result"]["isError"], false, "{}", again[0]);
}

#[test]
fn memory_returns_to_baseline_after_hostile_calls() {
    let Some(py) = python() else { return };
    let sandbox = hostile_sandbox();
    let server = sandbox.serve_http(&[]);
    let battery = json!([{"op": "concurrent", "calls": [
        {"tool": "exhaust_memory"},
        {"tool": "huge_output", "args": {"megabytes": 32}},
        {"tool": "test_simple_text"},
    ]}]);
    // Warm up once so allocator pools and caches are in their steady state.
    drive(&py, http_job(&server, "legacy", battery.clone()));
    let baseline = server.rss_kib();
    for _ in 0..4 {
        drive(&py, http_job(&server, "legacy", battery.clone()));
    }
    let after = server.rss_kib();
    println!("berth RSS: baseline {baseline} KiB, after 4 hostile rounds {after} KiB");
    // Each round has a plugin take 256 MiB and another return 32 MiB; growth
    // well under one round's worth shows both were given back.
    assert!(
        after < baseline + 48 * 1024,
        "RSS grew from {baseline} KiB to {after} KiB"
    );
}

#[test]
fn every_ungranted_capability_is_denied() {
    let Some(py) = python() else { return };
    let sandbox = hostile_sandbox();
    let server = sandbox.serve_http(&[]);
    // Real targets on this machine, so a denial cannot be a connection error.
    let url = format!("http://127.0.0.1:{}/healthz", server.port);
    let addr = format!("127.0.0.1:{}", server.port);
    let probes = [
        ("process", None),
        ("state", None),
        ("http", Some(url)),
        ("elicit", None),
        ("filesystem", None),
        ("environment", None),
        ("socket", Some(addr)),
    ];
    let ops: Vec<Value> = probes
        .iter()
        .map(|(capability, target)| {
            json!({"op": "call", "tool": "probe", "args": {"capability": capability, "target": target},
                   "elicit": {"action": "accept", "content": {}}})
        })
        .collect();
    let results = drive(&py, http_job(&server, "legacy", Value::Array(ops)));
    for ((capability, _), outcome) in probes.iter().zip(&results) {
        assert_eq!(
            category(outcome),
            "denied",
            "probe `{capability}` was not denied: {outcome}"
        );
        assert!(!first_text(outcome).contains("allowed:"), "{outcome}");
        assert!(
            outcome["elicitations"].as_array().unwrap().is_empty(),
            "user was asked for `{capability}`"
        );
    }
    assert!(first_text(&results[0]).contains("`sh`"), "{}", results[0]);
}
