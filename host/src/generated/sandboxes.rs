//! Kept sandboxes: a sandbox an agent creates once and runs several
//! snippets in (`run_<language>` with `sandbox` set to its id), so files
//! and installed packages carry over between runs. `create_sandbox`,
//! `list_sandboxes` and `destroy_sandbox` manage them. A kept sandbox
//! ends at its TTL, or when berth exits: it belongs to the berth that
//! created it (a restart removes every sandbox of the deployment anyway).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::capabilities::context::CallSink;
use crate::config::RunsConfig;
use crate::generated::run::sandbox_spec;
use crate::runtime::bindings::types::{Content, Error as WitError, Tool, ToolHints, ToolOutput};
use crate::runtime::limits::CallError;
use crate::runtime::registry::Registry;

/// Name of the tool that creates a kept sandbox.
pub const CREATE_TOOL: &str = "create_sandbox";
/// Name of the tool that lists kept sandboxes.
pub const LIST_TOOL: &str = "list_sandboxes";
/// Name of the tool that destroys a kept sandbox.
pub const DESTROY_TOOL: &str = "destroy_sandbox";

/// Default and largest lifetime of a kept sandbox, seconds.
const DEFAULT_TTL_SECS: u64 = 3600;
const MAX_TTL_SECS: u64 = 24 * 3600;

/// One kept sandbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeptSandbox {
    /// The backend's id of it.
    pub id: String,
    /// The backend that runs it.
    pub backend: String,
    /// The language whose runs it takes.
    pub language: String,
    /// When it ends (Unix seconds).
    pub expires_at: u64,
}

/// The lock the runs in one kept sandbox take turns on.
pub type Turn = Arc<tokio::sync::Mutex<()>>;

/// The kept sandboxes of one host, by id.
#[derive(Default)]
pub struct KeptSandboxes {
    sandboxes: Mutex<HashMap<String, (KeptSandbox, Turn)>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl KeptSandboxes {
    fn sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, (KeptSandbox, Turn)>> {
        let mut sandboxes = self.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        // Past its TTL the backend has removed it (or will at its next reap).
        let now = now();
        sandboxes.retain(|_, (kept, _)| kept.expires_at > now);
        sandboxes
    }

    /// The kept sandbox `id` and the lock its runs take turns on.
    pub fn get(&self, id: &str) -> Option<(KeptSandbox, Turn)> {
        self.sandboxes().get(id).cloned()
    }

    fn insert(&self, kept: KeptSandbox) {
        self.sandboxes()
            .insert(kept.id.clone(), (kept, Arc::default()));
    }

    fn remove(&self, id: &str) -> Option<KeptSandbox> {
        self.sandboxes().remove(id).map(|(kept, _)| kept)
    }

    /// Forget every kept sandbox and return them, for removal at exit.
    pub fn drain(&self) -> Vec<KeptSandbox> {
        self.sandboxes()
            .drain()
            .map(|(_, (kept, _))| kept)
            .collect()
    }

    fn list(&self) -> Vec<KeptSandbox> {
        let mut all: Vec<KeptSandbox> = self.sandboxes().values().map(|(k, _)| k.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

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
pub async fn call(
    kept: &KeptSandboxes,
    runs: &RunsConfig,
    registry: &Registry,
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
            let spec = sandbox_spec(runs, &args.language, ttl)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sandboxes_are_forgotten() {
        let kept = KeptSandboxes::default();
        let sandbox = |id: &str, expires_at| KeptSandbox {
            id: id.into(),
            backend: "podman".into(),
            language: "python".into(),
            expires_at,
        };
        kept.insert(sandbox("live", now() + 60));
        kept.insert(sandbox("gone", now().saturating_sub(1)));
        assert!(kept.get("live").is_some());
        assert!(kept.get("gone").is_none());
        assert_eq!(kept.list().len(), 1);
        assert_eq!(kept.remove("live").map(|s| s.id), Some("live".into()));
        assert!(kept.list().is_empty());
    }
}
