//! Helpers for integration tests: fixture plugin directories, the real
//! `berth` binary, and the official Python MCP SDK as the client.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The berth binary under test.
pub fn berth() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// A scratch area with a plugin directory, data directory and config.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Whether berth loads its bundled plugins here.
    pub bundled: bool,
}

impl Sandbox {
    /// A sandbox whose plugin directory holds the named fixtures.
    pub fn with_fixtures(names: &[&str]) -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            bundled: false,
        };
        std::fs::create_dir_all(sandbox.plugins()).unwrap();
        for name in names {
            sandbox.add_fixture(name);
        }
        sandbox
    }

    /// A sandbox with berth's bundled plugins (the runners) and an empty
    /// plugin directory.
    pub fn with_bundled() -> Sandbox {
        let mut sandbox = Sandbox::with_fixtures(&[]);
        sandbox.bundled = true;
        sandbox
    }

    pub fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("berth.toml")
    }

    /// Copy fixture `name` (component and manifest) into the plugin directory.
    pub fn add_fixture(&self, name: &str) {
        let dest = self.plugins().join(name);
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::copy(fixture_wasm(name), dest.join("plugin.wasm")).unwrap();
        std::fs::copy(fixture_manifest(name), dest.join("plugin.toml")).unwrap();
    }

    /// Write berth.toml.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    /// Arguments every berth invocation in this sandbox gets.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_string(),
            self.data().display().to_string(),
            "--plugin-dir".into(),
            self.plugins().display().to_string(),
        ];
        if !self.bundled {
            args.insert(0, "--no-bundled".into());
        }
        if self.config().is_file() {
            args.extend(["--config".into(), self.config().display().to_string()]);
        }
        args
    }

    /// Run `berth <sandbox args> <args>` to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(berth())
            .args(self.args())
            .args(args)
            .output()
            .expect("running berth")
    }

    /// The command line that serves stdio in this sandbox.
    pub fn stdio_command(&self) -> Vec<String> {
        let mut cmd = vec![berth().to_string()];
        cmd.extend(self.args());
        cmd.push("serve".into());
        cmd
    }

    /// Start `berth serve --http 127.0.0.1:0` and wait until it listens.
    pub fn serve_http(&self, extra: &[&str]) -> Server {
        Server::start(self, extra)
    }
}

/// Compiled fixture `name`.
pub fn fixture_wasm(name: &str) -> PathBuf {
    let file = format!("berth_fixture_{}.wasm", name.replace('-', "_"));
    Path::new(env!("BERTH_PLUGIN_ARTIFACTS")).join(file)
}

/// Manifest of fixture `name`.
pub fn fixture_manifest(name: &str) -> PathBuf {
    Path::new(env!("BERTH_PLUGIN_SOURCES"))
        .join("fixtures")
        .join(name)
        .join("plugin.toml")
}

/// A running HTTP server, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
    /// The bearer token berth generated into the data dir; `None` when the
    /// sandbox's config sets one.
    pub token: Option<String>,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(sandbox: &Sandbox, extra: &[&str]) -> Server {
        let mut child = Command::new(berth())
            .args(sandbox.args())
            .args(["serve", "--http", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting berth serve --http");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(url);
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "berth did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            });
        let port = url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/mcp")
            .parse()
            .unwrap();
        let token = std::fs::read_to_string(sandbox.data().join("http-token"))
            .ok()
            .map(|t| t.trim().to_string());
        Server {
            child,
            url,
            port,
            token,
            log,
        }
    }

    /// The `Authorization` header line for raw requests (empty when the
    /// test configured its own token).
    pub fn auth_line(&self) -> String {
        self.token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default()
    }

    /// Resident memory of the server process, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// Peak resident memory of the server process, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    /// A KiB figure of `/proc/PID/status`, 0 when it cannot be read.
    fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python interpreter with the `mcp` SDK, or `None` (with the reason
/// printed) when it is absent. Under CI its absence is a failure.
pub fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("BERTH_TEST_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")),
    ];
    for candidate in candidates.into_iter().flatten() {
        let ok = Command::new(&candidate)
            .args(["-c", "import mcp"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(candidate);
        }
    }
    let reason = "SKIPPED: the Python MCP SDK is not installed (run .ci/run, or set BERTH_TEST_PYTHON to a python with `pip install mcp`)";
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; CI must provide it");
    }
    eprintln!("{reason}");
    None
}

