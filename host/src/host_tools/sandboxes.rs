//! `create_sandbox`, `list_sandboxes` and `destroy_sandbox`: the tools over
//! kept sandboxes ([`crate::runs::kept`]); `run_<language>` with `sandbox`
//! set to a kept sandbox's id runs in it.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;

use crate::contract::bindings::types::{Content, Error as WitError, Tool, ToolHints, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runs::config::RunsConfig;
use crate::runs::kept::{KeptSandbox, KeptSandboxes, now};
use crate::runtime::host_tool::HostToolSet;
use crate::runtime::plugin::Plugin;
use crate::runtime::registry::Registry;
use crate::runtime::world::World;

/// Name of the tool that creates a kept sandbox.
pub const CREATE_TOOL: &str = "create_sandbox";
/// Name of the tool that lists kept sandboxes.
pub const LIST_TOOL: &str = "list_sandboxes";
/// Name of the tool that destroys a kept sandbox.
pub const DESTROY_TOOL: &str = "destroy_sandbox";

/// Default and largest lifetime of a kept sandbox, seconds.
const DEFAULT_TTL_SECS: u64 = 3600;
const MAX_TTL_SECS: u64 = 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateArgs {
    backend: String,
    language: String,
    ttl_secs: Option<u64>,
}

/// The kept-sandbox tools, served while any backend is loaded.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: CREATE_TOOL.into(),
            title: Some("Create a sandbox".into()),
            description: "Create a sandbox on a backend for one language and keep it: give its id as `sandbox` to run_<language> to run several snippets in it, with files and installed packages carried over. It ends at its TTL or with destroy_sandbox.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "backend": {"type": "string", "description": "A loaded backend, e.g. `podman` or `k8s`."},
                    "language": {"type": "string", "description": "The language of the runs it takes, e.g. `python`."},
                    "ttl_secs": {"type": "integer", "minimum": 1, "maximum": MAX_TTL_SECS, "description": "Lifetime in seconds; one hour by default."}
                },
                "required": ["backend", "language"],
                "additionalProperties": false
            })
            .to_string(),
            output_schema: None,
            hints: ToolHints::OPEN_WORLD,
        },
        Tool {
            name: LIST_TOOL.into(),
            title: Some("List sandboxes".into()),
            description: "List the sandboxes kept with create_sandbox: id, backend, language and when each ends.".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}).to_string(),
            output_schema: None,
            hints: ToolHints::READ_ONLY | ToolHints::IDEMPOTENT,
        },
        Tool {
            name: DESTROY_TOOL.into(),
            title: Some("Destroy a sandbox".into()),
            description: "Destroy a sandbox kept with create_sandbox and everything in it.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"id": {"type": "string", "description": "The sandbox's id."}},
                "required": ["id"],
                "additionalProperties": false
            })
            .to_string(),
            output_schema: None,
            hints: ToolHints::DESTRUCTIVE | ToolHints::IDEMPOTENT,
        },
    ]
}

fn invalid(message: String) -> CallError {
    CallError::Plugin(WitError::InvalidInput(message))
}

fn output(text: String, structured: serde_json::Value) -> ToolOutput {
    ToolOutput {
        content: vec![Content::Text(text)],
        structured: Some(structured.to_string()),
        is_error: false,
    }
}

/// Serve one of [`tools`].
async fn call(
    kept: &KeptSandboxes,
    runs: &RunsConfig,
    registry: Arc<Registry>,
    tool: &str,
    arguments: serde_json::Value,
    sink: Arc<dyn CallSink>,
) -> Result<ToolOutput, CallError> {
    match tool {
        CREATE_TOOL => {
            let args: CreateArgs = serde_json::from_value(arguments)
                .map_err(|e| invalid(format!("arguments of `{CREATE_TOOL}`: {e}")))?;
            if registry.tool(&format!("run_{}", args.language)).is_none() {
                return Err(invalid(format!(
                    "language `{}`: no runner for it is loaded",
                    args.language
                )));
            }
            let backend = registry.backend(&args.backend).map_err(CallError::Plugin)?;
            let ttl = args.ttl_secs.unwrap_or(DEFAULT_TTL_SECS).min(MAX_TTL_SECS);
            let spec = runs
                .sandbox_spec(&args.language, ttl)
                .map_err(CallError::Plugin)?;
            let id = backend.sandbox_create(&spec, sink).await?;
            let sandbox = KeptSandbox {
                id: id.clone(),
                backend: args.backend,
                language: args.language,
                expires_at: now() + ttl,
            };
            kept.insert(sandbox.clone());
            Ok(output(
                format!(
                    "sandbox {id} created on {} for {}; give it as `sandbox` to run_{}",
                    sandbox.backend, sandbox.language, sandbox.language
                ),
                json!(sandbox),
            ))
        }
        LIST_TOOL => {
            let all = kept.list();
            let text = if all.is_empty() {
                "no sandboxes".to_string()
            } else {
                all.iter()
                    .map(|s| {
                        format!(
                            "{} on {} for {}, ends in {}s",
                            s.id,
                            s.backend,
                            s.language,
                            s.expires_at.saturating_sub(now())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(output(text, json!({ "sandboxes": all })))
        }
        _ => {
            let id = arguments
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let sandbox = kept.get(id).map(|(s, _)| s).ok_or_else(|| {
                CallError::Plugin(WitError::NotFound(format!(
                    "sandbox `{id}`: no kept sandbox has this id (list_sandboxes shows them)"
                )))
            })?;
            let backend = registry
                .backend(&sandbox.backend)
                .map_err(CallError::Plugin)?;
            backend.sandbox_destroy(id, sink).await?;
            kept.remove(id);
            Ok(output(
                format!("sandbox {id} destroyed"),
                json!({ "id": id }),
            ))
        }
    }
}

/// The kept-sandbox tools, served while any backend is loaded.
pub struct SandboxTools {
    kept: Arc<KeptSandboxes>,
    runs: RunsConfig,
}

impl SandboxTools {
    /// Tools keeping sandboxes in `kept`, made as `runs` configures.
    pub fn new(kept: Arc<KeptSandboxes>, runs: RunsConfig) -> Self {
        Self { kept, runs }
    }
}

impl HostToolSet for SandboxTools {
    fn name(&self) -> &'static str {
        "sandboxes"
    }

    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool> {
        let needed = plugins.iter().any(|p| p.world == World::Backend);
        needed.then(tools).unwrap_or_default()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: serde_json::Value,
        registry: Arc<Registry>,
        sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>> {
        Box::pin(call(
            &self.kept, &self.runs, registry, tool, arguments, sink,
        ))
    }
}
