//! An MCP server deployed from a template on real podman and attached:
//! its tools join berth's over `podman attach`, answer `unavailable` when
//! its container is gone, come back when it is deployed again, and leave
//! with `detach_server`. The server is `server-everything` from npm, run
//! offline from an npm cache `scripts/test` fills on the host.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    Sandbox, absent, call, drive, error_category, first_text, host_env_job, podman_ready, python,
    set_secret, tool_names, until_phase,
};
use serde_json::json;

/// The npm cache holding server-everything, or `None` with the reason.
fn npm_cache() -> Option<std::path::PathBuf> {
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/upstreams/npm-cache");
    if cache.join("_npx").is_dir() {
        return Some(cache.canonicalize().unwrap());
    }
    absent("target/upstreams/npm-cache is not filled (scripts/test fills it)");
    None
}

/// The secret the template's server gets from the store.
const TOKEN: &str = "tok-podman-7c1e5a90-never-shown";

/// Containers whose name holds `part`.
fn containers(part: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.contains(part))
        .map(String::from)
        .collect()
}

#[test]
fn a_template_server_on_podman_is_attached_lost_and_found_again() {
    let Some(py) = python() else { return };
    if !podman_ready("localhost/host-runtime:latest") {
        return;
    }
    let Some(cache) = npm_cache() else { return };
    let sandbox = Sandbox::with_bundled();
    sandbox.write_config(&format!(
        "[secrets]\ntemplates = [\"everything-*\"]\n\n[plugin_config.podman]\nallowed_volume_roots = [\"/usr\", {:?}]\n",
        cache.display().to_string()
    ));
    set_secret(&sandbox, "everything-token", TOKEN);
    set_secret(&sandbox, "kept-back", "not-for-templates-1234");
    let deploy = json!({
        "template": "npx",
        "backend": "podman",
        "params": {
            "package": "@modelcontextprotocol/server-everything@2026.8.31",
            "args": ["stdio"],
            "image": "localhost/host-runtime:latest",
            "mounts": [{"host_path": "/usr", "container_path": "/usr"}],
            "cache_dir": cache.display().to_string(),
            "offline": true,
            "secrets": {"EVERYTHING_TOKEN": "everything-token"}
        }
    });
    let mut forbidden = deploy.clone();
    forbidden["params"]["secrets"] = json!({"KEPT": "kept-back"});
    forbidden["name"] = json!("forbidden-secret");
    let mut first = deploy.clone();
    first["attach"] = json!(true);
    first["server"] = json!("everything");
    let stop = json!({"backend": "podman", "name": "mcp-server-everything"});
    let results = drive(
        &py,
        host_env_job(
            &sandbox,
            None,
            &[],
            json!([
                call("deploy_template", forbidden),
                call("deploy_template", first),
                until_phase("connected"),
                {"op": "list_tools"},
                call("everything__echo", json!({"message": "via podman"})),
                {"op": "call", "tool": "everything__trigger-long-running-operation", "args": {"duration": 1, "steps": 2}, "progress": true},
                call("everything__get-env", json!({})),
                call("stop_template", stop.clone()),
                until_phase("reconnecting"),
                call("everything__echo", json!({"message": "anyone?"})),
                call("deploy_template", deploy),
                until_phase("connected"),
                call("everything__echo", json!({"message": "back"})),
                call("detach_server", json!({"name": "everything"})),
                {"op": "list_tools"},
                call("stop_template", stop),
            ]),
        ),
    );
    let refused = &results[0];
    assert_eq!(error_category(refused), "denied", "{refused}");
    assert!(
        first_text(refused).contains("`kept-back` may not be given to a template"),
        "{refused}"
    );
    assert!(
        containers("forbidden-secret").is_empty(),
        "a refused deploy started a container"
    );
    assert_eq!(
        results[1]["result"]["structuredContent"]["server"], "everything",
        "{}",
        results[1]
    );
    assert!(
        !results[2]["attempts"].is_null(),
        "never connected: {}",
        results[2]
    );
    assert!(tool_names(&results[3]).contains(&"everything__echo".to_string()));
    assert_eq!(
        first_text(&results[4]),
        "Echo: via podman",
        "{}",
        results[4]
    );
    assert_eq!(
        results[5]["progress"].as_array().unwrap().len(),
        2,
        "{}",
        results[5]
    );
    let env = first_text(&results[6]);
    assert!(
        env.contains("[secret everything-token]"),
        "the server did not get its secret, or berth did not redact it: {env}"
    );
    assert_eq!(error_category(&results[9]), "unavailable", "{}", results[9]);
    assert_eq!(first_text(&results[12]), "Echo: back", "{}", results[12]);
    assert!(
        !tool_names(&results[14])
            .iter()
            .any(|t| t.starts_with("everything__"))
    );
    assert_eq!(results[15]["result"]["isError"], false, "{}", results[15]);
    for result in &results {
        assert!(
            !result.to_string().contains(TOKEN),
            "the secret in a result: {result}"
        );
    }
}
