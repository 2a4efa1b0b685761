//! The HTTP endpoint of the real `berth` binary as an attacker and a browser
//! see it: the token on every path, Host and Origin with scheme and port,
//! CORS, slow and surplus connections, session floods and large bodies.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Sandbox, Server, drive, first_text, http_job, python};
use serde_json::json;

/// One response read off a raw socket.
struct Reply {
    status: u16,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send one raw HTTP/1.1 request (`Connection: close` added) and read the
/// whole answer.
fn raw(port: u16, head: &str, body: &str) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A request line plus the headers an MCP POST carries, and `extra`.
fn mcp_head(method: &str, server: &Server, extra: &str) -> String {
    format!(
        "{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra}",
        server.port
    )
}

/// POST `body` to `/mcp` with the server's token and `extra` headers.
fn post(server: &Server, extra: &str, body: &str) -> Reply {
    raw(
        server.port,
        &mcp_head("POST", server, &format!("{}{extra}", server.auth_line())),
        body,
    )
}

/// Open a session; its id.
fn open_session(server: &Server) -> String {
    let reply = post(server, "", INITIALIZE);
    assert_eq!(reply.status, 200, "initialize: {}", reply.body);
    reply
        .header("mcp-session-id")
        .expect("a session id")
        .to_string()
}

/// Call `test_simple_text` in a fresh session; the answer's body.
fn call_simple_tool(server: &Server) -> String {
    let session = open_session(server);
    let extra = format!("Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    let ack = post(
        server,
        &extra,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(ack.status, 202, "{}", ack.body);
    let reply = post(
        server,
        &extra,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn get(server: &Server, path: &str, extra: &str) -> Reply {
    raw(
        server.port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{extra}",
            server.port
        ),
        "",
    )
}

fn metric(server: &Server, name: &str) -> f64 {
    let reply = get(server, "/metrics", &server.auth_line());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{}", reply.body))
}

/// Whether the server has closed `stream` (EOF or reset, after any final
/// response), rather than still waiting on it.
fn closed_by_server(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn every_path_but_healthz_needs_the_token() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    let token = server.token.clone().expect("a generated token file");
    let file = sandbox.data().join("http-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    assert!(token.len() >= 32, "generated token {token:?}");
    assert!(
        server.log().contains(&file.display().to_string()),
        "the log does not say where the token is:\n{}",
        server.log()
    );

    let anonymous = [
        raw(server.port, &mcp_head("POST", &server, ""), INITIALIZE),
        raw(server.port, &mcp_head("GET", &server, ""), ""),
        raw(server.port, &mcp_head("DELETE", &server, ""), ""),
        get(&server, "/metrics", ""),
        get(&server, "/no-such-path", ""),
        get(
            &server,
            "/metrics",
            "Authorization: Bearer wrong-but-long-enough\r\n",
        ),
        get(
            &server,
            "/metrics",
            &format!("Authorization: Basic {token}\r\n"),
        ),
    ];
    for reply in &anonymous {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    let health = get(&server, "/healthz", "");
    assert_eq!(health.status, 200);
    assert!(health.body.contains("\"status\":\"ok\""), "{}", health.body);

    assert!(call_simple_tool(&server).contains("This is a simple text response"));
    assert!(metric(&server, "berth_http_rejected_total") >= anonymous.len() as f64);

    // The stored token survives a restart unchanged.
    drop(server);
    let again = sandbox.serve_http(&[]);
    assert_eq!(again.token.as_deref(), Some(token.as_str()));
    assert!(
        again.log().contains("need the bearer token in"),
        "{}",
        again.log()
    );
    assert_eq!(post(&again, "", INITIALIZE).status, 200);
}

#[test]
fn host_and_origin_are_checked_with_scheme_and_port() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[http]\nallowed_origins = [\"https://inspector.example\"]\n");
    let server = sandbox.serve_http(&[]);
    let port = server.port;
    let foreign_host = raw(
        port,
        "GET /healthz HTTP/1.1\r\nHost: evil.example.com\r\n",
        "",
    );
    assert_eq!(foreign_host.status, 403, "foreign Host on /healthz");
    let foreign_host = raw(
        port,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: evil.example.com:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{}",
            server.auth_line()
        ),
        INITIALIZE,
    );
    assert_eq!(foreign_host.status, 403, "foreign Host on /mcp");

    let with_origin = |origin: &str| post(&server, &format!("Origin: {origin}\r\n"), INITIALIZE);
    for refused in [
        "http://evil.example.com".to_string(),
        format!("http://127.0.0.1:{}", port + 1),
        format!("https://127.0.0.1:{port}"),
        format!("http://evil.example.com:{port}"),
        "null".to_string(),
    ] {
        assert_eq!(with_origin(&refused).status, 403, "Origin {refused}");
    }
    for allowed in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        "https://inspector.example".to_string(),
    ] {
        let reply = with_origin(&allowed);
        assert_eq!(reply.status, 200, "Origin {allowed}: {}", reply.body);
        assert_eq!(reply.header("access-control-allow-origin"), Some(&*allowed));
        assert_eq!(
            reply.header("access-control-expose-headers"),
            Some("Mcp-Session-Id")
        );
    }
}

#[test]
fn a_cors_preflight_is_answered_for_allowed_origins_only() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[http]\nallowed_origins = [\"https://inspector.example\"]\n");
    let server = sandbox.serve_http(&[]);
    let preflight = |origin: &str| {
        raw(
            server.port,
            &format!(
                "OPTIONS /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type, mcp-session-id\r\n",
                server.port
            ),
            "",
        )
    };
    let reply = preflight("https://inspector.example");
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://inspector.example")
    );
    let methods = reply.header("access-control-allow-methods").unwrap_or("");
    for method in ["GET", "POST", "DELETE"] {
        assert!(methods.contains(method), "methods: {methods}");
    }
    let headers = reply.header("access-control-allow-headers").unwrap_or("");
    for name in [
        "Authorization",
        "Content-Type",
        "Mcp-Session-Id",
        "MCP-Protocol-Version",
        "Last-Event-ID",
    ] {
        assert!(headers.contains(name), "allowed headers: {headers}");
    }
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("Mcp-Session-Id")
    );

    let refused = preflight("https://evil.example");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.header("access-control-allow-origin"), None);
}

