//! Template tools: list the templates of every template plugin, deploy one
//! on a backend, and follow or stop what was deployed. The template plugin
//! renders a backend-neutral workload; the backend runs it.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::contract::bindings::shared::berth::plugin::workload_types::{
    McpTransport, TemplateInfo, WorkloadStatus,
};
use crate::contract::bindings::types::{Content, Error as WitError, Tool, ToolHints, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::host_tool::{HostToolSet, host_tool as tool};
use crate::runtime::plugin::{Plugin, Templates};
use crate::runtime::registry::Registry;
use crate::runtime::world::World;
use crate::state::secrets::{SecretError, SecretStore};
use futures::future::BoxFuture;

/// Connects a deployed MCP-server workload as an upstream server, so its
/// tools join berth's (the gateway, a layer above, implements it).
pub trait Attacher: Send + Sync {
    /// Whether `server` is a name a new attachment may take, checked before
    /// anything is deployed.
    fn check(&self, server: &str) -> Result<(), WitError>;

    /// Remember that `workload` of `backend` was given `secrets` (names),
    /// so attaching it later still redacts them.
    fn gave(&self, backend: &str, workload: &str, secrets: Vec<String>);

    /// Attach `workload` of `backend` as server `server`, over its stdio
    /// (`stdio`) or streamable HTTP; the values of the secrets named in
    /// `redact` (given to the workload) are kept out of what it sends back.
    fn attach(
        &self,
        server: &str,
        backend: &str,
        workload: &str,
        stdio: bool,
        redact: Vec<String>,
    ) -> Result<(), WitError>;
}

/// `list_templates`.
pub const LIST_TOOL: &str = "list_templates";
/// `deploy_template`.
pub const DEPLOY_TOOL: &str = "deploy_template";
/// `template_status`.
pub const STATUS_TOOL: &str = "template_status";
/// `stop_template`.
pub const STOP_TOOL: &str = "stop_template";

/// Arguments naming a deployed workload.
fn workload_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "backend": {"type": "string", "description": "The backend the workload runs on, e.g. `podman` or `k8s`."},
            "name": {"type": "string", "description": "The workload's name, a DNS label."}
        },
        "required": ["backend", "name"],
        "additionalProperties": false
    })
}

/// The template tools.
pub fn tools() -> Vec<Tool> {
    vec![
        tool(
            LIST_TOOL,
            "List templates",
            "Every server template berth can deploy: services (nginx, echo, a FastAPI app, your own TOML templates) and MCP servers (npx or uvx packages), each with its parameters' JSON Schema.",
            json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ToolHints::READ_ONLY | ToolHints::IDEMPOTENT,
        ),
        tool(
            DEPLOY_TOOL,
            "Deploy a template",
            "Render a template with parameters and start it on a backend. Returns the workload's status, with the loopback endpoints it can be reached at.",
            json!({
                "type": "object",
                "properties": {
                    "template": {"type": "string", "description": "Template name, as list_templates shows it."},
                    "backend": {"type": "string", "description": "The backend to run it on, e.g. `podman` or `k8s`."},
                    "name": {"type": "string", "description": "The workload's name, a DNS label; the template's own when absent."},
                    "params": {"type": "object", "description": "Parameters, matching the template's params schema."},
                    "attach": {"type": "boolean", "default": false, "description": "For an MCP-server template: connect to it once it runs, so its tools join this server's as SERVER__tool."},
                    "server": {"type": "string", "description": "With attach: the server name its tools are prefixed with (default: the workload's name)."}
                },
                "required": ["template", "backend"],
                "additionalProperties": false
            }),
            ToolHints::OPEN_WORLD,
        ),
        tool(
            STATUS_TOOL,
            "Template status",
            "Phase and endpoints of a workload started from a template.",
            workload_schema(),
            ToolHints::READ_ONLY | ToolHints::IDEMPOTENT,
        ),
        tool(
            STOP_TOOL,
            "Stop a template",
            "Stop and remove a workload started from a template.",
            workload_schema(),
            ToolHints::DESTRUCTIVE | ToolHints::IDEMPOTENT,
        ),
    ]
}

