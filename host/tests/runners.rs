//! `run_python`, `run_node` and `run_rust` through the real binary and the
//! official Python MCP client, against the real python3/pip, node/npm and
//! cargo on this machine, with real third-party packages.

mod common;

use std::path::Path;

use common::{Sandbox, drive, first_text, python};
use serde_json::{Value, json};

/// A stdio job whose berth sees this process's whole environment (trust
/// stores and proxies included), with `path_front` put first on PATH.
fn job(sandbox: &Sandbox, path_front: Option<&Path>, ops: Value) -> Value {
    // The mirrord stand-in's targets exist in no cluster; a real one named
    // by KUBECONFIG would have berth refuse them before mirrord starts.
    common::host_env_job(sandbox, path_front, &["KUBECONFIG"], ops)
}

fn run(tool: &str, args: Value) -> Value {
    json!({"op": "call", "tool": tool, "args": args, "progress": true})
}

fn structured(outcome: &Value) -> &Value {
    &outcome["result"]["structuredContent"]
}

/// Assert a call ran to exit code 0 and return its stdout.
fn stdout_of(outcome: &Value) -> String {
    let s = structured(outcome);
    assert_eq!(s["exit_code"], 0, "run failed: {}", first_text(outcome));
    assert_eq!(outcome["result"]["isError"], false, "{outcome}");
    s["stdout"].as_str().unwrap().to_string()
}

#[test]
fn python_runs_requests_and_the_second_run_installs_nothing() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let code = "import requests, sys\nprint(requests.__version__)\nprint(sys.argv[1:])";
    let args = json!({"code": code, "dependencies": ["requests>=2"], "args": ["a", "b"]});
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([run("run_python", args.clone()), run("run_python", args)]),
        ),
    );
    let first = &results[0];
    let out = stdout_of(first);
    assert!(out.starts_with("2."), "requests version: {out}");
    assert!(out.contains("['a', 'b']"), "{out}");
    assert_eq!(structured(first)["cached_env"], false);
    assert_eq!(structured(first)["phase"], "run");
    assert!(
        !first["progress"].as_array().unwrap().is_empty(),
        "environment setup reported no progress: {first}"
    );
    let second = &results[1];
    stdout_of(second);
    assert_eq!(
        structured(second)["cached_env"],
        true,
        "the second run built the environment again"
    );
    assert!(
        second["progress"].as_array().unwrap().is_empty(),
        "the second run performed setup steps: {}",
        second["progress"]
    );
}

#[test]
fn node_runs_lodash_from_require_and_import() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let cjs = "const _ = require('lodash');\nconsole.log(JSON.stringify(_.chunk([1, 2, 3], 2)));";
    let esm = "import _ from 'lodash';\nconsole.log(_.VERSION);";
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([
                run(
                    "run_node",
                    json!({"code": cjs, "dependencies": ["lodash@4"]})
                ),
                run(
                    "run_node",
                    json!({"code": esm, "dependencies": ["lodash@^4"]})
                ),
                run(
                    "run_node",
                    json!({"code": esm, "dependencies": ["lodash@4"]})
                ),
            ]),
        ),
    );
    assert_eq!(stdout_of(&results[0]).trim(), "[[1,2],[3]]");
    assert!(stdout_of(&results[1]).starts_with('4'));
    assert_eq!(structured(&results[0])["cached_env"], false);
    assert_eq!(
        structured(&results[2])["cached_env"],
        true,
        "same dependency set, new environment"
    );
}

#[test]
fn rust_runs_serde_json_and_reuses_the_compiled_crates() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let code = |n: u32| {
        format!(
            "fn main() {{ let v: serde_json::Value = serde_json::from_str(\"[{n}]\").unwrap(); println!(\"{{}}\", v[0]); }}"
        )
    };
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([
                run(
                    "run_rust",
                    json!({"code": code(7), "dependencies": ["serde_json@1"]})
                ),
                run(
                    "run_rust",
                    json!({"code": code(8), "dependencies": [{"name": "serde_json", "version": "1"}]})
                ),
                run(
                    "run_rust",
                    json!({"code": "fn main() { let x: u8 = \"no\"; }"})
                ),
            ]),
        ),
    );
    assert_eq!(stdout_of(&results[0]).trim(), "7");
    assert_eq!(stdout_of(&results[1]).trim(), "8");
    assert_eq!(structured(&results[1])["cached_env"], true);
    let broken = &results[2];
    assert_eq!(broken["result"]["isError"], true);
    assert_eq!(structured(broken)["phase"], "build");
    assert!(
        structured(broken)["stderr"]
            .as_str()
            .unwrap()
            .contains("mismatched types"),
        "{broken}"
    );
}

