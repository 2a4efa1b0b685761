//! # berth-sdk
//!
//! Write plugins for [berth](https://github.com/berth-mcp/berth), the MCP
//! server whose tools come from WebAssembly components. A plugin is a Rust
//! crate built for `wasm32-wasip2` that implements one of four traits and
//! registers it with the matching macro:
//!
//! | kind | trait | macro | what the host does with it |
//! |---|---|---|---|
//! | tools | [`Plugin`] | [`export_tools!`] | serves its tools over MCP |
//! | runner | [`Runner`] | [`export_runner!`] | generates `run_<language>` and executes its plans |
//! | backend | [`Backend`] | [`export_backend!`] | runs plans in its sandboxes and deploys workloads |
//! | template | [`Template`] | [`export_template!`] | renders templates into workloads |
//!
//! ```no_run
//! use berth_sdk::{Plugin, Toolbox, ToolSpec, ToolOutput, Error};
//! use serde::Deserialize;
//! use schemars::JsonSchema;
//!
//! /// Arguments of `greet`.
//! #[derive(Deserialize, JsonSchema)]
//! struct GreetArgs {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! struct Greeter;
//!
//! impl Plugin for Greeter {
//!     fn description() -> String {
//!         "Greets people".into()
//!     }
//!     fn toolbox() -> Toolbox {
//!         Toolbox::new().tool(ToolSpec::new("greet", "Say hello").read_only(), |args: GreetArgs| {
//!             Ok(ToolOutput::text(format!("Hello, {}!", args.name)))
//!         })
//!     }
//! }
//!
//! berth_sdk::export_tools!(Greeter);
//! ```
//!
//! Host functions ([`log`], [`progress`], [`state`], [`process`], [`http`],
//! [`elicit`]) work only when the plugin's policy grants them; otherwise they
//! return [`Error::Denied`].

mod builders;
pub mod checks;
mod dependencies;
mod error;
mod export;
pub mod host;
pub mod http;
mod kinds;
mod tool;
pub mod workloads;

pub use dependencies::{MAX_DEPENDENCIES, check_dependency_count, check_dependency_spec};
pub use error::Result;
pub use host::{
    cancelled, config, elicit, elicit_as, instance, kube, log, mirrord, process, progress,
    settings, state,
};
pub use kinds::{Backend, Plugin, Runner, Template};
pub use tool::{ToolSpec, Toolbox};

/// The shapes of the plugin contract (`berth:plugin/types`): errors, tools,
/// content, files and commands.
pub use bindings::berth::plugin::types::{
    Command, Content, EmbeddedResource, Error, File, Media, PluginInfo, ProcessOutput,
    ResourceBody, ResourceLink, Tool, ToolHints, ToolOutput,
};

/// The records a runner exchanges with the host (`berth:plugin/runner-types`).
pub use bindings::berth::plugin::runner_types::{Environment, RunPlan, RunnerInfo, Snippet};

/// Workloads, sandboxes and templates (`berth:plugin/workload-types`).
pub use bindings::berth::plugin::workload_types::{
    ExecRequest, HealthCheck, McpTransport, Mount, Port, Resources, SandboxSpec, StdioLink,
    TemplateInfo, Workload, WorkloadStatus,
};

/// Log severities for [`log`].
pub use bindings::berth::plugin::context::{ElicitAnswer, LogLevel};

#[doc(hidden)]
pub mod bindings {
    berth_sdk_macros::sdk_bindings!();
}

/// Implementation details of the export macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings;
    pub use crate::export::*;
    pub use berth_sdk_macros::export_world;
    pub use wit_bindgen;
}
