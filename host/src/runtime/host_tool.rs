//! The trait every tool set the host composes implements. The registry
//! serves a set's tools next to the plugins' own and routes their calls
//! back to it; it never needs to know which sets exist.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::contract::bindings::types::{Tool, ToolHints, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::plugin::Plugin;
use crate::runtime::registry::Registry;

/// A tool set the host serves itself, over the plugins that are loaded
/// (`run_<language>` over runners, the sandbox tools over backends, ...).
/// It owns whatever state its tools keep.
pub trait HostToolSet: Send + Sync {
    /// A short name for load reports and owners (`host:NAME`).
    fn name(&self) -> &'static str;

    /// The tools to serve while `plugins` are loaded; none when what the
    /// set works on is absent.
    fn tools(&self, plugins: &[Arc<Plugin>]) -> Vec<Tool>;

    /// Serve one call of a tool from [`HostToolSet::tools`], whose
    /// arguments already passed its input schema. `registry` is the one
    /// the call started with.
    fn call<'a>(
        &'a self,
        tool: &'a str,
        arguments: Value,
        registry: Arc<Registry>,
        sink: Arc<dyn CallSink>,
    ) -> BoxFuture<'a, Result<ToolOutput, CallError>>;
}

/// A host tool's description: no output schema, the input schema given as
/// JSON.
pub fn host_tool(
    name: &str,
    title: &str,
    description: &str,
    input_schema: Value,
    hints: ToolHints,
) -> Tool {
    Tool {
        name: name.into(),
        title: Some(title.into()),
        description: description.into(),
        input_schema: input_schema.to_string(),
        output_schema: None,
        hints,
    }
}