#[test]
fn a_configured_token_serves_the_python_client() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[http]\ntoken = \"tok-123-abcdefghijkl\"\n");
    let server = sandbox.serve_http(&[]);
    assert!(
        !sandbox.data().join("http-token").exists(),
        "a token was generated although one is configured"
    );
    let mut job = http_job(
        &server,
        "legacy",
        json!([{"op": "call", "tool": "test_simple_text"}]),
    );
    job["token"] = json!("tok-123-abcdefghijkl");
    assert_eq!(
        first_text(&drive(&py, job)[0]),
        "This is a simple text response for testing."
    );
}

#[test]
fn an_empty_or_short_token_is_refused_at_start() {
    for token in ["", "short-token"] {
        let sandbox = Sandbox::with_fixtures(&[]);
        sandbox.write_config(&format!("[http]\ntoken = \"{token}\"\n"));
        let out = sandbox.run(&["serve", "--http", "127.0.0.1:0"]);
        assert!(!out.status.success(), "berth served with token {token:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("is {} characters", token.len()))
                && stderr.contains("at least 16"),
            "{stderr}"
        );
    }
}

#[test]
fn slow_connections_are_closed_while_calls_keep_working() {
    const SLOW: usize = 200;
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[http]\nidle_timeout_secs = 3\nmax_sessions = 16\n");
    let server = sandbox.serve_http(&[]);
    call_simple_tool(&server);
    let rss_before = server.rss_kib();

    // Half dribble a request head a byte at a time, half send nothing.
    let head = mcp_head("POST", &server, &server.auth_line());
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let started = Instant::now();
    let mut served = 0;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(2) {
        if sent < head.len() {
            for stream in slow.iter_mut().step_by(2) {
                let _ = stream.write_all(&head.as_bytes()[sent..sent + 1]);
            }
            sent += 1;
        }
        assert!(call_simple_tool(&server).contains("simple text response"));
        served += 1;
    }
    let rss_during = server.rss_kib();

    std::thread::sleep(Duration::from_secs(3));
    let still_open = slow.iter().filter(|s| !closed_by_server(s)).count();
    assert!(call_simple_tool(&server).contains("simple text response"));
    println!(
        "{SLOW} slow connections: {served} calls served meanwhile; RSS {rss_before} KiB before, {rss_during} KiB with them open (+{} KiB); {still_open} still open after the 3 s timeout",
        rss_during.saturating_sub(rss_before)
    );
    assert_eq!(
        still_open, 0,
        "slow connections outlived the header timeout"
    );
    assert!(
        rss_during < rss_before + 32 * 1024,
        "RSS grew from {rss_before} to {rss_during} KiB"
    );
}

