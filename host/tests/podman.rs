//! The bundled podman backend against real podman (set up by
//! `../shared/testenv/podman/setup`): workload round trip with its limits
//! visible in `podman inspect`, snippets in sandboxes, no leaked
//! containers, and refused bad input.

mod common;

use std::process::Command;

use common::{Sandbox, call, drive, first_text, host_env_job, podman_ready, python};
use serde_json::{Value, json};

/// A job whose berth sees this test's environment (podman on PATH).
fn job(sandbox: &Sandbox, ops: Value) -> Value {
    host_env_job(sandbox, None, &[], ops)
}

fn podman_sandbox() -> Sandbox {
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(
        "[runs.sandbox_images.python]\nimage = \"localhost/host-runtime:latest\"\nmounts = [\"/usr:/usr:ro\"]\n\n[plugin_config.podman]\nallowed_volume_roots = [\"/usr\"]\n",
    );
    sandbox
}

/// Names of containers with `label`.
fn containers(label: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label={label}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_workload_round_trip_with_limits_in_inspect() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let name = format!("web-{}", std::process::id());
    let container = format!("berth-{name}");
    let start = call(
        "podman_start",
        json!({"name": name, "image": "localhost/busybox:latest",
               "command": ["httpd", "-f", "-p", "8080", "-h", "/tmp"],
               "ports": [{"container_port": 8080}], "network": true, "memory_mb": 64, "pids": 50,
               "env": {"API_KEY": "s3cret-value-0123"}}),
    );
    let results = drive(&py, job(&sandbox, json!([start])));
    let status: Value = serde_json::from_str(&first_text(&results[0]))
        .unwrap_or_else(|e| panic!("{e}: {}", results[0]));
    assert_eq!(status["phase"], "running", "{status}");
    let endpoint = status["endpoints"][0].as_str().unwrap().to_string();
    assert!(
        endpoint.starts_with("127.0.0.1:"),
        "published beyond loopback: {endpoint}"
    );

    let inspect = Command::new("podman")
        .args(["inspect", &container])
        .output()
        .unwrap();
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let host = &inspect[0]["HostConfig"];
    assert_eq!(host["Memory"], 64 << 20);
    assert_eq!(host["PidsLimit"], 50);
    assert_eq!(host["ReadonlyRootfs"], true);
    assert!(
        host["SecurityOpt"]
            .to_string()
            .contains("no-new-privileges"),
        "{host}"
    );
    assert!(host["CapAdd"].as_array().is_none_or(|a| a.is_empty()));
    assert_eq!(inspect[0]["Config"]["Labels"]["berth.managed"], "true");
    // The environment reached the container without being on podman's
    // command line (which `ps` shows every local user).
    assert!(
        inspect[0]["Config"]["Env"]
            .to_string()
            .contains("API_KEY=s3cret-value-0123"),
        "{}",
        inspect[0]["Config"]["Env"]
    );
    assert!(
        !inspect[0]["Config"]["CreateCommand"]
            .to_string()
            .contains("s3cret"),
        "{}",
        inspect[0]["Config"]["CreateCommand"]
    );
    // A container of the same name scheme that another deployment made.
    let foreign = format!("foreign-{}", std::process::id());
    let made = Command::new("podman")
        .args(["run", "-d", "--name", &format!("berth-{foreign}")])
        .args(["localhost/busybox:latest", "sleep", "60"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let mut stream =
        std::net::TcpStream::connect(&endpoint).expect("the published port is reachable");
    use std::io::{Read, Write};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1."), "{reply}");

    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call("podman_status", json!({"name": name})),
                call("podman_list", json!({})),
                call("podman_logs", json!({"name": name, "tail": 10})),
                call("podman_stop", json!({"name": name})),
                call("podman_status", json!({"name": name})),
                call("podman_logs", json!({"name": foreign})),
            ]),
        ),
    );
    let _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", &format!("berth-{foreign}")])
        .output();
    assert!(
        first_text(&results[5]).starts_with("not-found:"),
        "another deployment's logs were read: {}",
        results[5]
    );
    assert!(first_text(&results[0]).contains("running"));
    assert!(first_text(&results[1]).contains(&name));
    assert_eq!(results[2]["result"]["isError"], false);
    assert_eq!(results[3]["result"]["isError"], false);
    assert!(
        first_text(&results[4]).starts_with("not-found:"),
        "{}",
        results[4]
    );
    assert!(!containers("berth.managed=true").contains(&container));
}

