//! The arguments of `run_<language>`: the type its JSON Schema is derived
//! from, the runner's dependency items passed through, and the checks the
//! schema cannot express.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::contract::bindings::shared::berth::plugin::runner_types::RunnerInfo;
use crate::contract::bindings::types::{Error as WitError, Tool, ToolHints};
use crate::contract::error::CallError;
use crate::runs::config::RunsConfig;
use crate::sys::process;

/// Most dependencies one call may declare.
const MAX_DEPENDENCIES: usize = 128;
/// Longest dependency spec, bytes.
const MAX_DEPENDENCY_BYTES: usize = 256;
/// Most program arguments or environment entries.
const MAX_LIST: usize = 256;

/// The tool's name for a runner's language.
pub fn tool_name(info: &RunnerInfo) -> String {
    format!("run_{}", info.language)
}

/// The `run_<language>` tool a runner gets; its dependency items follow
/// `dependency_item`, the runner's own schema of one item.
pub(super) fn tool(info: &RunnerInfo, dependency_item: &Value) -> Tool {
    let language = &info.language;
    let aliases = if info.aliases.is_empty() {
        String::new()
    } else {
        format!(" (also known as {})", info.aliases.join(", "))
    };
    let mut schema = schemars::schema_for!(RunArgs).to_value();
    let properties = &mut schema["properties"];
    properties["code"]["description"] = json!(format!("The {language} source to run."));
    properties["dependencies"]["items"] = dependency_item.clone();
    Tool {
        name: tool_name(info),
        title: Some(format!("Run {language}")),
        description: format!(
            "Run a {language} snippet{aliases} with its dependencies and return its output. Locally by default; with `deployment` or `pod`, inside that workload's context through mirrord. Environments with the same dependencies are reused, so repeat runs skip installation."
        ),
        input_schema: schema.to_string(),
        output_schema: Some(output_schema().to_string()),
        hints: ToolHints::OPEN_WORLD,
    }
}

/// The schema of one dependency for a runner that declares none: a spec
/// string in the ecosystem's own syntax.
pub(super) fn string_dependency() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_DEPENDENCY_BYTES})
}

/// The structured result every `run_<language>` call returns.
fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "exit_code": {"type": ["integer", "null"]},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "phase": {"type": "string", "enum": ["setup", "build", "run"]},
            "duration_ms": {"type": "integer"},
            "cached_env": {"type": "boolean"},
            "truncated": {"type": "boolean"},
            "timed_out": {"type": "boolean"},
            "limits_enforced": {"type": "boolean"},
            "memory_exceeded": {"type": "boolean"},
            "pids_exceeded": {"type": "boolean"},
            "forked": {"type": "boolean", "description": "Started by forking an interpreter with the environment already loaded."},
            "isolated": {"type": "boolean", "description": "Ran confined: namespaces of its own, nothing of berth or of other runs visible, or in a backend's sandbox."},
            "limits": {"type": "array", "items": {"type": "string"}, "description": "The limits that held around the last step: cgroup-memory, cgroup-processes, processes, file-size, open-files, data-memory, no-core-dumps, or sandbox (the backend's own)."},
            "sandbox": {
                "type": "object",
                "description": "The sandbox the run used, when it ran in one.",
                "properties": {
                    "backend": {"type": "string"},
                    "id": {"type": "string"},
                    "pooled": {"type": "boolean", "description": "Taken ready from the warm pool."}
                }
            }
        },
        "required": ["exit_code", "stdout", "stderr", "phase", "duration_ms", "cached_env", "truncated", "isolated", "limits"]
    })
}

/// The arguments of `run_<language>`; its input schema is derived from this
/// type, with the runner's own dependency item schema put in.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunArgs {
    /// The source to run.
    #[schemars(length(min = 1))]
    pub(super) code: String,
    /// Third-party packages, in the runner's own syntax (pip specifiers
    /// such as `requests>=2`, npm `name@range`, cargo specs such as
    /// `tokio@1[full]` or objects). Environments are cached by language,
    /// toolchain and this set.
    #[serde(default)]
    #[schemars(length(max = MAX_DEPENDENCIES))]
    pub(super) dependencies: Vec<Value>,
    /// Run in the context of this Kubernetes deployment through `mirrord
    /// exec` (its network, environment and files).
    pub(super) deployment: Option<String>,
    /// Like `deployment`, for one pod.
    pub(super) pod: Option<String>,
    /// Namespace of the deployment or pod.
    pub(super) namespace: Option<String>,
    /// mirrord configuration as a JSON object string.
    pub(super) mirrord_config: Option<String>,
    /// Time limit of the program itself (setup is limited separately).
    #[schemars(range(min = 1))]
    pub(super) timeout_secs: Option<u64>,
    /// Standard input of the program.
    pub(super) stdin: Option<String>,
    /// Arguments of the program.
    #[serde(default)]
    #[schemars(length(max = MAX_LIST))]
    pub(super) args: Vec<String>,
    /// Extra environment variables of the program.
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    /// Keep the workspace (files the program writes) across calls with the
    /// same session name, until it is idle too long or stopped with
    /// stop_session.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub(super) session: Option<String>,
    /// Run inside a sandbox instead: a backend name (`podman`, `k8s`) or an
    /// existing sandbox id.
    pub(super) sandbox: Option<String>,
}