#[test]
fn connections_past_the_cap_are_closed_at_once() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[http]\nmax_connections = 8\n");
    let server = sandbox.serve_http(&[]);
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut ninth = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let asked = Instant::now();
    ninth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = ninth.read(&mut byte);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the ninth connection was not closed: {read:?}"
    );
    assert!(asked.elapsed() < Duration::from_secs(2));

    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert!(call_simple_tool(&server).contains("simple text response"));
    assert!(metric(&server, "berth_http_connections_refused_total") >= 1.0);
}

#[test]
fn session_opens_are_capped_and_the_oldest_evicted() {
    const OPENS: usize = 5_000;
    const CAP: usize = 50;
    const PER_THREAD: usize = (OPENS - CAP).div_ceil(4);
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config(&format!("[http]\nmax_sessions = {CAP}\n"));
    let server = sandbox.serve_http(&[]);
    let oldest = open_session(&server);
    for _ in 1..CAP {
        open_session(&server);
    }
    let rss_at_cap = server.rss_kib();

    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    open_session(&server);
                }
            });
        }
    });
    let newest = open_session(&server);
    let rss_after = server.rss_kib();

    let ping = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let session =
        |id: &str| format!("Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    let evicted = post(&server, &session(&oldest), ping);
    assert_eq!(evicted.status, 404, "{}", evicted.body);
    assert_eq!(post(&server, &session(&newest), ping).status, 202);
    let evictions = metric(&server, "berth_http_sessions_evicted_total");
    let opened = CAP + 4 * PER_THREAD + 1;
    println!(
        "{opened} session opens with max_sessions = {CAP}: {evictions} evicted; RSS {rss_at_cap} KiB at the cap, {rss_after} KiB after (+{} KiB)",
        rss_after.saturating_sub(rss_at_cap)
    );
    assert_eq!(
        evictions,
        (opened - CAP) as f64,
        "evictions of {opened} opens"
    );
    assert!(
        rss_after < rss_at_cap + 32 * 1024,
        "RSS grew from {rss_at_cap} to {rss_after} KiB"
    );
}

#[test]
fn concurrent_large_requests_stay_within_the_memory_budget() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let server = sandbox.serve_http(&[]);
    open_session(&server);
    let peak_before = server.peak_kib();
    let pad = "x".repeat(3_900_000);
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{pad}"}}}}"#);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| post(&server, "", &body).status))
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let peak_after = server.peak_kib();
    println!(
        "8 concurrent 3.9 MB requests: statuses {statuses:?}; peak RSS {peak_before} KiB before, {peak_after} KiB after (+{} KiB)",
        peak_after.saturating_sub(peak_before)
    );
    assert!(
        statuses.iter().all(|s| *s != 0 && *s != 500),
        "{statuses:?}"
    );
    assert!(
        peak_after < peak_before + 64 * 1024,
        "peak RSS grew from {peak_before} to {peak_after} KiB"
    );

    // The declared length alone is refused, before any of the body is read.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let head = mcp_head("POST", &server, &server.auth_line());
    write!(stream, "{head}Content-Length: {}\r\n\r\n", 5 << 20).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_request_mib"), "{answer}");
}