#[test]
fn bad_input_is_refused_by_name_before_anything_runs() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let cases = [
        (
            "run_python",
            json!({"code": "1", "dependencies": ["--index-url=https://evil.test/simple"]}),
            "--index-url",
        ),
        (
            "run_python",
            json!({"code": "1", "dependencies": ["-e git+https://evil.test/x.git"]}),
            "-e git+",
        ),
        (
            "run_python",
            json!({"code": "1", "dependencies": ["requests; touch /tmp/pwned"]}),
            "requests; touch",
        ),
        (
            "run_python",
            json!({"code": "1", "dependencies": ["../../etc/passwd"]}),
            "../../etc/passwd",
        ),
        (
            "run_python",
            json!({"code": "1", "dependencies": ["requests=>2"]}),
            "requests=>2",
        ),
        (
            "run_node",
            json!({"code": "1", "dependencies": ["git+https://evil.test/x.git"]}),
            "git+https",
        ),
        (
            "run_node",
            json!({"code": "1", "dependencies": ["lodash@$(reboot)"]}),
            "$(reboot)",
        ),
        (
            "run_node",
            json!({"code": "1", "dependencies": ["file:../x"]}),
            "file:../x",
        ),
        (
            "run_rust",
            json!({"code": "fn main(){}", "dependencies": ["serde`id`"]}),
            "serde`id`",
        ),
        (
            "run_rust",
            json!({"code": "fn main(){}", "dependencies": ["serde@1[full"]}),
            "serde@1[full",
        ),
        ("run_python", json!({"code": "   "}), "`code`"),
        (
            "run_python",
            json!({"code": "1", "timeout_secs": 100000}),
            "timeout_secs",
        ),
        (
            "run_python",
            json!({"code": "1", "mirrord_config": "{}"}),
            "deployment",
        ),
        (
            "run_python",
            json!({"code": "1", "deployment": "api", "mirrord_config": "{oops"}),
            "mirrord_config",
        ),
        (
            "run_python",
            json!({"code": "1", "deployment": "Not_A_Name"}),
            "Not_A_Name",
        ),
        (
            "run_python",
            json!({"code": "1", "env": {"LD_PRELOAD": "/x.so"}}),
            "LD_PRELOAD",
        ),
        (
            "run_python",
            json!({"code": "1", "session": "../escape"}),
            "session",
        ),
    ];
    let ops: Vec<Value> = cases
        .iter()
        .map(|(tool, args, _)| json!({"op": "call", "tool": tool, "args": args}))
        .collect();
    let results = drive(&py, job(&sandbox, None, Value::Array(ops)));
    for ((tool, args, named), outcome) in cases.iter().zip(&results) {
        let text = first_text(outcome);
        assert_eq!(
            outcome["result"]["isError"], true,
            "{tool} {args}: {outcome}"
        );
        assert!(
            text.starts_with("invalid-input:") || text.starts_with("invalid-arguments:"),
            "{tool} {args}: {text}"
        );
        assert!(
            text.contains(named),
            "{tool} {args}: the error does not name `{named}`: {text}"
        );
    }
    let envs = sandbox.data().join("envs");
    let built = std::fs::read_dir(&envs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(built, 0, "an environment was created for refused input");
}

/// Repeat a `run_<language>` call until its result says a fork server
/// started it (the server starts in the background after the first run).
fn run_until_forked(tool: &str, args: Value) -> Value {
    json!({"op": "call_until", "tool": tool, "args": args, "field": "forked", "equals": true, "attempts": 80})
}

#[test]
fn warm_python_runs_fork_an_interpreter_with_the_dependencies_loaded() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let code = "import os, sys\npreloaded = 'requests' in sys.modules\nimport requests\nprint(preloaded, __name__, sys.argv[1:], os.environ['GREETING'], sys.stdin.read())\nsys.exit(4)";
    let args = json!({"code": code, "dependencies": ["requests>=2"], "args": ["x y"], "env": {"GREETING": "hi"}, "stdin": "in"});
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([
                run("run_python", args.clone()),
                run_until_forked("run_python", args)
            ]),
        ),
    );
    let cold = structured(&results[0]);
    assert_eq!(cold["forked"], false, "{}", results[0]);
    assert_eq!(
        cold["stdout"], "False __main__ ['x y'] hi in\n",
        "{}",
        results[0]
    );
    assert_eq!(cold["exit_code"], 4);
    let warm = &results[1];
    assert!(
        warm["attempts"].is_number(),
        "no run went through the fork server: {warm}"
    );
    let forked = structured(warm);
    assert_eq!(forked["cached_env"], true);
    assert_eq!(
        forked["stdout"], "True __main__ ['x y'] hi in\n",
        "a forked run must behave as a fresh one, with requests already imported: {warm}"
    );
    assert_eq!(forked["exit_code"], 4);
    assert_eq!(
        warm["result"]["isError"], true,
        "a non-zero exit is an error result"
    );
}