impl RunArgs {
    /// The dependencies as the runner receives them: a string item as it
    /// is, any other item as its JSON text.
    pub(super) fn dependency_specs(&self) -> Vec<String> {
        self.dependencies
            .iter()
            .map(|item| match item {
                Value::String(spec) => spec.clone(),
                other => other.to_string(),
            })
            .collect()
    }
}

pub(super) fn invalid(message: String) -> CallError {
    CallError::Plugin(WitError::InvalidInput(message))
}

/// Check the arguments the schema cannot express, against `runs`' limits.
pub(super) fn check(args: &RunArgs, runs: &RunsConfig) -> Result<(), CallError> {
    if args.code.trim().is_empty() {
        return Err(invalid("`code` is empty; pass the source to run".into()));
    }
    if args.code.len() > runs.max_code_bytes {
        return Err(invalid(format!(
            "`code` is {} bytes; at most {} allowed",
            args.code.len(),
            runs.max_code_bytes
        )));
    }
    if let Some(secs) = args.timeout_secs
        && secs > runs.max_timeout_secs
    {
        return Err(invalid(format!(
            "`timeout_secs` is {secs}; at most {} allowed",
            runs.max_timeout_secs
        )));
    }
    if args.deployment.is_some() && args.pod.is_some() {
        return Err(invalid(
            "give either `deployment` or `pod`, not both".into(),
        ));
    }
    let attached = args.deployment.is_some() || args.pod.is_some();
    if !attached && (args.mirrord_config.is_some() || args.namespace.is_some()) {
        return Err(invalid(
            "`namespace` and `mirrord_config` need a `deployment` or `pod` to run against".into(),
        ));
    }
    if attached && args.sandbox.is_some() {
        return Err(invalid(
            "`sandbox` and `deployment`/`pod` are different places to run; give one".into(),
        ));
    }
    if let Some(name) = args.env.keys().find(|k| process::is_forbidden_env(k)) {
        return Err(invalid(format!(
            "`env` may not set `{name}` (malformed, or it would load code or redirect a tool, like LD_*, PATH, NODE_OPTIONS or RUSTC_WRAPPER; the README lists them)"
        )));
    }
    if args.env.len() > MAX_LIST {
        return Err(invalid(format!("`env` has more than {MAX_LIST} entries")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_items_reach_the_runner_as_given() {
        let args: RunArgs = serde_json::from_value(json!({
            "code": "x",
            "dependencies": ["requests>=2", {"name": "tokio", "features": ["full"]}]
        }))
        .unwrap();
        assert_eq!(
            args.dependency_specs(),
            ["requests>=2", r#"{"features":["full"],"name":"tokio"}"#]
        );
    }

    #[test]
    fn the_schema_names_the_original_mirrord_arguments() {
        let info = RunnerInfo {
            language: "python".into(),
            aliases: vec!["py".into()],
            programs: vec!["python3".into()],
            toolchain_probe: crate::contract::bindings::types::Command {
                program: "python3".into(),
                args: vec!["-V".into()],
                env: vec![],
                cwd: None,
            },
            dependency_schema: None,
        };
        let tool = tool(&info, &string_dependency());
        assert_eq!(tool.name, "run_python");
        let schema: Value = serde_json::from_str(&tool.input_schema).unwrap();
        for name in [
            "code",
            "dependencies",
            "deployment",
            "namespace",
            "mirrord_config",
            "pod",
            "timeout_secs",
            "stdin",
            "args",
            "env",
            "session",
            "sandbox",
        ] {
            assert!(schema["properties"].get(name).is_some(), "missing {name}");
        }
    }

    #[test]
    fn the_runner_declares_its_dependency_items_and_unknown_arguments_are_refused() {
        let info = RunnerInfo {
            language: "rust".into(),
            aliases: vec![],
            programs: vec![],
            toolchain_probe: crate::contract::bindings::types::Command {
                program: "cargo".into(),
                args: vec![],
                env: vec![],
                cwd: None,
            },
            dependency_schema: None,
        };
        let item = json!({"type": "object", "required": ["name"]});
        let schema: Value = serde_json::from_str(&tool(&info, &item).input_schema).unwrap();
        assert_eq!(schema["properties"]["dependencies"]["items"], item);
        assert_eq!(schema["properties"]["dependencies"]["maxItems"], 128);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["required"], json!(["code"]));
    }
}
