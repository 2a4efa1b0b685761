//! Foundation benchmarks, each with a baseline measured in the same run:
//!
//! - `call/*`: a trivial tool call in-process through the whole host path
//!   (schema validation, fresh instance, limits, audit log) and the plugin
//!   call alone (fresh instance and limits), against the floor (a fresh
//!   store from the pre-linked component and the guest call, nothing else);
//! - `stage/*`: the other stages of a call one by one: argument validation,
//!   handing the audit entry over, converting the result, encoding the
//!   JSON-RPC answer;
//! - `http/*`: `tools/call` over streamable HTTP against `server/discover` on the same
//!   server and connection (2026-07-28 stateless requests);
//! - `startup/*`: process start to the first tool list with a warm and a
//!   cold compile cache, against `berth --version`.

// criterion_group! expands to an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::{CallSink, Unattended};
use berth::runtime::registry::Owner;
use berth::state::audit::AuditLog;
use berth::state::{AuditEntry, Database};
use common::floor::Floor;
use common::{berth, conformance_wasm, fixture_dir, post, serve, stateless};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        plugin_dirs: vec![dir.join("plugins")],
        bundled_plugins: false,
        ..Config::default()
    }
}

fn calls(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_dir();
    let host = runtime
        .block_on(PluginHost::start(config(dir.path())))
        .unwrap();
    let Owner::Plugin(plugin) = host
        .registry()
        .tool("test_simple_text")
        .unwrap()
        .owner
        .clone()
    else {
        panic!("test_simple_text is served by the host, not the conformance plugin");
    };
    let sink: Arc<dyn CallSink> = Arc::new(Unattended);
    let floor = Floor::new(&conformance_wasm());
    let mut group = c.benchmark_group("call");
    group.bench_function("floor_instance_pre_call", |b| {
        b.to_async(&runtime).iter(|| floor.call("test_simple_text"))
    });
    group.bench_function("baseline_plugin_call_only", |b| {
        b.to_async(&runtime)
            .iter(|| plugin.call_tool("test_simple_text", "{}", sink.clone()))
    });
    group.bench_function("berth_host_call", |b| {
        b.to_async(&runtime)
            .iter(|| host.call_tool("test_simple_text", json!({}), sink.clone()))
    });
    group.finish();

    let registry = host.registry();
    let entry = registry.tool("test_simple_text").unwrap();
    let output = runtime
        .block_on(plugin.call_tool("test_simple_text", "{}", sink.clone()))
        .unwrap();
    let audit = AuditLog::start(Database::in_memory().unwrap()).unwrap();
    let mut stages = c.benchmark_group("stage");
    stages.bench_function("validate_arguments", |b| {
        b.iter(|| entry.validate(&json!({})).unwrap())
    });
    stages.bench_function("audit_record", |b| {
        b.iter(|| {
            audit.record(AuditEntry {
                plugin: "conformance".into(),
                tool: "test_simple_text".into(),
                outcome: "ok".into(),
                duration_ms: 0,
            })
        })
    });
    stages.bench_function("convert_result", |b| {
        b.iter(|| berth::server::convert::output(output.clone()))
    });
    let result = berth::server::convert::output(output.clone());
    stages.bench_function("encode_answer", |b| {
        b.iter(|| {
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "result": &result})).unwrap()
        })
    });
    stages.finish();
}

fn http(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_dir();
    let server = serve(dir.path(), "info");
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let client = berth::gateway::connect::http_client().unwrap();
    let mut group = c.benchmark_group("http");
    group.bench_function("baseline_discover", |b| {
        b.to_async(&runtime)
            .iter(|| post(&client, &url, stateless("server/discover", None, json!({}))))
    });
    group.bench_function("tools_call", |b| {
        b.to_async(&runtime).iter(|| {
            post(
                &client,
                &url,
                stateless(
                    "tools/call",
                    Some("test_simple_text"),
                    json!({"name": "test_simple_text", "arguments": {}}),
                ),
            )
        })
    });
    group.finish();
}

fn startup(c: &mut Criterion) {
    let dir = fixture_dir();
    let run = |args: &[&str]| {
        let out = Command::new(berth())
            .args(["--no-bundled", "--log", "warn", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--plugin-dir")
            .arg(dir.path().join("plugins"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    let mut group = c.benchmark_group("startup");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("baseline_version", |b| b.iter(|| run(&["--version"])));
    run(&["tools"]);
    group.bench_function("first_tools_list_warm_cache", |b| {
        b.iter(|| run(&["tools"]))
    });
    group.bench_function("first_tools_list_cold_cache", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(dir.path().join("data/cache"));
            run(&["tools"])
        })
    });
    group.finish();
}

criterion_group!(benches, calls, http, startup);
criterion_main!(benches);