#[test]
fn snippets_run_in_sandboxes_and_leave_no_containers() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let code = "import os, socket\nprint(os.getuid())\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('online')\nexcept OSError:\n    print('offline')";
    let calls: Vec<Value> = (0..20)
        .map(|_| json!({"tool": "run_python", "args": {"code": code, "sandbox": "podman"}}))
        .collect();
    let results = drive(
        &py,
        job(&sandbox, json!([{"op": "concurrent", "calls": calls}])),
    );
    for outcome in results[0]["results"].as_array().unwrap() {
        let s = &outcome["result"]["structuredContent"];
        assert_eq!(s["exit_code"], 0, "{outcome}");
        assert_eq!(
            s["stdout"], "65534\noffline\n",
            "not unprivileged and offline: {outcome}"
        );
    }
    // Sandboxes of other tests may run at the same time: count only those
    // carrying this data dir's owner label.
    let leaked = Command::new("podman")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            "label=berth.kind=sandbox",
            "--filter",
        ])
        .arg(format!("label=berth.owner={}", owner_of(&sandbox)))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&leaked.stdout).trim().is_empty(),
        "sandboxes leaked"
    );
}

/// The owner label berth puts on containers for `sandbox`'s data dir.
fn owner_of(sandbox: &Sandbox) -> String {
    use sha2::{Digest, Sha256};
    let root = sandbox.data().join("work");
    let root = root.canonicalize().unwrap_or(root);
    hex::encode(&Sha256::digest(root.as_os_str().as_encoded_bytes())[..6])
}

#[test]
fn orphans_of_a_killed_berth_are_reaped_at_restart() {
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let mut child = Command::new(common::berth())
        .args(sandbox.args())
        .args([
            "call",
            "run_python",
            "--args",
            r#"{"code": "import time; time.sleep(120)", "sandbox": "podman", "timeout_secs": 300}"#,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let owner = loop {
        let owner = owner_of(&sandbox);
        if !containers(&format!("berth.owner={owner}")).is_empty() {
            break owner;
        }
        assert!(std::time::Instant::now() < deadline, "no sandbox appeared");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    child.kill().unwrap();
    let _ = child.wait();
    let filter = format!("berth.owner={owner}");
    assert_eq!(
        containers(&filter).len(),
        1,
        "the orphan should still be there after kill -9"
    );
    // A one-off command leaves the orphan to the data dir's owner; the
    // next `serve` reaps it as it starts. Its client here closes stdin at
    // once, so it then ends with a failed handshake, which is not the point.
    let out = sandbox.run(&["tools"]);
    assert!(out.status.success());
    assert_eq!(containers(&filter).len(), 1, "a one-off command reaped");
    let out = sandbox.run(&["serve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MCP handshake"), "{stderr}");
    assert!(containers(&filter).is_empty(), "the reaper left the orphan");
}

#[test]
fn a_warm_pool_serves_runs_and_is_emptied_when_berth_exits() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(
        "[runs.sandbox_images.python]\nimage = \"localhost/host-runtime:latest\"\nmounts = [\"/usr:/usr:ro\"]\npool = { podman = 2 }\n\n[plugin_config.podman]\nallowed_volume_roots = [\"/usr\"]\n",
    );
    let args =
        json!({"code": "import os\nprint(os.getuid(), os.listdir('.'))", "sandbox": "podman"});
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                {"op": "call_until", "tool": "run_python", "args": args, "field": "sandbox.pooled", "equals": true, "attempts": 80},
                call("run_python", args),
            ]),
        ),
    );
    let pooled = &results[0];
    assert!(
        pooled["attempts"].is_number(),
        "no run came from the pool: {pooled}"
    );
    let ids: Vec<&str> = results
        .iter()
        .map(|outcome| {
            let s = &outcome["result"]["structuredContent"];
            assert_eq!(s["exit_code"], 0, "{outcome}");
            // A pooled sandbox is as fresh as a new one: nothing of another run.
            assert_eq!(s["stdout"], "65534 ['main.py']\n", "{outcome}");
            s["sandbox"]["id"].as_str().unwrap()
        })
        .collect();
    assert_ne!(ids[0], ids[1], "two runs shared a sandbox");
    let left = containers(&format!("berth.owner={}", owner_of(&sandbox)));
    assert!(left.is_empty(), "berth exited and left {left:?}");
}

