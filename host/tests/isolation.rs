//! Hostile snippets against the real binary through the official Python MCP
//! client: each one's verdict is read from its own result. The suite runs
//! four times: snippets started directly or forked by the fork server, with
//! cgroups or with resource limits alone.

mod common;

use std::path::Path;

use common::{Sandbox, drive, first_text, python};
use serde_json::{Value, json};

/// A value only berth's own environment holds.
const SECRET: &str = "berth-isolation-secret-4f1c";

fn run(args: Value) -> Value {
    json!({"op": "call", "tool": "run_python", "args": args})
}

fn run_until_forked(args: Value) -> Value {
    json!({"op": "call_until", "tool": "run_python", "args": args, "field": "forked", "equals": true, "attempts": 80})
}

fn structured(outcome: &Value) -> &Value {
    &outcome["result"]["structuredContent"]
}

fn stdout_of(outcome: &Value) -> String {
    let s = structured(outcome);
    assert_eq!(s["exit_code"], 0, "run failed: {}", first_text(outcome));
    s["stdout"].as_str().unwrap().to_string()
}

/// What a snippet tries to reach of berth, printed as JSON: each entry is
/// what it managed, `null` when it was refused.
const PROBE: &str = r#"
import json, os, sys
data = sys.argv[1]
seen = {}
def attempt(name, action):
    try:
        seen[name] = action()
    except OSError:
        seen[name] = None
def environ():
    for pid in os.listdir('/proc'):
        if pid.isdigit():
            try:
                if b'berth-isolation-secret' in open(f'/proc/{pid}/environ', 'rb').read():
                    return pid
            except OSError:
                pass
    return None
attempt('environ', environ)
attempt('database', lambda: len(open(os.path.join(data, 'berth.db'), 'rb').read(16)))
attempt('cache', lambda: open(os.path.join(data, 'cache', 'planted.cwasm'), 'wb').write(b'x'))
attempt('data_dir', lambda: 'berth.db' in os.listdir(data) or None)
here = os.path.realpath(os.getcwd())
attempt('other_workspaces', lambda: [n for n in os.listdir(os.path.dirname(here)) if n != os.path.basename(here)] or None)
print(json.dumps(seen))
"#;

/// Writes `victim.txt` and keeps its workspace for a while.
const VICTIM: &str = "import time\nopen('victim.txt', 'w').write('mine')\ntime.sleep(4)\nprint(open('victim.txt').read())";

/// Looks for the victim's workspace everywhere it might show, and tries to
/// change the file there.
const THIEF: &str = r#"
import os, time
time.sleep(1)
found = []
for root in {os.path.dirname(os.path.realpath(os.getcwd())), '/tmp', '/proc/1/cwd'}:
    for dirpath, _, files in os.walk(root):
        if 'victim.txt' in files:
            path = os.path.join(dirpath, 'victim.txt')
            try:
                open(path, 'w').write('stolen')
                found.append('wrote ' + path)
            except OSError:
                found.append('saw ' + path)
print(found)
"#;

/// Tries to change the shared environment its dependency was installed in.
const PLANT_IN_ENV: &str = r#"
import os, six
try:
    open(os.path.join(os.path.dirname(six.__file__), 'berth_evil.py'), 'w').write('x = 1')
    print('wrote')
except OSError as err:
    print('refused', err.errno)
"#;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Pids of processes whose working directory lies under `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            cwd.starts_with(dir)
                .then(|| format!("{} ({})", e.file_name().to_string_lossy(), cwd.display()))
        })
        .collect()
}

