//! Bad input of every kind gets a clear error naming the input and what was
//! expected; nothing panics, and other plugins keep loading.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Sandbox, berth};
use serde_json::Value;

fn plugins_json(sandbox: &Sandbox) -> Value {
    let out = sandbox.run(&["plugins", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plugins list --json prints JSON")
}

fn failure_for<'a>(list: &'a Value, origin_part: &str) -> &'a str {
    list["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["origin"].as_str().unwrap().contains(origin_part))
        .and_then(|f| f["reason"].as_str())
        .unwrap_or_else(|| panic!("no failure for {origin_part}: {list}"))
}

fn assert_no_panic(stderr: &[u8]) {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.contains("panicked"), "berth panicked:\n{text}");
}

#[test]
fn broken_plugins_are_reported_and_the_rest_still_load() {
    let sandbox = Sandbox::with_fixtures(&["conformance", "greet-v9"]);
    let corrupt = sandbox.plugins().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("plugin.wasm"),
        b"\0asm\x01\0\0\0garbage that is not a component",
    )
    .unwrap();
    std::fs::write(
        corrupt.join("plugin.toml"),
        "name = 'corrupt'\nversion = '0.1.0'\nkind = 'tools'\napi = '^0.1'\n",
    )
    .unwrap();

    let greedy = sandbox.plugins().join("greedy");
    std::fs::create_dir_all(&greedy).unwrap();
    std::fs::copy(common::fixture_wasm("trap"), greedy.join("plugin.wasm")).unwrap();
    std::fs::write(
        greedy.join("plugin.toml"),
        "name = 'greedy'\nversion = '0.1.0'\nkind = 'tools'\napi = '^0.1'\n[capabilities]\nfilesystem = ['/']\n",
    )
    .unwrap();

    let mislabelled = sandbox.plugins().join("mislabelled");
    std::fs::create_dir_all(&mislabelled).unwrap();
    std::fs::copy(
        common::fixture_wasm("trap"),
        mislabelled.join("plugin.wasm"),
    )
    .unwrap();
    std::fs::write(
        mislabelled.join("plugin.toml"),
        "name = 'mislabelled'\nversion = '0.1.0'\nkind = 'runner'\napi = '^0.1'\n",
    )
    .unwrap();

    let orphan = sandbox.plugins().join("orphan.wasm");
    std::fs::copy(common::fixture_wasm("trap"), &orphan).unwrap();

    let list = plugins_json(&sandbox);
    let loaded: Vec<&str> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(loaded, ["conformance"], "{list}");

    let reason = failure_for(&list, "corrupt");
    assert!(
        reason.contains("not a valid WebAssembly component"),
        "{reason}"
    );
    let reason = failure_for(&list, "greedy");
    assert!(
        reason.contains("filesystem"),
        "unknown capability not named: {reason}"
    );
    let reason = failure_for(&list, "greet-v9");
    assert!(
        reason.contains("9.0.0") && reason.contains("^0.1"),
        "versions not named: {reason}"
    );
    let reason = failure_for(&list, "mislabelled");
    assert!(
        reason.contains("`runner`") && reason.contains("tools world"),
        "{reason}"
    );
    let reason = failure_for(&list, "orphan.wasm");
    assert!(
        reason.contains("orphan.toml"),
        "missing manifest not named: {reason}"
    );
}