fn text_arg<'a>(arguments: &'a Value, key: &str) -> &'a str {
    arguments
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Every template, with the plugin offering it.
async fn all_templates(registry: &Registry) -> Result<Vec<(Templates, TemplateInfo)>, CallError> {
    let mut all = Vec::new();
    for plugin in registry.plugins().filter_map(|p| p.templates()) {
        for info in plugin.list().await? {
            all.push((plugin.clone(), info));
        }
    }
    Ok(all)
}

fn status_output(status: &WorkloadStatus, extra: Value) -> ToolOutput {
    let mut structured = json!({
        "name": status.name,
        "id": status.id,
        "phase": status.phase,
        "endpoints": status.endpoints,
        "message": status.message,
    });
    if let (Some(map), Value::Object(more)) = (structured.as_object_mut(), extra) {
        map.extend(more);
    }
    let endpoints = if status.endpoints.is_empty() {
        "no endpoints".to_string()
    } else {
        status.endpoints.join(", ")
    };
    ToolOutput {
        content: vec![Content::Text(format!(
            "{} is {} ({endpoints})",
            status.name, status.phase
        ))],
        structured: Some(structured.to_string()),
        is_error: false,
    }
}

/// Check `params` against a template's params schema.
fn check_params(info: &TemplateInfo, params: &Value) -> Result<(), WitError> {
    let schema: Value = serde_json::from_str(&info.params_schema).map_err(|e| {
        WitError::Failed(format!(
            "template `{}` has a params schema that is not JSON: {e}",
            info.name
        ))
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        WitError::Failed(format!(
            "template `{}` has an invalid params schema: {e}",
            info.name
        ))
    })?;
    let problems: Vec<String> = validator
        .iter_errors(params)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(WitError::InvalidInput(format!(
            "params of template `{}`: {}",
            info.name,
            problems.join("; ")
        )))
    }
}

