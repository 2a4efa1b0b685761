//! What berth loads is what was meant to be loaded: a compile-cache entry
//! berth did not write is rejected and recompiled, and a pinned plugin whose
//! file changed is refused with both digests named.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{Sandbox, fixture_wasm};
use sha2::{Digest, Sha256};

/// The cache entry of fixture `name` in `sandbox` (its file name starts
/// with the component's sha256).
fn cache_entry(sandbox: &Sandbox, name: &str) -> PathBuf {
    let digest = hex::encode(Sha256::digest(std::fs::read(fixture_wasm(name)).unwrap()));
    std::fs::read_dir(sandbox.data().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&digest)
        })
        .unwrap_or_else(|| panic!("no cache entry for {name}"))
}

/// `berth tools` with info logging: (stdout, stderr).
fn tools(sandbox: &Sandbox) -> (String, String) {
    let out = sandbox.run(&["--log", "info", "tools"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

#[test]
fn a_cache_entry_berth_did_not_write_is_rejected_and_recompiled() {
    let sandbox = Sandbox::with_fixtures(&["conformance", "trap"]);
    let (_, first) = tools(&sandbox);
    assert!(first.contains("compiled=2"), "{first}");
    let (_, second) = tools(&sandbox);
    assert!(second.contains("cache_hits=2"), "{second}");

    // Another plugin's native code copied over this one's.
    let target = cache_entry(&sandbox, "conformance");
    std::fs::copy(cache_entry(&sandbox, "trap"), &target).unwrap();
    let (stdout, stderr) = tools(&sandbox);
    assert!(
        stderr.contains("rejected compile-cache entry") && stderr.contains("not what berth wrote"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cache_hits=1") && stderr.contains("compiled=1"),
        "{stderr}"
    );
    assert!(
        stdout.contains("test_simple_text"),
        "the conformance plugin is gone:\n{stdout}"
    );

    // The recompiled entry is trusted again; one others may write is not.
    let (_, trusted) = tools(&sandbox);
    assert!(trusted.contains("cache_hits=2"), "{trusted}");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, loose) = tools(&sandbox);
    assert!(
        loose.contains("rejected compile-cache entry") && loose.contains("mode 666"),
        "{loose}"
    );
    let mode = std::fs::metadata(cache_entry(&sandbox, "conformance"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the rewritten entry has mode {mode:o}");
}

#[test]
fn a_pinned_plugin_with_another_digest_is_refused_naming_both() {
    let sandbox = Sandbox::with_fixtures(&["conformance"]);
    let actual = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(
            std::fs::read(fixture_wasm("conformance")).unwrap()
        ))
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    sandbox.write_config(&format!("[pins]\nconformance = \"{wrong}\"\n"));
    let out = sandbox.run(&["plugins", "list"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&actual) && text.contains(&wrong), "{text}");
    assert!(text.contains("refusing to load"), "{text}");
    let (stdout, _) = tools(&sandbox);
    assert!(!stdout.contains("test_simple_text"), "{stdout}");

    sandbox.write_config(&format!("[pins]\nconformance = \"{actual}\"\n"));
    let (stdout, _) = tools(&sandbox);
    assert!(stdout.contains("test_simple_text"), "{stdout}");

    sandbox.write_config("[pins]\nconformance = \"sha256:1234\"\n");
    let out = sandbox.run(&["tools"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("berth.toml")
            && stderr.contains("sha256:1234")
            && stderr.contains("64 hex digits"),
        "{stderr}"
    );
}
