//! The real `berth` binary driven by the official Python MCP SDK, over stdio
//! and streamable HTTP, in both protocol eras.

mod common;

use common::{Sandbox, drive, first_text, http_job, python, stdio_job};
use serde_json::{Value, json};

/// The basic session every transport and era must support.
fn basic_ops() -> Value {
    json!([
        {"op": "list_tools"},
        {"op": "call", "tool": "test_simple_text"},
        {"op": "call", "tool": "test_elicitation", "args": {"message": 42}},
        {"op": "call", "tool": "no_such_tool"},
        {"op": "call", "tool": "test_tool_with_progress", "progress": true},
        {"op": "call", "tool": "test_image_content"},
        {"op": "call", "tool": "test_error_handling"},
    ])
}

fn check_basic(results: &[Value]) {
    let tools = results[0]["tools"].as_array().expect("tools/list result");
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"test_simple_text"), "{names:?}");
    assert!(
        tools
            .iter()
            .all(|t| t["description"].as_str().is_some_and(|d| !d.is_empty()))
    );
    let simple = tools
        .iter()
        .find(|t| t["name"] == "test_simple_text")
        .unwrap();
    assert_eq!(simple["annotations"]["readOnlyHint"], true);

    assert_eq!(
        first_text(&results[1]),
        "This is a simple text response for testing."
    );
    assert_eq!(results[1]["result"]["isError"], false);

    let invalid = &results[2]["result"];
    assert_eq!(invalid["isError"], true, "{invalid}");
    let text = first_text(&results[2]);
    assert!(
        text.starts_with("invalid-arguments:")
            && text.contains("hint:")
            && text.contains("message"),
        "{text}"
    );
    assert_eq!(
        invalid["_meta"]["berth/error"]["category"],
        "invalid-arguments"
    );

    assert_eq!(
        results[3]["code"], -32602,
        "unknown tool must be a JSON-RPC invalid-params error: {}",
        results[3]
    );
    assert!(
        results[3]["error"]
            .as_str()
            .unwrap()
            .contains("no_such_tool")
    );

    let progress = results[4]["progress"].as_array().unwrap();
    assert!(
        progress.len() >= 3,
        "expected three progress notifications: {progress:?}"
    );
    let values: Vec<f64> = progress
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    assert_eq!(progress[0]["total"], 100.0);

    let image = &results[5]["result"]["content"][0];
    assert_eq!(image["type"], "image");
    assert_eq!(image["mimeType"], "image/png");
    assert!(
        image["data"].as_str().unwrap().starts_with("iVBORw0KGgo"),
        "PNG bytes base64-encoded: {image}"
    );

    assert_eq!(results[6]["result"]["isError"], true);
    assert_eq!(
        first_text(&results[6]),
        "This tool intentionally returns an error for testing"
    );
}

#[test]
fn stdio_session_lists_calls_validates_and_reports_progress() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let results = drive(&py, stdio_job(&sandbox, "legacy", basic_ops()));
    check_basic(&results);
}

#[test]
fn http_session_works_in_the_2025_11_25_era() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    check_basic(&drive(&py, http_job(&server, "legacy", basic_ops())));
    // The log names each client in one line, not with its whole
    // capability struct.
    let log = server.log();
    assert!(log.contains("client connected"), "{log}");
    assert!(!log.contains("ClientCapabilities"), "{log}");
}

#[test]
fn http_session_works_in_the_2026_07_28_era() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    check_basic(&drive(&py, http_job(&server, "2026-07-28", basic_ops())));
}

