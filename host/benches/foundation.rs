//! Foundation benchmarks, each with a baseline measured in the same run:
//!
//! - `call/*`: a trivial tool call in-process through the whole host path
//!   (schema validation, fresh instance, limits, audit log) against the
//!   plugin call alone (fresh instance and limits, nothing else);
//! - `http/*`: `tools/call` over streamable HTTP against `server/discover` on the same
//!   server and connection (2026-07-28 stateless requests);
//! - `startup/*`: process start to the first tool list with a warm and a
//!   cold compile cache, against `berth --version`.

// criterion_group! expands to an undocumented public function.
#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth::app::config::Config;
use berth::app::host::PluginHost;
use berth::contract::sink::{CallSink, Unattended};
use berth::runtime::registry::Owner;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("plugins/conformance");
    std::fs::create_dir_all(&dest).unwrap();
    let artifacts = Path::new(env!("BERTH_PLUGIN_ARTIFACTS"));
    std::fs::copy(
        artifacts.join("berth_fixture_conformance.wasm"),
        dest.join("plugin.wasm"),
    )
    .unwrap();
    let sources = Path::new(env!("BERTH_PLUGIN_SOURCES"));
    std::fs::copy(
        sources.join("fixtures/conformance/plugin.toml"),
        dest.join("plugin.toml"),
    )
    .unwrap();
    dir
}

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
    let mut group = c.benchmark_group("call");
    group.bench_function("baseline_plugin_call_only", |b| {
        b.to_async(&runtime)
            .iter(|| plugin.call_tool("test_simple_text", "{}", sink.clone()))
    });
    group.bench_function("berth_host_call", |b| {
        b.to_async(&runtime)
            .iter(|| host.call_tool("test_simple_text", json!({}), sink.clone()))
    });
    group.finish();
}

fn berth() -> PathBuf {
    // The bench profile builds the binary next to this bench's deps dir.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("berth")
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let mut child = Command::new(berth())
        .args(["--no-bundled", "--log", "info", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run `cargo build --release -p berth` first");
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.map_while(Result::ok) {
        if let Some(at) = line.find("listening on http://127.0.0.1:") {
            let rest = &line[at + "listening on http://127.0.0.1:".len()..];
            let port = rest.split('/').next().unwrap().parse().unwrap();
            return Server(child, port);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("berth did not start");
}

fn stateless(
    method: &str,
    name: Option<&str>,
    params: serde_json::Value,
) -> (reqwest::header::HeaderMap, serde_json::Value) {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("mcp-protocol-version", "2026-07-28".parse().unwrap());
    headers.insert("mcp-method", method.parse().unwrap());
    if let Some(name) = name {
        headers.insert("mcp-name", name.parse().unwrap());
    }
    headers.insert(
        "accept",
        "application/json, text/event-stream".parse().unwrap(),
    );
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    (
        headers,
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
}

fn http(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_dir();
    let server = serve(dir.path());
    let url = format!("http://127.0.0.1:{}/mcp", server.1);
    let client = reqwest::Client::new();
    let post = |(headers, body): (reqwest::header::HeaderMap, serde_json::Value)| {
        let request = client.post(&url).headers(headers).json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success());
            response.bytes().await.unwrap()
        }
    };
    let mut group = c.benchmark_group("http");
    group.bench_function("baseline_discover", |b| {
        b.to_async(&runtime)
            .iter(|| post(stateless("server/discover", None, json!({}))))
    });
    group.bench_function("tools_call", |b| {
        b.to_async(&runtime).iter(|| {
            post(stateless(
                "tools/call",
                Some("test_simple_text"),
                json!({"name": "test_simple_text", "arguments": {}}),
            ))
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