/// Processes whose working directory lies under `dir`: every process of a
/// snippet (forked or not, with any command line) starts in its workspace.
#[test]
fn thirty_two_concurrent_runs_all_succeed() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let calls: Vec<Value> = (0..32)
        .map(|i| json!({"tool": "run_python", "args": {"code": format!("print({i} * 2)")}}))
        .collect();
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([{"op": "concurrent", "calls": calls}]),
        ),
    );
    let outcomes = results[0]["results"].as_array().unwrap();
    assert_eq!(outcomes.len(), 32);
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(stdout_of(outcome).trim(), (i * 2).to_string(), "{outcome}");
    }
}

#[test]
fn sessions_keep_files_across_calls_until_stopped() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let write = "open('notes.txt', 'w').write('remembered')";
    let read =
        "import os\nprint(open('notes.txt').read() if os.path.exists('notes.txt') else 'gone')";
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([
                run("run_python", json!({"code": write, "session": "s1"})),
                run("run_python", json!({"code": read, "session": "s1"})),
                run("run_python", json!({"code": read})),
                {"op": "call", "tool": "list_sessions", "args": {}},
                {"op": "call", "tool": "stop_session", "args": {"session": "s1"}},
                run("run_python", json!({"code": read, "session": "s1"})),
                {"op": "call", "tool": "stop_session", "args": {"session": "never-opened"}},
            ]),
        ),
    );
    assert_eq!(stdout_of(&results[1]).trim(), "remembered");
    assert_eq!(
        stdout_of(&results[2]).trim(),
        "gone",
        "a run without a session saw its files"
    );
    let listed = &results[3]["result"]["structuredContent"]["sessions"];
    assert_eq!(listed[0]["name"], "s1", "{}", results[3]);
    assert_eq!(listed[0]["language"], "python");
    assert_eq!(results[4]["result"]["isError"], false);
    assert_eq!(
        stdout_of(&results[5]).trim(),
        "gone",
        "stop_session kept the files"
    );
    assert!(
        first_text(&results[6]).starts_with("not-found:"),
        "{}",
        results[6]
    );
}

#[test]
fn an_unknown_sandbox_is_not_found() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([run(
                "run_python",
                json!({"code": "print(1)", "sandbox": "no-such-backend"})
            )]),
        ),
    );
    let text = first_text(&results[0]);
    assert!(
        text.starts_with("not-found:") && text.contains("no-such-backend"),
        "{text}"
    );
}

/// A directory holding the mirrord stand-in and the targets it knows.
fn mirrord_standin(targets: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/mirrord");
    std::fs::copy(script, dir.path().join("mirrord")).unwrap();
    std::fs::write(dir.path().join("mirrord.targets"), targets.join("\n")).unwrap();
    dir
}

#[test]
fn mirrord_runs_the_program_attached_to_the_target() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    let standin = mirrord_standin(&["staging deployment/user-service", "default pod/worker-0"]);
    let code =
        "import os, sys\nprint(os.environ.get('MIRRORD_STANDIN_TARGET'))\nprint(sys.stdin.read())";
    let results = drive(
        &py,
        job(
            &sandbox,
            Some(standin.path()),
            json!([
                run(
                    "run_python",
                    json!({"code": code, "deployment": "user-service", "namespace": "staging", "stdin": "hi", "mirrord_config": "{\"feature\": {\"network\": {\"incoming\": \"mirror\"}}}"})
                ),
                run("run_python", json!({"code": code, "pod": "worker-0"})),
                run(
                    "run_python",
                    json!({"code": code, "deployment": "missing", "namespace": "staging"})
                ),
                run(
                    "run_python",
                    json!({"code": "import sys; sys.exit(3)", "pod": "worker-0"})
                ),
            ]),
        ),
    );
    let attached = stdout_of(&results[0]);
    assert!(
        attached.starts_with("staging deployment/user-service\nhi"),
        "{attached}"
    );
    assert!(
        results[0]["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]
                .as_str()
                .unwrap_or_default()
                .contains("running process")),
        "mirrord's JSON progress did not reach the client: {}",
        results[0]["progress"]
    );
    assert!(stdout_of(&results[1]).starts_with("default pod/worker-0"));
    let missing = first_text(&results[2]);
    assert!(
        missing.starts_with("invalid-input:")
            && missing.contains("not found")
            && missing.contains("missing"),
        "{missing}"
    );
    assert_eq!(
        structured(&results[3])["exit_code"],
        3,
        "the program's own exit status was lost"
    );
    assert_eq!(results[3]["result"]["isError"], true);
}