/// Run the Python driver with `job` and return one result per op.
pub fn drive(python: &Path, job: Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/mcp_driver.py");
    drive_with(Command::new(python).arg(script), job)
}

/// Run a client driver (`command`, which reads the job on stdin and
/// prints a JSON array) with `job` and return one result per op.
pub fn drive_with(command: &mut Command, job: Value) -> Vec<Value> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the MCP client driver");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    // Drain both pipes while waiting: a large result would otherwise fill
    // the pipe and block the driver forever.
    let reader = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out_reader = reader(Box::new(child.stdout.take().unwrap()));
    let err_reader = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::process::Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "MCP driver failed\nstdout (tail): {}\nstderr (tail): {}",
        tail(&stdout, 2000),
        tail(&stderr, 6000)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("driver printed non-JSON ({e}): {stdout}"))
}

fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let mut start = start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A stdio job for `sandbox`.
pub fn stdio_job(sandbox: &Sandbox, mode: &str, ops: Value) -> Value {
    json!({ "stdio": sandbox.stdio_command(), "mode": mode, "ops": ops })
}

/// A stdio job for `sandbox` whose berth gets this test's whole
/// environment (so it finds python3, node, cargo and podman as the test
/// does), less the variables in `without`, with `path_front` first on PATH.
pub fn host_env_job(
    sandbox: &Sandbox,
    path_front: Option<&Path>,
    without: &[&str],
    ops: Value,
) -> Value {
    let mut env: serde_json::Map<String, Value> = std::env::vars()
        .filter(|(k, _)| !without.contains(&k.as_str()))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if let Some(dir) = path_front {
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        env.insert("PATH".into(), Value::String(path));
    }
    json!({ "stdio": sandbox.stdio_command(), "mode": "legacy", "ops": ops, "env": env })
}

/// A `call` op of `tool` with `args`.
pub fn call(tool: &str, args: Value) -> Value {
    json!({"op": "call", "tool": tool, "args": args})
}

/// An HTTP job for `server`.
pub fn http_job(server: &Server, mode: &str, ops: Value) -> Value {
    json!({ "http": server.url, "token": server.token, "mode": mode, "ops": ops })
}

/// The text of the first content item of a call result.
pub fn first_text(outcome: &Value) -> String {
    outcome["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `berth secrets set NAME` in `sandbox`, the value on stdin; asserts
/// the command neither fails nor shows the value.
pub fn set_secret(sandbox: &Sandbox, name: &str, value: &str) {
    let mut child = Command::new(berth())
        .args(sandbox.args())
        .args(["secrets", "set", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !shown.contains(value),
        "secrets set echoed the value: {shown}"
    );
}

/// A `call_until` op that waits (up to a minute and a half) for the first
/// upstream `list_servers` shows to reach `phase`.
pub fn until_phase(phase: &str) -> Value {
    json!({"op": "call_until", "tool": "list_servers", "args": {}, "field": "servers.0.phase", "equals": phase, "attempts": 360, "delay": 0.25})
}

/// The names in a `list_tools` result.
pub fn tool_names(listed: &Value) -> Vec<String> {
    listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The error category berth put in a failed call's `_meta`, or "".
pub fn error_category(outcome: &Value) -> String {
    outcome["result"]["_meta"]["berth/error"]["category"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Say that a test cannot run because `what` is missing (and how to get
/// it): a skip printed locally, a failure under CI.
pub fn absent(what: &str) {
    let reason = format!("SKIPPED: {what}");
    if std::env::var_os("CI").is_some() {
        panic!("{reason}; CI must provide it");
    }
    eprintln!("{reason}");
}

/// Whether podman can run `image` here; says why not.
pub fn podman_ready(image: &str) -> bool {
    let ok = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        absent(&format!(
            "podman with {image} is not available (run ../shared/testenv/podman/setup)"
        ));
    }
    ok
}
