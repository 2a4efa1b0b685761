//! `berth serve` on stdio over each kind of stream a client may hand it:
//! a pipe, a socket pair (what libuv, and so Node, gives its children) and
//! regular files. Every request is answered, a line that is not JSON gets
//! a parse error, the session ends at the end of input, and the
//! descriptors berth shares with its parent keep their flags.

mod common;

use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, berth};
use serde_json::Value;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// A whole session: handshake, a line that is not JSON, a tool call and
/// `lists` tool lists.
fn script(lists: usize) -> String {
    let mut lines = vec![
        INIT.to_string(),
        INITIALIZED.to_string(),
        "{not json".into(),
    ];
    lines.push(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}"#
            .into(),
    );
    for id in 0..lists {
        lines.push(format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"tools/list"}}"#,
            100 + id
        ));
    }
    lines.join("\n") + "\n"
}

fn serve(sandbox: &Sandbox, stdin: impl Into<Stdio>, stdout: impl Into<Stdio>) -> Child {
    Command::new(berth())
        .args(sandbox.args())
        .arg("serve")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait for `child` to exit by itself, at most 30 s.
fn ends(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "berth exited with {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth did not end within 30 s of the end of its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Check the answers to [`script`]: every line is one JSON message, and
/// each request and the bad line were answered.
fn check(output: &str, lists: usize) {
    let answers: Vec<Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id);
    assert!(by_id(1).is_some_and(|a| a["result"]["serverInfo"]["name"] == "berth"));
    let called = by_id(2).expect("the tool call was answered");
    assert_eq!(called["result"]["isError"], false, "{called}");
    for id in 0..lists {
        let listed = by_id(100 + id as i64).expect("every tools/list was answered");
        assert!(listed.to_string().contains("test_simple_text"));
    }
    assert_eq!(
        answers
            .iter()
            .filter(|a| a["error"]["code"] == -32700)
            .count(),
        1,
        "one parse error for the line that is not JSON: {output}"
    );
}

fn nonblocking(fd: impl AsFd) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .unwrap()
        .contains(rustix::fs::OFlags::NONBLOCK)
}

#[test]
fn a_session_over_pipes_is_answered_in_full_and_leaves_the_shared_ends_blocking() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let (stdin_read, mut stdin_write) = std::io::pipe().unwrap();
    let (mut stdout_read, stdout_write) = std::io::pipe().unwrap();
    // Kept to look at afterwards: berth's ends share these descriptions.
    let shared_in = stdin_read.try_clone().unwrap();
    let shared_out = stdout_write.try_clone().unwrap();
    let child = serve(&sandbox, stdin_read, stdout_write);
    // Forty tool lists without reading: more than the pipe holds, so
    // berth must wait for stdout and go on when it drains.
    stdin_write.write_all(script(40).as_bytes()).unwrap();
    drop(stdin_write);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !nonblocking(&shared_out),
        "berth made the stdout it shares non-blocking"
    );
    drop(shared_out);
    let mut output = String::new();
    stdout_read.read_to_string(&mut output).unwrap();
    ends(child);
    check(&output, 40);
    assert!(
        !nonblocking(&shared_in),
        "berth made the stdin it shares non-blocking"
    );
}

#[test]
fn a_session_over_a_socket_pair_is_answered_in_full_and_leaves_the_socket_blocking() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs_out = theirs.try_clone().unwrap();
    let shared = theirs.try_clone().unwrap();
    let child = serve(&sandbox, OwnedFd::from(theirs), OwnedFd::from(theirs_out));
    ours.write_all(script(40).as_bytes()).unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !nonblocking(&shared),
        "berth made the socket it shares non-blocking"
    );
    drop(shared);
    let mut output = String::new();
    BufReader::new(&ours).read_to_string(&mut output).unwrap();
    ends(child);
    check(&output, 40);
}

#[test]
fn a_session_read_from_a_file_and_written_to_a_file_is_answered_in_full() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("requests.jsonl");
    std::fs::write(&input, script(3)).unwrap();
    let output = dir.path().join("answers.jsonl");
    let child = serve(
        &sandbox,
        std::fs::File::open(&input).unwrap(),
        std::fs::File::create(&output).unwrap(),
    );
    ends(child);
    check(&std::fs::read_to_string(&output).unwrap(), 3);
}

#[test]
fn a_session_answering_into_dev_null_ends_at_the_end_of_input() {
    // The answers are lost, but berth must still see them out and exit;
    // once it waited on the parse error's write and hung.
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("requests.jsonl");
    std::fs::write(&input, script(3)).unwrap();
    for _ in 0..5 {
        ends(serve(
            &sandbox,
            std::fs::File::open(&input).unwrap(),
            std::fs::File::create("/dev/null").unwrap(),
        ));
    }
}