#[test]
fn plan_files_reach_the_sandbox_byte_for_byte() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    // Quotes, backslashes, a tab, a percent sign, shell syntax and
    // non-ASCII: everything the exec that writes the files must carry
    // through the shell intact.
    let tricky =
        "s = '''a'b\"c\\\\d\té %s $HOME `x`'''\nprint(repr(s), len(open(__file__, 'rb').read()))\n";
    // Too large for one command-line argument: copied with `podman cp`.
    let large = format!("{tricky}# {}\n", "x".repeat(200 << 10));
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call("run_python", json!({"code": tricky, "sandbox": "podman"})),
                call("run_python", json!({"code": large, "sandbox": "podman"})),
            ]),
        ),
    );
    for (code, outcome) in [tricky, large.as_str()].iter().zip(&results) {
        let s = &outcome["result"]["structuredContent"];
        assert_eq!(s["exit_code"], 0, "{outcome}");
        let expected = format!("'a\\'b\"c\\\\d\\té %s $HOME `x`' {}\n", code.len());
        assert_eq!(s["stdout"].as_str().unwrap(), expected, "{outcome}");
    }
}

#[test]
fn bad_input_starts_nothing() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let cases = [
        (
            json!({"name": "bad-image", "image": "busybox;rm -rf /"}),
            "busybox;rm",
        ),
        (
            json!({"name": "Bad_Name", "image": "localhost/busybox:latest"}),
            "Bad_Name",
        ),
        (
            json!({"name": "outside", "image": "localhost/busybox:latest", "volumes": ["/etc:/x:ro"]}),
            "/etc",
        ),
        (
            json!({"name": "port-busy", "image": "localhost/busybox:latest", "command": ["sleep", "60"], "network": true,
                "ports": [{"container_port": 80, "host_port": port}]}),
            "address already in use",
        ),
    ];
    let ops: Vec<Value> = cases
        .iter()
        .map(|(a, _)| call("podman_start", a.clone()))
        .collect();
    let results = drive(&py, job(&sandbox, Value::Array(ops)));
    for ((args, named), outcome) in cases.iter().zip(&results) {
        let text = first_text(outcome);
        assert_eq!(outcome["result"]["isError"], true, "{args}: {outcome}");
        assert!(text.contains(named), "{args}: {text}");
    }
    let filter = format!("berth.owner={}", owner_of(&sandbox));
    assert!(
        containers(&filter).is_empty(),
        "bad input started {:?}",
        containers(&filter)
    );
    drop(busy);
}

#[test]
fn a_symlink_under_an_allowed_root_does_not_mount_what_it_points_to() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = Sandbox::with_bundled();
    let allowed = sandbox.dir.path().join("allowed");
    std::fs::create_dir_all(allowed.join("data")).unwrap();
    std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
    sandbox.write_config(&format!(
        "[plugin_config.podman]\nallowed_volume_roots = [\"{}\"]\n",
        allowed.display()
    ));
    let name = format!("linked-{}", std::process::id());
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call(
                    "podman_start",
                    json!({"name": "escape", "image": "localhost/busybox:latest",
                    "command": ["sleep", "60"], "volumes": [format!("{}/escape:/x:ro", allowed.display())]})
                ),
                call(
                    "podman_start",
                    json!({"name": name, "image": "localhost/busybox:latest",
                    "command": ["sleep", "60"], "volumes": [format!("{}/data:/data:ro", allowed.display())]})
                ),
                call("podman_stop", json!({"name": name})),
            ]),
        ),
    );
    let refused = first_text(&results[0]);
    assert!(
        refused.starts_with("denied:") && refused.contains("resolves to `/etc`"),
        "{refused}"
    );
    assert_eq!(results[1]["result"]["isError"], false, "{}", results[1]);
    let filter = format!("berth.owner={}", owner_of(&sandbox));
    assert!(
        !containers(&filter).iter().any(|c| c.contains("escape")),
        "the escaping mount started a container"
    );
}

#[test]
fn a_service_template_runs_on_podman_on_its_loopback_port() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let name = format!("tpl-echo-{}", std::process::id());
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call("deploy_template", json!({"template": "echo", "backend": "podman", "name": name,
                    "params": {"image": "localhost/busybox:latest", "text": "templated on podman"}})),
                {"op": "http_get", "from_result": 0},
                call("deploy_template", json!({"template": "no-such-template", "backend": "podman"})),
                call("deploy_template", json!({"template": "echo", "backend": "podman", "params": {"port": "eighty"}})),
                call("stop_template", json!({"backend": "podman", "name": name})),
            ]),
        ),
    );
    let status = &results[0]["result"]["structuredContent"];
    assert_eq!(status["phase"], "running", "{}", results[0]);
    assert!(
        status["endpoints"][0]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(
        results[1]["body"], "templated on podman\n",
        "{}",
        results[1]
    );
    let unknown = first_text(&results[2]);
    assert!(
        unknown.starts_with("not-found:") && unknown.contains("no-such-template"),
        "{unknown}"
    );
    let bad = first_text(&results[3]);
    assert!(
        bad.starts_with("invalid-input:") && bad.contains("port"),
        "{bad}"
    );
    assert_eq!(results[4]["result"]["isError"], false, "{}", results[4]);
    assert!(!containers("berth.managed=true").contains(&format!("berth-{name}")));
}

