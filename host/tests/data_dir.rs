//! One owner per data directory: one-off commands beside a busy `serve`
//! leave its calls alone, and a second `serve` is refused.

mod common;

use common::{Sandbox, drive, first_text, http_job, python};
use serde_json::json;

#[test]
fn one_off_commands_beside_a_busy_serve_leave_its_calls_alone_and_a_second_serve_is_refused() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let server = sandbox.serve_http(&[]);
    let slow = "import os, time\nopen('mine.txt', 'w').write('kept')\ntime.sleep(6)\nprint(open('mine.txt').read(), os.path.isdir(os.getcwd()))";
    let calls: Vec<_> = (0..3)
        .map(|_| json!({"tool": "run_python", "args": {"code": slow}}))
        .collect();
    let job = http_job(
        &server,
        "legacy",
        json!([{"op": "concurrent", "calls": calls}]),
    );
    let driver = std::thread::spawn(move || drive(&py, job));
    std::thread::sleep(std::time::Duration::from_millis(2500));

    let tools = sandbox.run(&["tools"]);
    assert!(
        tools.status.success(),
        "{}",
        String::from_utf8_lossy(&tools.stderr)
    );
    let call = sandbox.run(&[
        "call",
        "run_python",
        "--args",
        r#"{"code": "print(6 * 7)"}"#,
    ]);
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
    assert!(String::from_utf8_lossy(&call.stdout).contains("42"));
    let second = sandbox.run(&["serve"]);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("already serves data dir")
            && stderr.contains(&server.child.id().to_string()),
        "{stderr}"
    );

    let results = driver.join().unwrap();
    let outcomes = results[0]["results"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    for outcome in outcomes {
        let out = &outcome["result"]["structuredContent"];
        assert_eq!(out["exit_code"], 0, "{}", first_text(outcome));
        assert_eq!(out["stdout"], "kept True\n", "{outcome}");
    }
}

#[test]
fn a_berth_toml_in_the_current_directory_sets_nothing() {
    let sandbox = Sandbox::with_bundled();
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("berth.toml"), "[tools]\ndeny = [\"*\"]\n").unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::berth())
        .args(sandbox.args())
        .arg("tools")
        .current_dir(repo.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BERTH_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("run_python"),
        "the repository's berth.toml filtered the tools"
    );
}
