//! An in-process berth for the host's own tests: a [`PluginHost`] over a
//! temporary data directory, called directly, without the binary or an MCP
//! client. Integration tests in `host/tests/` still drive the real binary;
//! this is for registry and host-tool behaviour that needs no transport.

use std::sync::Arc;

use serde_json::Value;

use crate::app::config::Config;
use crate::app::host::{PluginHost, ToolCallError};
use crate::contract::bindings::types::ToolOutput;
use crate::contract::sink::Unattended;
use crate::runtime::cache::CompileCache;
use crate::state::Database;

/// One compile cache for every test host, kept between runs, so each
/// bundled plugin is compiled once rather than once per test; its digests
/// live in a database beside it, opened once per test process.
fn shared_cache() -> CompileCache {
    static SHARED: std::sync::OnceLock<CompileCache> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let dir = std::env::temp_dir().join("berth-test-compile-cache");
            std::fs::create_dir_all(&dir).expect("creating the shared compile cache");
            let digests =
                Database::open(&dir.join("digests.db")).expect("the shared cache's database");
            CompileCache::open(dir, digests).expect("the shared compile cache")
        })
        .clone()
}

/// A running in-process host with its own data directory.
pub struct TestHost {
    /// The host under test.
    pub host: Arc<PluginHost>,
    _data: tempfile::TempDir,
}

impl TestHost {
    /// A host with the bundled plugins and default settings.
    pub async fn bundled() -> TestHost {
        Self::with(|_| {}).await
    }

    /// A host with the bundled plugins, after `adjust` changed the config.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> TestHost {
        let data = tempfile::tempdir().expect("a temporary data directory");
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        adjust(&mut config);
        let db = Database::in_memory().expect("an in-memory database");
        let host = PluginHost::start_with_db(config, db, Some(shared_cache()))
            .await
            .expect("the host starts");
        TestHost { host, _data: data }
    }

    /// Call `tool` with `arguments` as a client would, without one.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<ToolOutput, ToolCallError> {
        self.host
            .call_tool(tool, arguments, Arc::new(Unattended))
            .await
    }

    /// The input schema `tool` is served with.
    pub fn input_schema(&self, tool: &str) -> Value {
        let registry = self.host.registry();
        let entry = registry
            .tool(tool)
            .unwrap_or_else(|| panic!("`{tool}` is not served"));
        Value::Object((*entry.input_schema).clone())
    }

    /// Who answers `tool`: a plugin's name or `host:SET`.
    pub fn owner(&self, tool: &str) -> String {
        let registry = self.host.registry();
        let entry = registry
            .tool(tool)
            .unwrap_or_else(|| panic!("`{tool}` is not served"));
        entry.owner.name()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::contract::bindings::types::Error as WitError;

    #[tokio::test]
    async fn host_tools_are_owned_by_the_host_and_plugin_tools_by_their_plugin() {
        let berth = TestHost::bundled().await;
        assert_eq!(berth.owner("run_python"), "host:run");
        assert_eq!(berth.owner("list_sessions"), "host:sessions");
        assert_eq!(berth.owner("create_sandbox"), "host:sandboxes");
        assert_eq!(berth.owner("list_templates"), "host:templates");
        assert_eq!(berth.owner("podman_start"), "podman");
        assert_eq!(berth.owner("k8s_apply"), "k8s");
    }

    #[tokio::test]
    async fn each_runner_declares_the_dependency_items_it_takes() {
        let berth = TestHost::bundled().await;
        let rust = berth.input_schema("run_rust");
        let items = &rust["properties"]["dependencies"]["items"];
        assert_eq!(items["oneOf"][1]["required"], json!(["name"]), "{items}");
        let python = berth.input_schema("run_python");
        assert_eq!(
            python["properties"]["dependencies"]["items"]["type"],
            "string"
        );
    }

    #[tokio::test]
    async fn an_item_form_the_runner_does_not_declare_is_refused_before_it_runs() {
        let berth = TestHost::bundled().await;
        let refused = berth
            .call(
                "run_python",
                json!({"code": "print(1)", "dependencies": [{"name": "requests"}]}),
            )
            .await;
        match refused {
            Err(ToolCallError::InvalidArguments { tool, problems }) => {
                assert_eq!(tool, "run_python");
                assert!(problems.contains("dependencies"), "{problems}");
            }
            other => panic!("expected invalid arguments, got {other:?}"),
        }
        let refused = berth
            .call("run_python", json!({"code": "print(1)", "verbose": true}))
            .await;
        assert!(
            matches!(refused, Err(ToolCallError::InvalidArguments { .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn only_backends_are_offered_as_backends() {
        let berth = TestHost::bundled().await;
        let registry = berth.host.registry();
        assert!(registry.backend("podman").is_ok());
        match registry.backend("python") {
            Err(WitError::NotFound(message)) => {
                assert_eq!(message, "backend `python`; loaded backends: k8s, podman");
            }
            Err(other) => panic!("expected not-found, got {other:?}"),
            Ok(_) => panic!("the python runner was offered as a backend"),
        }
    }

    #[tokio::test]
    async fn every_template_plugin_lists_its_templates() {
        let berth = TestHost::bundled().await;
        let listed = berth.call("list_templates", json!({})).await.unwrap();
        let listed: Value = serde_json::from_str(listed.structured.as_deref().unwrap()).unwrap();
        let plugins: Vec<&str> = listed["templates"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["plugin"].as_str())
            .collect();
        assert!(plugins.contains(&"services"), "{listed}");
        assert!(plugins.contains(&"mcp-servers"), "{listed}");
    }
}