#[test]
fn a_plan_with_a_build_step_runs_both_in_one_sandbox() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = Sandbox::with_bundled();
    sandbox.add_fixture("staged-runner");
    sandbox.write_config(
        "[runs.sandbox_images.staged]\nimage = \"localhost/busybox:latest\"\npool = { podman = 1 }\n\n[policy.staged-runner]\nprocess = [\"sh\"]\n",
    );
    let code = "cat built.txt\nread line\necho \"got $line\"\necho oops >&2\nexit 3";
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call("run_staged", json!({"code": code, "stdin": "hello\n", "sandbox": "podman"})),
                {"op": "call_until", "tool": "run_staged", "args": {"code": code, "stdin": "hello\n", "sandbox": "podman"},
                 "field": "sandbox.pooled", "equals": true, "attempts": 80},
                call("run_staged", json!({"code": "sleep 30", "sandbox": "podman", "timeout_secs": 2})),
            ]),
        ),
    );
    for outcome in &results[..2] {
        let s = &outcome["result"]["structuredContent"];
        assert_eq!(s["phase"], "run", "{outcome}");
        assert_eq!(
            s["stdout"],
            format!("{}\ngot hello\n", code.len()),
            "{outcome}"
        );
        assert_eq!(s["stderr"], "oops\n", "{outcome}");
        assert_eq!(s["exit_code"], 3, "{outcome}");
    }
    assert!(
        results[1]["attempts"].is_number(),
        "no run came from the pool: {}",
        results[1]
    );
    let slow = &results[2]["result"]["structuredContent"];
    assert_eq!(slow["timed_out"], true, "{}", results[2]);
    let left = containers(&format!("berth.owner={}", owner_of(&sandbox)));
    assert!(left.is_empty(), "berth exited and left {left:?}");
}

#[test]
fn a_kept_sandbox_carries_files_between_runs_until_destroyed() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/busybox:latest") {
        return;
    }
    let sandbox = podman_sandbox();
    let kept = "{result[0].id}";
    let results = drive(
        &py,
        job(
            &sandbox,
            json!([
                call(
                    "create_sandbox",
                    json!({"backend": "podman", "language": "python", "ttl_secs": 600})
                ),
                call(
                    "run_python",
                    json!({"code": "open('note.txt', 'w').write('kept')", "sandbox": kept})
                ),
                call(
                    "run_python",
                    json!({"code": "print(open('note.txt').read())", "sandbox": kept})
                ),
                call("list_sandboxes", json!({})),
                call("run_node", json!({"code": "1", "sandbox": kept})),
                call("destroy_sandbox", json!({"id": kept})),
                call("run_python", json!({"code": "print(1)", "sandbox": kept})),
                // Left for berth to remove when it exits.
                call(
                    "create_sandbox",
                    json!({"backend": "podman", "language": "python"})
                ),
            ]),
        ),
    );
    let s = |i: usize| &results[i]["result"]["structuredContent"];
    let id = s(0)["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no sandbox id: {}", results[0]));
    assert_eq!(s(1)["exit_code"], 0, "{}", results[1]);
    assert_eq!(s(2)["stdout"], "kept\n", "{}", results[2]);
    assert_eq!(s(2)["sandbox"]["id"], id);
    assert!(first_text(&results[3]).contains(id), "{}", results[3]);
    assert!(
        first_text(&results[4]).contains("created for python"),
        "{}",
        results[4]
    );
    assert_eq!(results[5]["result"]["isError"], false, "{}", results[5]);
    assert!(
        first_text(&results[6]).contains("neither a kept sandbox"),
        "{}",
        results[6]
    );
    assert!(s(7)["id"].is_string(), "{}", results[7]);
    let left = containers(&format!("berth.owner={}", owner_of(&sandbox)));
    assert!(left.is_empty(), "left {left:?}");
}