fn pgrep(pattern: &str) -> String {
    let out = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(files_named(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

fn hostile_suite(forked: bool, cgroups: bool) {
    let Some(py) = python() else { return };
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(&format!(
        "[runs]\nfork_servers = {}\ncgroups = {cgroups}\nrequire_isolation = true\n",
        if forked { 8 } else { 0 }
    ));
    let data = sandbox.data().display().to_string();
    // The four variants run in parallel in one test process, so the marker
    // names the variant: one variant's live snippets are not another's survivors.
    let marker = format!(
        "berth-hostile-{}-{}-{}",
        std::process::id(),
        if forked { "forked" } else { "direct" },
        if cgroups { "cgroups" } else { "rlimits" }
    );
    // Likewise the child that leaves its session sleeps for a time of its
    // variant's own.
    let escapee = 300 + 2 * u32::from(forked) + u32::from(cgroups);
    let hostile = |body: &str, timeout: u64| {
        run(json!({"code": body, "timeout_secs": timeout, "args": [marker]}))
    };
    let warm = |code: &str, extra: Value| {
        let mut args = json!({"code": code});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        if forked {
            run_until_forked(args)
        } else {
            run(args)
        }
    };
    // As root the kernel never counts processes against the limit, so only
    // a cgroup can stop a fork bomb; without one a bounded spree shows
    // that every process still dies with its call.
    let bomb = if cgroups || !running_as_root() {
        "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"
    } else {
        "import os, time\nfor _ in range(300):\n    if os.fork() == 0:\n        time.sleep(300)\n        os._exit(0)\ntime.sleep(300)"
    };
    let mut job = common::host_env_job(
        &sandbox,
        None,
        &["KUBECONFIG"],
        json!([
            warm("print('warm')", json!({})),
            warm(PROBE, json!({"args": [data]})),
            {"op": "concurrent", "calls": [
                {"tool": "run_python", "args": {"code": VICTIM}},
                {"tool": "run_python", "args": {"code": THIEF}},
            ]},
            warm(PLANT_IN_ENV, json!({"dependencies": ["six"]})),
            hostile("while True:\n    pass", 3),
            hostile(bomb, 5),
            hostile("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))", 30),
            hostile(
                "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)",
                60
            ),
            hostile(
                &format!("import subprocess\nsubprocess.Popen(['sleep', '{escapee}'], start_new_session=True)\nprint('escaped?')"),
                20
            ),
            run(json!({"code": "print('still fine')"})),
        ]),
    );
    job["env"]["BERTH_PROBE_SECRET"] = json!(SECRET);
    let results = drive(&py, job);

    for result in results.iter().filter(|r| r.get("result").is_some()) {
        assert_eq!(structured(result)["isolated"], true, "{result}");
    }
    let probe: Value = serde_json::from_str(stdout_of(&results[1]).trim()).unwrap();
    assert_eq!(structured(&results[1])["forked"], forked, "{}", results[1]);
    for (what, got) in probe.as_object().unwrap() {
        assert!(got.is_null(), "a snippet reached berth's {what}: {got}");
    }
    assert!(!Path::new(&data).join("cache/planted.cwasm").exists());

    let pair = results[2]["results"].as_array().unwrap();
    assert_eq!(stdout_of(&pair[0]).trim(), "mine", "{}", pair[0]);
    assert_eq!(
        stdout_of(&pair[1]).trim(),
        "[]",
        "a run found another's workspace: {}",
        pair[1]
    );

    let planted = stdout_of(&results[3]);
    assert!(planted.starts_with("refused"), "{planted}");
    assert!(files_named(&sandbox.data().join("envs"), "berth_evil.py").is_empty());

    let limits = structured(&results[4])["limits"].clone();
    let held = |name: &str| limits.as_array().unwrap().iter().any(|l| l == name);
    assert_eq!(held("cgroup-memory"), cgroups, "{limits}");
    assert!(
        held("file-size") && held("open-files") && held("data-memory"),
        "{limits}"
    );
    assert_eq!(held("processes"), !running_as_root(), "{limits}");

    assert_eq!(structured(&results[4])["timed_out"], true, "{}", results[4]);
    let forking = structured(&results[5]);
    assert!(
        forking["timed_out"] == true || forking["pids_exceeded"] == true,
        "{}",
        results[5]
    );
    let eating = structured(&results[6]);
    assert_ne!(eating["exit_code"], 0, "{}", results[6]);
    if cgroups {
        assert_eq!(eating["memory_exceeded"], true, "{}", results[6]);
    } else {
        assert!(
            eating["stderr"].as_str().unwrap().contains("MemoryError"),
            "{}",
            results[6]
        );
    }
    let flooding = structured(&results[7]);
    assert_eq!(flooding["truncated"], true);
    assert_eq!(flooding["stdout"].as_str().unwrap().len(), 1 << 20);
    assert_eq!(stdout_of(&results[9]).trim(), "still fine");

    std::thread::sleep(std::time::Duration::from_millis(300));
    let work = sandbox.data().join("work");
    let survivors = processes_under(&work);
    assert!(
        survivors.is_empty(),
        "snippet processes survived their calls: {survivors:?}"
    );
    assert!(
        pgrep(&marker).is_empty(),
        "snippet processes marked {marker} survived their calls"
    );
    assert!(
        pgrep(&format!("^sleep {escapee}$")).is_empty(),
        "a child that left its session survived the call"
    );
    let left = std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "workspaces were left in {}", work.display());
}

#[test]
fn hostile_snippets_started_directly_with_cgroups() {
    hostile_suite(false, true);
}

#[test]
fn hostile_snippets_started_directly_with_limits_alone() {
    hostile_suite(false, false);
}

#[test]
fn hostile_snippets_from_the_fork_server_with_cgroups() {
    hostile_suite(true, true);
}

#[test]
fn hostile_snippets_from_the_fork_server_with_limits_alone() {
    hostile_suite(true, false);
}
