//! What the benchmarks share: a plugin directory with the conformance
//! fixture, the floor of a tool call, the release binary, a served berth
//! whose log is drained, and 2026-07-28 stateless requests.

pub mod floor;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;

/// The conformance fixture's component.
pub fn conformance_wasm() -> PathBuf {
    Path::new(env!("BERTH_PLUGIN_ARTIFACTS")).join("berth_fixture_conformance.wasm")
}

/// A temporary directory whose `plugins/` holds the conformance fixture.
pub fn fixture_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("plugins/conformance");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(conformance_wasm(), dest.join("plugin.wasm")).unwrap();
    let sources = Path::new(env!("BERTH_PLUGIN_SOURCES"));
    std::fs::copy(
        sources.join("fixtures/conformance/plugin.toml"),
        dest.join("plugin.toml"),
    )
    .unwrap();
    dir
}

/// The berth binary of this bench's profile.
pub fn berth() -> PathBuf {
    // The bench profile builds the binary next to this bench's deps dir.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("berth")
}

/// The bearer token benchmarks serve with.
pub const TOKEN: &str = "bench-token-0123456789abcdef";

/// A served berth, killed on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth serve --http` over `dir`'s plugins, logging at `log` (at least
/// `info`, where berth says where it listens). Its log is read to the end
/// on a thread of its own, so the server never writes into a closed or
/// full pipe.
pub fn serve(dir: &Path, log: &str) -> Server {
    let mut child = Command::new(berth())
        .args(["--no-bundled", "--log", log, "--data-dir"])
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .args(["serve", "--http", "127.0.0.1:0"])
        .env("BERTH_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run `cargo build --release -p berth` first");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(at) = line.find("listening on http://127.0.0.1:") {
            let rest = &line[at + "listening on http://127.0.0.1:".len()..];
            let port = rest.split('/').next().unwrap().parse().unwrap();
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return Server { child, port };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("berth did not start");
}

/// Headers and body of a 2026-07-28 stateless request.
pub fn stateless(
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
    headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
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

/// POST one request; the response's status and body, or a panic naming
/// what went wrong.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    (headers, body): (reqwest::header::HeaderMap, serde_json::Value),
) -> bytes::Bytes {
    let response = client
        .post(url)
        .headers(headers)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e:?}"));
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading the answer of {url} failed: {e:?}"));
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    bytes
}