#[test]
fn plugin_logs_reach_the_client_at_the_requested_level() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let ops = json!([
        {"op": "set_level", "level": "debug"},
        {"op": "call", "tool": "test_tool_with_logging"},
        {"op": "set_level", "level": "error"},
        {"op": "call", "tool": "test_tool_with_logging"},
    ]);
    let results = drive(&py, stdio_job(&sandbox, "legacy", ops));
    let logs: Vec<&str> = results[1]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        logs,
        [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed"
        ]
    );
    assert_eq!(results[1]["logs"][0]["logger"], "conformance");
    assert!(
        results[3]["logs"].as_array().unwrap().is_empty(),
        "info logs sent below the error level"
    );

    // 2026-07-28: logs only when the request opts in with a level.
    let server = sandbox.serve_http(&[]);
    let call = json!([{"op": "call", "tool": "test_tool_with_logging"}]);
    let silent = drive(&py, http_job(&server, "2026-07-28", call.clone()));
    assert!(
        silent[0]["logs"].as_array().unwrap().is_empty(),
        "{}",
        silent[0]
    );
    let mut job = http_job(&server, "2026-07-28", call);
    job["log_level"] = json!("info");
    let loud = drive(&py, job);
    assert_eq!(loud[0]["logs"].as_array().unwrap().len(), 3, "{}", loud[0]);
}

fn elicitation_ops() -> Value {
    json!([
        {"op": "call", "tool": "test_elicitation", "args": {"message": "Who are you?"},
         "elicit": {"action": "accept", "content": {"username": "ada", "email": "ada@example.com"}}},
        {"op": "call", "tool": "test_elicitation", "args": {"message": "Again?"}, "elicit": {"action": "decline"}},
    ])
}

fn check_elicitation(results: &[Value]) {
    let asked = &results[0]["elicitations"][0];
    assert_eq!(asked["message"], "Who are you?", "{}", results[0]);
    assert_eq!(
        asked["requestedSchema"]["properties"]["email"]["type"],
        "string"
    );
    let text = first_text(&results[0]);
    assert!(
        text.contains("action=accept") && text.contains("ada@example.com"),
        "{text}"
    );
    assert!(
        first_text(&results[1]).contains("action=decline"),
        "{}",
        results[1]
    );
}

#[test]
fn elicitation_reaches_the_user_in_both_eras() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[policy.conformance]\nelicit = true\n");
    check_elicitation(&drive(
        &py,
        stdio_job(&sandbox, "legacy", elicitation_ops()),
    ));
    let server = sandbox.serve_http(&[]);
    // 2026-07-28 has no server-to-client requests: the call returns
    // input-required and the client's retry carries the answer.
    check_elicitation(&drive(
        &py,
        http_job(&server, "2026-07-28", elicitation_ops()),
    ));
}

#[test]
fn elicitation_without_the_grant_is_denied() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let results = drive(&py, stdio_job(&sandbox, "legacy", elicitation_ops()));
    assert!(
        results[0]["elicitations"].as_array().unwrap().is_empty(),
        "the user was asked without a grant"
    );
    assert_eq!(
        results[0]["result"]["_meta"]["berth/error"]["category"], "denied",
        "{}",
        results[0]
    );
    assert!(first_text(&results[0]).contains("elicit"));
}

#[test]
fn a_new_plugin_in_the_directory_is_loaded_and_announced() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    let new_plugin = sandbox.plugins().join("trap");
    let ops = json!([
        {"op": "list_tools"},
        {"op": "copy_file", "from": common::fixture_manifest("trap"), "to": new_plugin.join("plugin.toml")},
        {"op": "copy_file", "from": common::fixture_wasm("trap"), "to": new_plugin.join("plugin.wasm")},
        {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 30},
        {"op": "list_tools"},
    ]);
    let results = drive(&py, http_job(&server, "legacy", ops));
    let before: Vec<&str> = results[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!before.contains(&"trap"));
    assert!(
        results[3]["notification"].is_object(),
        "no tools/list_changed: {}\nserver log:\n{}",
        results[3],
        server.log()
    );
    let after: Vec<&str> = results[4]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(after.contains(&"trap"), "{after:?}");
}

#[test]
fn sighup_reloads_plugins() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    let count_reloads = |log: &str| log.matches("plugins loaded").count();
    let before = count_reloads(&server.log());
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count_reloads(&server.log()) == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(server.log().contains("SIGHUP"), "{}", server.log());
    assert!(count_reloads(&server.log()) > before);
}
