//! Fuzzing the real binary's framing: arbitrary lines on stdio and
//! arbitrary bodies over HTTP, each followed by a probe the server must
//! still answer. A bounded number of cases (`BERTH_FUZZ_CASES`, default
//! 2,000 per transport) runs with the rest of the suite.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{Sandbox, berth};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    })
}

/// Any JSON value, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message that is almost a JSON-RPC request: real and invented
/// methods, ids of every type, params of any shape, and `tools/call` of
/// real tools with arbitrary arguments.
fn json_rpc() -> impl Strategy<Value = Value> {
    let method = prop_oneof![
        Just("tools/call".to_string()),
        Just("tools/list".to_string()),
        Just("initialize".to_string()),
        Just("ping".to_string()),
        Just("logging/setLevel".to_string()),
        Just("notifications/cancelled".to_string()),
        Just("notifications/initialized".to_string()),
        Just("server/discover".to_string()),
        Just("resources/read".to_string()),
        ".{0,20}",
    ];
    let id = prop_oneof![
        Just(None),
        any::<i64>().prop_map(|i| Some(json!(i))),
        "[a-z0-9]{0,8}".prop_map(|s| Some(json!(s))),
        Just(Some(Value::Null)),
        any_json().prop_map(Some),
    ];
    let tool = prop_oneof![
        Just("test_simple_text"),
        Just("test_error_handling"),
        Just("test_image_content"),
        Just("test_tool_with_logging"),
        Just("no_such_tool"),
    ];
    let call = (tool, any_json(), any_json()).prop_map(
        |(name, arguments, meta)| json!({"name": name, "arguments": arguments, "_meta": meta}),
    );
    let params = prop_oneof![any_json(), call];
    (method, id, params, any::<bool>()).prop_map(|(method, id, params, versioned)| {
        let mut message = json!({"method": method, "params": params});
        if versioned {
            message["jsonrpc"] = json!("2.0");
        }
        if let Some(id) = id {
            message["id"] = id;
        }
        message
    })
}

/// One line for stdio: raw bytes (invalid UTF-8 included), any JSON, or a
/// near-JSON-RPC message, never containing a newline.
fn stdio_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(
            any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
            0..200
        ),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        json_rpc().prop_map(|v| v.to_string().into_bytes()),
        json_rpc().prop_map(|v| {
            let mut bytes = v.to_string().into_bytes();
            bytes.truncate(bytes.len() / 2);
            bytes
        }),
    ]
}

/// `berth serve` on stdio after the handshake, with its stdout as lines.
struct StdioServer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl StdioServer {
    fn start(sandbox: &Sandbox) -> StdioServer {
        let mut child = Command::new(berth())
            .args(sandbox.args())
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(sandbox.dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("starting berth serve");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = StdioServer {
            child,
            stdin,
            lines,
        };
        server.send(&json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}}).to_string().into_bytes()).expect("sending initialize");
        server.expect_answer("init").expect("initialize");
        server
            .send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .expect("sending initialized");
        server
    }

    fn send(&mut self, line: &[u8]) -> Result<(), String> {
        self.stdin
            .write_all(line)
            .and_then(|()| self.stdin.write_all(b"\n"))
            .and_then(|()| self.stdin.flush())
            .map_err(|e| {
                format!(
                    "writing to berth's stdin: {e} (exit: {:?})",
                    self.child.try_wait()
                )
            })
    }

    /// Read until the answer to request `id`; every line on the way must
    /// be one JSON object (the framing holds).
    fn expect_answer(&mut self, id: &str) -> Result<Value, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Err(format!("no answer to {id} in 30 s")),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "berth closed stdout (exit: {:?})",
                        self.child.try_wait()
                    ));
                }
            };
            let message: Value = serde_json::from_str(&line)
                .map_err(|e| format!("a line on stdout is not JSON ({e}): {line}"))?;
            if !message.is_object() {
                return Err(format!("a line on stdout is not an object: {line}"));
            }
            if message["id"] == json!(id) {
                return Ok(message);
            }
        }
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stdio_survives_arbitrary_lines_and_keeps_its_framing() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = std::cell::RefCell::new(StdioServer::start(&sandbox));
    let probe = std::cell::Cell::new(0u64);
    // Shrinking runs against a server the first failure may have ended, so
    // the line that failed first is the one to report.
    let first_failure = std::cell::RefCell::new(None::<String>);
    let previous = std::cell::RefCell::new(String::new());
    let result = runner().run(&stdio_line(), |line| {
        let mut server = server.borrow_mut();
        let what = String::from_utf8_lossy(&line).to_string();
        let fail = |e: String| {
            first_failure.borrow_mut().get_or_insert_with(|| {
                format!("after {:?} (then {what:?}): {e}", previous.borrow())
            });
            TestCaseError::fail(format!("after {what:?}: {e}"))
        };
        server.send(&line).map_err(fail)?;
        probe.set(probe.get() + 1);
        let id = format!("probe-{}", probe.get());
        server
            .send(
                &json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
                    .to_string()
                    .into_bytes(),
            )
            .map_err(fail)?;
        let answer = server.expect_answer(&id).map_err(fail)?;
        if answer["result"] != json!({}) {
            return Err(fail(format!("ping answered {answer}")));
        }
        *previous.borrow_mut() = what;
        Ok(())
    });
    if let Err(failure) = result {
        let log =
            std::fs::read_to_string(sandbox.dir.path().join("stderr.log")).unwrap_or_default();
        panic!(
            "{}\n(shrunk: {failure})\nberth's log:\n{}",
            first_failure.borrow().as_deref().unwrap_or(""),
            &log[log.len().saturating_sub(3000)..]
        );
    }
}

#[test]
fn http_survives_arbitrary_bodies() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    let token = server.token.clone().expect("a generated token");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = berth::gateway::connect::http_client().unwrap();
    let url = server.url.clone();
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        any_json().prop_map(|v| v.to_string().into_bytes()),
        json_rpc().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(json_rpc(), 0..4)
            .prop_map(|v| Value::from(v).to_string().into_bytes()),
    ];
    let content_type = prop_oneof![
        Just("application/json"),
        Just("text/plain"),
        Just("application/json; charset=latin1"),
    ];
    let result = runner().run(&(body, content_type), |(body, content_type)| {
        let status = runtime.block_on(async {
            client
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", content_type)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .body(body.clone())
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        });
        let status = status.map_err(|e| TestCaseError::fail(format!("request failed: {e}")))?;
        prop_assert!(
            status < 500,
            "status {} for {:?}",
            status,
            String::from_utf8_lossy(&body)
        );
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let health = runtime
        .block_on(client.get(url.replace("/mcp", "/healthz")).send())
        .expect("berth still answers");
    assert!(health.status().is_success());
}