/// Serve one of the template tools.
async fn call(
    registry: &Registry,
    attacher: Option<&dyn Attacher>,
    secrets: &SecretStore,
    tool: &str,
    arguments: &Value,
    sink: Arc<dyn CallSink>,
) -> Result<ToolOutput, CallError> {
    match tool {
        LIST_TOOL => {
            let all = all_templates(registry).await?;
            let listed: Vec<Value> = all
                .iter()
                .map(|(plugin, info)| {
                    json!({
                        "name": info.name,
                        "plugin": plugin.name(),
                        "description": info.description,
                        "is_mcp_server": info.is_mcp_server,
                        "params_schema": serde_json::from_str::<Value>(&info.params_schema).unwrap_or(Value::Null),
                    })
                })
                .collect();
            let text = all
                .iter()
                .map(|(_, info)| format!("{}: {}", info.name, info.description))
                .collect::<Vec<_>>()
                .join("\n");
            Ok(ToolOutput {
                content: vec![Content::Text(if text.is_empty() {
                    "no templates".into()
                } else {
                    text
                })],
                structured: Some(json!({ "templates": listed }).to_string()),
                is_error: false,
            })
        }
        DEPLOY_TOOL => {
            let wanted = text_arg(arguments, "template");
            let backend = registry
                .backend(text_arg(arguments, "backend"))
                .map_err(CallError::Plugin)?;
            let all = all_templates(registry).await?;
            let (plugin, info) = all
                .iter()
                .find(|(_, info)| info.name == wanted)
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|(_, i)| i.name.as_str()).collect();
                    CallError::Plugin(WitError::NotFound(format!(
                        "template `{wanted}`; available: {}",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    )))
                })?;
            let params = arguments
                .get("params")
                .cloned()
                .unwrap_or_else(|| json!({}));
            check_params(info, &params).map_err(CallError::Plugin)?;
            let mut workload = plugin
                .render(&info.name, &params.to_string(), sink.clone())
                .await?;
            if let Some(name) = arguments.get("name").and_then(Value::as_str) {
                crate::sys::kube::names::check_label("workload name", name)
                    .map_err(|e| CallError::Plugin(WitError::InvalidInput(e)))?;
                workload.name = name.to_string();
            }
            // Secrets the template named are resolved here, on their way
            // to the backend, and only those the operator lets templates use.
            let mut given = Vec::new();
            let mut lookup = secrets.lookup();
            for (_, value) in workload.env.iter_mut() {
                let (expanded, used) = lookup.expand_for_template(value).map_err(|e| {
                    CallError::Plugin(match e {
                        SecretError::NotForTemplates(_) => WitError::Denied(e.to_string()),
                        other => {
                            WitError::InvalidInput(format!("template `{}`: {other}", info.name))
                        }
                    })
                })?;
                *value = expanded;
                given.extend(used.iter().map(|s| s.name().to_string()));
            }
            workload
                .labels
                .push(("berth-template".into(), info.name.clone()));
            let transport = workload.mcp.map(|t| match t {
                McpTransport::Stdio => "stdio",
                McpTransport::Http => "http",
            });
            let attach = arguments.get("attach").and_then(Value::as_bool) == Some(true);
            let server = arguments
                .get("server")
                .and_then(Value::as_str)
                .unwrap_or(&workload.name)
                .to_string();
            let remember = attacher;
            let attacher = match (attach, attacher, transport) {
                (false, _, _) => None,
                (true, Some(attacher), Some(_)) => {
                    attacher.check(&server).map_err(CallError::Plugin)?;
                    Some(attacher)
                }
                (true, None, _) => {
                    return Err(CallError::Plugin(WitError::Unavailable(
                        "this berth cannot attach MCP servers".into(),
                    )));
                }
                (true, _, None) => {
                    return Err(CallError::Plugin(WitError::InvalidInput(format!(
                        "template `{}` is not an MCP server; attach needs one",
                        info.name
                    ))));
                }
            };
            let status = backend.workload_deploy(&workload, sink).await?;
            if let Some(gateway) = remember {
                gateway.gave(backend.name(), &workload.name, given.clone());
            }
            let attached = attacher.map(|attacher| {
                attacher.attach(
                    &server,
                    backend.name(),
                    &workload.name,
                    transport == Some("stdio"),
                    given,
                )
            });
            let mut output = status_output(
                &status,
                json!({"template": info.name, "backend": backend.name(), "mcp_transport": transport,
                       "server": attach.then_some(&server)}),
            );
            // The workload runs either way: say so rather than hide it
            // behind an error.
            if let Some(Err(err)) = attached {
                let message = CallError::Plugin(err).message();
                output.is_error = true;
                output.content.push(Content::Text(format!(
                    "deployed, but not attached: {message}; attach it with attach_server or stop it with stop_template"
                )));
            }
            Ok(output)
        }
        STATUS_TOOL => {
            let backend = registry
                .backend(text_arg(arguments, "backend"))
                .map_err(CallError::Plugin)?;
            let status = backend
                .workload_status(text_arg(arguments, "name"), sink)
                .await?;
            Ok(status_output(&status, json!({"backend": backend.name()})))
        }
        STOP_TOOL => {
            let backend = registry
                .backend(text_arg(arguments, "backend"))
                .map_err(CallError::Plugin)?;
            let name = text_arg(arguments, "name");
            backend.workload_stop(name, sink).await?;
            Ok(ToolOutput {
                content: vec![Content::Text(format!(
                    "workload `{name}` stopped and removed from {}",
                    backend.name()
                ))],
                structured: Some(json!({"name": name, "stopped": true}).to_string()),
                is_error: false,
            })
        }
        other => Err(CallError::Plugin(WitError::NotFound(format!(
            "tool `{other}`"
        )))),
    }
}

/// The template tools, served while any template plugin is loaded.
pub struct TemplateTools {
    attacher: Option<Arc<dyn Attacher>>,
    secrets: SecretStore,
}

impl TemplateTools {
    /// The template tools; `attacher` serves `deploy_template`'s `attach`,
    /// `secrets` resolves the secrets templates name.
    pub fn new(attacher: Option<Arc<dyn Attacher>>, secrets: SecretStore) -> Self {
        Self { attacher, secrets }
    }
}

impl HostToolSet for TemplateTools {
    fn name(&self) -> &'static str {
        "templates"
    }

    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool> {
        let needed = plugins.iter().any(|p| p.world == World::Template);
        needed.then(tools).unwrap_or_default()
    }

    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Value,
        registry: Arc<Registry>,
        sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>> {
        Box::pin(async move {
            call(
                &registry,
                self.attacher.as_deref(),
                &self.secrets,
                tool,
                &arguments,
                sink,
            )
            .await
        })
    }
}
