//! A raw JSON-RPC client of an MCP server over stdio, one line per
//! message, with nothing of its own between a request and its answer: the
//! same client measures berth and, when asked, wassette.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A started server, killed on drop.
pub struct RawClient {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    line: String,
    next_id: u64,
}

impl RawClient {
    /// Start `command` and complete the MCP handshake (2025-11-25).
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let mut client = Self {
            input: child.stdin.take().unwrap(),
            output: BufReader::new(child.stdout.take().unwrap()),
            child,
            line: String::new(),
            next_id: 0,
        };
        client.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "0"}}),
        );
        writeln!(
            client.input,
            "{}",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .unwrap();
        client
    }

    /// Send a request and wait for its result.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(self.input, "{message}").unwrap();
        loop {
            self.line.clear();
            assert!(
                self.output.read_line(&mut self.line).unwrap() > 0,
                "the server closed stdout"
            );
            let mut answer: Value = serde_json::from_str(&self.line).unwrap();
            if answer.get("id") == Some(&id) {
                return answer
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or_else(|| panic!("{method} failed: {answer}"));
            }
        }
    }

    /// Latencies of `times` sequential requests after `warm_up` more,
    /// sorted.
    pub fn time(
        &mut self,
        method: &str,
        params: &Value,
        warm_up: usize,
        times: usize,
    ) -> Vec<Duration> {
        for _ in 0..warm_up {
            self.request(method, params.clone());
        }
        let mut measured = Vec::with_capacity(times);
        for _ in 0..times {
            let at = Instant::now();
            self.request(method, params.clone());
            measured.push(at.elapsed());
        }
        measured.sort();
        measured
    }
}

/// Round trips of a request-sized line through `cat`, sorted: what two
/// processes pay to pass a message over pipes and back, before any server
/// work.
pub fn pipe_round_trips(warm_up: usize, times: usize) -> Vec<Duration> {
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat runs");
    let mut input = cat.stdin.take().unwrap();
    let mut output = BufReader::new(cat.stdout.take().unwrap());
    let message = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let mut line = String::new();
    let mut measured = Vec::with_capacity(times);
    for round in 0..warm_up + times {
        let at = Instant::now();
        writeln!(input, "{message}").unwrap();
        line.clear();
        output.read_line(&mut line).unwrap();
        if round >= warm_up {
            measured.push(at.elapsed());
        }
    }
    drop(input);
    let _ = cat.wait();
    measured.sort();
    measured
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
