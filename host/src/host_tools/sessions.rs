//! `list_sessions` and `stop_session`: the tools over the sessions
//! `run_<language>` keeps ([`crate::runs::sessions`]).

use serde_json::json;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::host_tool::HostToolSet;
use crate::runtime::plugin::Plugin;
use crate::runtime::registry::Registry;
use crate::runtime::world::World;

use crate::contract::bindings::types::{Content, Error as WitError, Tool, ToolHints, ToolOutput};
use crate::runs::RunServices;
use crate::runs::sessions::{list, now, stop, sweep};

/// Name of the tool that lists sessions.
pub const LIST_TOOL: &str = "list_sessions";
/// Name of the tool that stops a session.
pub const STOP_TOOL: &str = "stop_session";

/// The session tools, served while any runner is loaded.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: LIST_TOOL.into(),
            title: Some("List run sessions".into()),
            description: "List the sessions kept by run_<language> calls: name, language, and when each was created and last used.".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}).to_string(),
            output_schema: None,
            hints: ToolHints::READ_ONLY | ToolHints::IDEMPOTENT,
        },
        Tool {
            name: STOP_TOOL.into(),
            title: Some("Stop a run session".into()),
            description: "Remove a session's workspace and everything the runs in it wrote.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"session": {"type": "string", "description": "The session's name."}},
                "required": ["session"],
                "additionalProperties": false
            })
            .to_string(),
            output_schema: None,
            hints: ToolHints::DESTRUCTIVE | ToolHints::IDEMPOTENT,
        },
    ]
}

/// Serve one of [`tools`].
async fn call(
    runs: &RunServices,
    tool: &str,
    arguments: &serde_json::Value,
) -> Result<ToolOutput, WitError> {
    match tool {
        LIST_TOOL => {
            sweep(runs);
            let sessions = list(runs);
            let structured = json!({ "sessions": sessions });
            let text = if sessions.is_empty() {
                "no sessions".to_string()
            } else {
                sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({}), last used {}s ago",
                            s.name,
                            s.language,
                            now().saturating_sub(s.last_used)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(ToolOutput {
                content: vec![Content::Text(text)],
                structured: Some(structured.to_string()),
                is_error: false,
            })
        }
        _ => {
            let name = arguments
                .get("session")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            stop(runs, name).await?;
            Ok(ToolOutput {
                content: vec![Content::Text(format!("session `{name}` stopped"))],
                structured: None,
                is_error: false,
            })
        }
    }
}

/// The session tools, served while any runner is loaded.
pub struct SessionTools {
    runs: Arc<RunServices>,
}

impl SessionTools {
    /// Tools over the sessions of `runs`.
    pub fn new(runs: Arc<RunServices>) -> Self {
        Self { runs }
    }
}

impl HostToolSet for SessionTools {
    fn name(&self) -> &'static str {
        "sessions"
    }

    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool> {
        let needed = plugins.iter().any(|p| p.world == World::Runner);
        needed.then(tools).unwrap_or_default()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: serde_json::Value,
        _registry: Arc<Registry>,
        _sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>> {
        Box::pin(async move {
            call(&self.runs, tool, &arguments)
                .await
                .map_err(CallError::Plugin)
        })
    }
}
