//! The arguments of `run_<language>`: its JSON Schema, how callers may
//! give dependencies, and the checks the schema cannot express.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

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

/// The `run_<language>` tool a runner gets.
pub fn tool(info: &RunnerInfo) -> Tool {
    let language = &info.language;
    let aliases = if info.aliases.is_empty() {
        String::new()
    } else {
        format!(" (also known as {})", info.aliases.join(", "))
    };
    let schema = json!({
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 1, "description": format!("The {language} source to run.")},
            "dependencies": {
                "type": "array",
                "maxItems": MAX_DEPENDENCIES,
                "description": "Third-party packages, in the ecosystem's own syntax: pip specifiers (`requests>=2`), npm `name@range`, or cargo specs (`serde_json@1`, `tokio@1[full]`, or an object). Environments are cached by language, toolchain and this set.",
                "items": {"oneOf": [
                    {"type": "string", "minLength": 1, "maxLength": MAX_DEPENDENCY_BYTES},
                    {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "features": {"type": "array", "items": {"type": "string"}}
                    }, "required": ["name"], "additionalProperties": false}
                ]}
            },
            "deployment": {"type": "string", "description": "Run in the context of this Kubernetes deployment through `mirrord exec` (its network, environment and files)."},
            "pod": {"type": "string", "description": "Like `deployment`, for one pod."},
            "namespace": {"type": "string", "description": "Namespace of the deployment or pod."},
            "mirrord_config": {"type": "string", "description": "mirrord configuration as a JSON object string."},
            "timeout_secs": {"type": "integer", "minimum": 1, "description": "Time limit of the program itself (setup is limited separately)."},
            "stdin": {"type": "string", "description": "Standard input of the program."},
            "args": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_LIST, "description": "Arguments of the program."},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra environment variables of the program."},
            "session": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "Keep the workspace (files the program writes) across calls with the same session name, until it is idle too long or stopped with stop_session."},
            "sandbox": {"type": "string", "description": "Run inside a sandbox instead: a backend name (`podman`, `k8s`) or an existing sandbox id."}
        },
        "required": ["code"],
        "additionalProperties": false
    });
    let output = json!({
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
        "required": ["exit_code", "stdout", "stderr", "phase", "duration_ms", "cached_env", "truncated"]
    });
    Tool {
        name: tool_name(info),
        title: Some(format!("Run {language}")),
        description: format!(
            "Run a {language} snippet{aliases} with its dependencies and return its output. Locally by default; with `deployment` or `pod`, inside that workload's context through mirrord. Environments with the same dependencies are reused, so repeat runs skip installation."
        ),
        input_schema: schema.to_string(),
        output_schema: Some(output.to_string()),
        hints: ToolHints::OPEN_WORLD,
    }
}

/// A dependency as callers may give it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Dependency {
    Spec(String),
    Crate {
        name: String,
        version: Option<String>,
        #[serde(default)]
        features: Vec<String>,
    },
}

impl Dependency {
    /// The spec string the runner parses.
    pub(super) fn into_spec(self) -> String {
        match self {
            Dependency::Spec(spec) => spec,
            Dependency::Crate {
                name,
                version,
                features,
            } => {
                let mut spec = name;
                if let Some(version) = version {
                    spec.push('@');
                    spec.push_str(&version);
                }
                if !features.is_empty() {
                    spec.push('[');
                    spec.push_str(&features.join(","));
                    spec.push(']');
                }
                spec
            }
        }
    }
}

/// The arguments of `run_<language>`.
#[derive(Debug, Deserialize)]
pub(super) struct RunArgs {
    pub(super) code: String,
    #[serde(default)]
    pub(super) dependencies: Vec<Dependency>,
    pub(super) deployment: Option<String>,
    pub(super) pod: Option<String>,
    pub(super) namespace: Option<String>,
    pub(super) mirrord_config: Option<String>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) stdin: Option<String>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) session: Option<String>,
    pub(super) sandbox: Option<String>,
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
            "`env` may not set `{name}` (empty, contains `=`/NUL, or a loader variable)"
        )));
    }
    if args.env.len() > MAX_LIST {
        return Err(invalid(format!("`env` has more than {MAX_LIST} entries")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn crate_objects_become_cargo_specs() {
        let dep: Dependency = serde_json::from_value(
            json!({"name": "tokio", "version": "1", "features": ["full", "macros"]}),
        )
        .unwrap();
        assert_eq!(dep.into_spec(), "tokio@1[full,macros]");
        let dep: Dependency = serde_json::from_value(json!("requests>=2")).unwrap();
        assert_eq!(dep.into_spec(), "requests>=2");
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
        };
        let tool = tool(&info);
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
}
