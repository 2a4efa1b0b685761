//! What plugin authors do: scaffold a plugin of each kind, build it, and
//! load it; build the SDK example from scratch and call it.

mod common;

use std::path::Path;
use std::process::Command;

use common::Sandbox;
use serde_json::Value;

/// Build the crate at `dir` for wasm32-wasip2 into `target`.
fn build(dir: &Path, target: &Path) {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target)
        .current_dir(dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn shared_target() -> std::path::PathBuf {
    // One target dir for every crate these tests build, so the SDK's
    // dependencies compile once; it is not the outer target dir, whose lock
    // the outer cargo may hold.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/authoring-tests")
}

#[test]
fn scaffolded_plugins_of_every_kind_build_and_load_unchanged() {
    let sandbox = Sandbox::with_fixtures(&[]);
    let target = shared_target();
    for (kind, name) in [
        ("tools", "my-tools"),
        ("runner", "my-runner"),
        ("backend", "my-backend"),
        ("template", "my-template"),
    ] {
        let out = sandbox.run(&[
            "plugin",
            "new",
            kind,
            name,
            "--dir",
            sandbox.dir.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "plugin new {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = sandbox.dir.path().join(name);
        build(&dir, &target);
        let wasm = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let manifest = dir.join("plugin.toml");
        let out = sandbox.run(&[
            "plugins",
            "check",
            wasm.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "check {kind}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["kind"], kind, "{report}");
        assert_eq!(report["name"], name);
    }

    let again = sandbox.run(&[
        "plugin",
        "new",
        "tools",
        "my-tools",
        "--dir",
        sandbox.dir.path().to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = sandbox.run(&[
        "plugin",
        "new",
        "gadget",
        "x",
        "--dir",
        sandbox.dir.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown plugin kind `gadget`"));
}

#[test]
fn the_sdk_example_builds_loads_and_keeps_state() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/word-tools");
    let target = shared_target();
    build(&example, &target);
    let sandbox = Sandbox::with_fixtures(&[]);
    let dest = sandbox.plugins().join("word-tools");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/word_tools.wasm"),
        dest.join("plugin.wasm"),
    )
    .unwrap();
    std::fs::copy(example.join("plugin.toml"), dest.join("plugin.toml")).unwrap();
    sandbox.write_config("[policy.word-tools]\nstate = true\n");

    let out = sandbox.run(&[
        "call",
        "top_words",
        "--args",
        r#"{"text": "the cat and the hat and the bat", "limit": 2}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["structuredContent"]["words"][0]["word"], "the");
    assert_eq!(result["structuredContent"]["words"][0]["count"], 3);
    assert_eq!(result["structuredContent"]["words"][1]["word"], "and");

    let out = sandbox.run(&[
        "call",
        "top_words",
        "--args",
        r#"{"text": "x", "limit": 0}"#,
    ]);
    assert!(
        !out.status.success(),
        "limit 0 violates the schema's minimum"
    );

    for expected in ["3 words (3 counted so far)", "2 words (5 counted so far)"] {
        let text = if expected.starts_with('3') {
            "one two three"
        } else {
            "four five"
        };
        let out = sandbox.run(&[
            "call",
            "count_words",
            "--args",
            &format!(r#"{{"text": "{text}"}}"#),
        ]);
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            result["content"][0]["text"], expected,
            "state did not persist across berth runs"
        );
    }
}

#[test]
fn a_team_adds_a_fourth_language_without_touching_the_host() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/perl-runner");
    let target = shared_target();
    build(&example, &target);
    let sandbox = Sandbox::with_fixtures(&[]);
    let dest = sandbox.plugins().join("perl");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/perl_runner.wasm"),
        dest.join("plugin.wasm"),
    )
    .unwrap();
    std::fs::copy(example.join("plugin.toml"), dest.join("plugin.toml")).unwrap();

    let refused = sandbox.run(&["call", "run_perl", "--args", r#"{"code": "print 1"}"#]);
    let result: Value = serde_json::from_slice(&refused.stdout).unwrap();
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("denied:") && text.contains("perl"),
        "an ungranted runner ran: {result}"
    );

    sandbox.write_config("[policy.perl]\nprocess = [\"perl\"]\n");
    let out = sandbox.run(&[
        "call",
        "run_perl",
        "--args",
        r#"{"code": "my @w = map { uc } @ARGV; print join(',', @w), \"\\n\";", "args": ["a", "b"]}"#,
    ]);
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(result["structuredContent"]["stdout"], "A,B\n", "{result}");
    assert_eq!(result["structuredContent"]["exit_code"], 0);
}