#[test]
fn mirrord_runs_outside_the_grant_or_with_a_forbidden_config_are_refused_before_mirrord_starts() {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(
        "[policy.python]\nprocess = [\"python3\", \"uv\"]\nmirrord = true\n\n[policy.python.kube]\nnamespaces = [\"team-a\"]\nverbs = [\"exec\"]\nkinds = [\"Deployment\", \"Pod\"]\n",
    );
    let standin = mirrord_standin(&["staging deployment/user-service", "team-a deployment/api"]);
    let attach = |extra: Value| {
        let mut args = json!({"code": "print('attached')"});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        run("run_python", args)
    };
    let results = drive(
        &py,
        job(
            &sandbox,
            Some(standin.path()),
            json!([
                attach(json!({"deployment": "user-service", "namespace": "staging"})),
                attach(json!({"deployment": "api"})),
                attach(
                    json!({"deployment": "api", "namespace": "team-a", "mirrord_config": "{\"kube_context\": \"prod\"}"})
                ),
                attach(
                    json!({"deployment": "api", "namespace": "team-a", "mirrord_config": "{\"agent\": {\"privileged\": true}}"})
                ),
                attach(json!({"deployment": "api", "namespace": "team-a"})),
            ]),
        ),
    );
    let outside = first_text(&results[0]);
    assert!(
        outside.starts_with("denied:") && outside.contains("`staging`"),
        "{outside}"
    );
    let defaulted = first_text(&results[1]);
    assert!(
        defaulted.starts_with("denied:") && defaulted.contains("namespace"),
        "{defaulted}"
    );
    for (result, field) in [
        (&results[2], "kube_context"),
        (&results[3], "agent.privileged"),
    ] {
        let text = first_text(result);
        assert!(
            text.starts_with("invalid-input:") && text.contains(field),
            "{text}"
        );
    }
    assert_eq!(stdout_of(&results[4]).trim(), "attached");
    let calls = std::fs::read_to_string(standin.path().join("mirrord.calls")).unwrap_or_default();
    assert_eq!(
        calls.lines().count(),
        1,
        "mirrord started for a refused run: {calls}"
    );
}

#[test]
fn mirrord_missing_from_the_host_is_unavailable_with_a_hint() {
    let Some(py) = python() else { return };
    if which("mirrord") {
        eprintln!("SKIPPED: a real mirrord is installed, so it cannot be missing");
        return;
    }
    let sandbox = Sandbox::with_bundled();
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([run(
                "run_python",
                json!({"code": "print(1)", "deployment": "api"})
            )]),
        ),
    );
    let text = first_text(&results[0]);
    assert!(
        text.starts_with("unavailable:") && text.contains("install"),
        "{text}"
    );
}

fn which(program: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|dir| Path::new(dir).join(program).is_file())
}

/// With a real mirrord and cluster (BERTH_LIVE_MIRRORD_TARGET=ns/kind/name),
/// run a snippet attached to a real workload.
#[test]
fn live_mirrord_against_a_real_cluster() {
    let Ok(target) = std::env::var("BERTH_LIVE_MIRRORD_TARGET") else {
        eprintln!(
            "SKIPPED: set BERTH_LIVE_MIRRORD_TARGET=namespace/deployment/name with a real mirrord and cluster to run this"
        );
        return;
    };
    let Some(py) = python() else { return };
    let mut parts = target.splitn(3, '/');
    let (ns, kind, name) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let sandbox = Sandbox::with_bundled();
    let results = drive(
        &py,
        job(
            &sandbox,
            None,
            json!([run(
                "run_python",
                json!({"code": "import socket; print(socket.gethostname())", kind: name, "namespace": ns})
            )]),
        ),
    );
    stdout_of(&results[0]);
}
