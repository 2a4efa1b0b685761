//! The audit log under load: calls are audited off the call path, and a
//! `kill -TERM` in the middle of a burst loses no entry of a call that was
//! answered.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth::state::Database;
use common::Sandbox;
use serde_json::json;

/// Connections sending calls at once, and the most calls each sends.
const CONNECTIONS: usize = 16;
const CALLS: usize = 400;

/// One 2026-07-28 stateless `tools/call` of the conformance fixture's
/// simplest tool; whether it was answered with a result.
async fn call(client: &reqwest::Client, url: &str, token: &str) -> bool {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {
            "name": "test_simple_text", "arguments": {},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        }
    });
    let sent = client
        .post(url)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "test_simple_text")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    let Ok(response) = sent else { return false };
    if !response.status().is_success() {
        return false;
    }
    match response.text().await {
        Ok(text) => text.contains("\"result\""),
        Err(_) => false,
    }
}

#[test]
fn a_term_under_load_loses_no_answered_call_from_the_audit_log() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let mut server = sandbox.serve_http(&[]);
    let answered = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let senders: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let url = server.url.clone();
                let token = server.token.clone().expect("a generated token");
                let answered = answered.clone();
                tokio::spawn(async move {
                    let client = berth::gateway::connect::http_client().unwrap();
                    for _ in 0..CALLS {
                        if !call(&client, &url, &token).await {
                            break;
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Stop the server in the middle of the burst.
        while answered.load(Ordering::SeqCst) < CONNECTIONS * CALLS / 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let term = Command::new("kill")
            .args(["-TERM", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        for sender in senders {
            sender.await.unwrap();
        }
    });
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "berth exited with {status}; log:\n{}",
        server.log()
    );
    let answered = answered.load(Ordering::SeqCst);
    assert!(
        answered < CONNECTIONS * CALLS,
        "the burst ended before the signal; nothing was tested"
    );
    let db = Database::open(&sandbox.data().join("berth.db")).unwrap();
    let audited = db
        .recent_audit(CONNECTIONS * CALLS * 2)
        .unwrap()
        .iter()
        .filter(|e| e.tool == "test_simple_text")
        .count();
    // A call can finish and be audited while its answer is cut off by the
    // shutdown, so the log may hold more than was answered, never fewer.
    assert!(
        audited >= answered,
        "{answered} calls were answered but only {audited} audited"
    );
}