#[test]
fn plugins_check_explains_a_bad_file_and_describes_a_good_one() {
    let sandbox = Sandbox::with_fixtures(&[]);
    let bad = sandbox.dir.path().join("bad.wasm");
    std::fs::write(&bad, b"not wasm at all").unwrap();
    std::fs::write(
        bad.with_extension("toml"),
        "name = 'bad'\nversion = '0.1.0'\nkind = 'tools'\napi = '^0.1'\n",
    )
    .unwrap();
    let out = sandbox.run(&["plugins", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not a valid WebAssembly component"),
        "{stdout}"
    );
    assert_eq!(stdout.trim_end().lines().count(), 1, "one line: {stdout}");
    assert_no_panic(&out.stderr);

    let wasm = common::fixture_wasm("probe-ungranted");
    let manifest = common::fixture_manifest("probe-ungranted");
    let out = sandbox.run(&[
        "plugins",
        "check",
        wasm.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kind"], "tools");
    assert_eq!(report["api"], "0.1.0");
    assert_eq!(report["requested"]["process"][0], "sh");
    assert_eq!(report["granted"]["process"].as_array().unwrap().len(), 0);
    assert_eq!(report["tools"][0], "probe");
}

#[test]
fn plugins_check_needs_no_manifest_and_shows_every_grant_unrequested() {
    let sandbox = Sandbox::with_fixtures(&[]);
    let wasm = sandbox.dir.path().join("Probe_Copy.wasm");
    std::fs::copy(common::fixture_wasm("probe-ungranted"), &wasm).unwrap();
    let out = sandbox.run(&["plugins", "check", wasm.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["name"], "probe-copy");
    assert_eq!(report["kind"], "tools");
    assert_eq!(report["api"], "0.1.0");
    assert_eq!(report["requested"]["process"].as_array().unwrap().len(), 0);
    assert_eq!(report["granted"]["state"], false);
    assert_eq!(report["tools"][0], "probe");
}

#[test]
fn tool_name_collisions_name_both_plugins() {
    let sandbox = Sandbox::with_fixtures(&["trap"]);
    let twin = sandbox.plugins().join("trap-twin");
    std::fs::create_dir_all(&twin).unwrap();
    std::fs::copy(common::fixture_wasm("trap"), twin.join("plugin.wasm")).unwrap();
    std::fs::write(
        twin.join("plugin.toml"),
        "name = 'trap-twin'\nversion = '0.1.0'\nkind = 'tools'\napi = '^0.1'\n",
    )
    .unwrap();
    let list = plugins_json(&sandbox);
    let reason = failure_for(&list, "trap-twin");
    assert!(
        reason.contains("`trap-twin`")
            && reason.contains("`trap`")
            && reason.contains("tool `trap`"),
        "{reason}"
    );

    // Hiding the tool of one of them resolves the collision.
    sandbox.write_config("[tools]\ndeny = [\"trap\"]\n");
    let list = plugins_json(&sandbox);
    assert_eq!(list["plugins"].as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn invalid_config_is_reported_with_the_key() {
    let sandbox = Sandbox::with_fixtures(&[]);
    sandbox.write_config("[limits]\nmemory_mb = 5\n");
    let out = sandbox.run(&["tools"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("memory_mb"), "{stderr}");
    assert_no_panic(&out.stderr);
}

#[test]
fn berth_call_rejects_bad_arguments_clearly() {
    let sandbox = Sandbox::with_fixtures(&["huge-output"]);
    let out = sandbox.run(&["call", "huge_output", "--args", "{not json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--args is not valid JSON"));
    let out = sandbox.run(&["call", "huge_output", "--args", "[1]"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be a JSON object"));
    let out = sandbox.run(&["call", "huge_output", "--args", r#"{"megabytes": "lots"}"#]);
    assert!(!out.status.success());
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("/megabytes") && text.contains("integer"),
        "{text}"
    );
    let out = sandbox.run(&["call", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown tool `nope`; available: huge_output")
    );
    assert_no_panic(&out.stderr);
}

#[test]
fn malformed_json_rpc_on_stdio_gets_an_error_and_the_session_survives() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let mut child = Command::new(berth())
        .args(sandbox.args())
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    writeln!(stdin, "{init}").unwrap();
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("initialize answered");
    assert!(first.contains("\"id\":1"), "{first}");
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
    )
    .unwrap();
    writeln!(stdin, "{{this is not json").unwrap();
    // Not UTF-8: once this ended the whole session (found by tests/fuzz.rs).
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\"}\n")
        .unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list"}}"#).unwrap();
    let mut answered = false;
    let mut parse_errors = 0;
    // The answers may come in any order.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if line.contains("-32700") && line.contains("not valid JSON") {
            parse_errors += 1;
        }
        if line.contains("\"id\":2") {
            assert!(line.contains("test_simple_text"), "{line}");
            answered = true;
        }
        if answered && parse_errors == 2 {
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        answered,
        "the session did not survive malformed input; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        parse_errors, 2,
        "a malformed line got no JSON-RPC parse error"
    );
    assert_no_panic(&out.stderr);
}

#[test]
fn malformed_json_over_http_gets_a_parse_error() {
    let sandbox = Sandbox::with_fixtures(&[]);
    let server = sandbox.serve_http(&[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let body = "{not json";
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.port,
        server.auth_line(),
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("-32700"), "{response}");
}
