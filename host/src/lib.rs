//! berth: an MCP server whose tools come from WebAssembly component plugins.
//!
//! The crate is layered; each layer uses only the layers listed before it
//! (`tests/layers.rs` checks this):
//!
//! - [`contract`]: the WIT bindings, the call error vocabulary, the call sink.
//! - [`sys`]: effects with no plugin types: processes, cgroups, workspaces,
//!   fork servers, the kube and mirrord engines.
//! - [`state`]: the embedded database.
//! - [`capabilities`]: the host functions offered to plugins, each behind
//!   its grant check.
//! - [`runtime`]: engine, compile cache, loader, plugin handles, registry.
//! - [`runs`]: executing runner plans locally, under mirrord or in sandboxes.
//! - [`host_tools`]: the tool sets the host composes over loaded plugins.
//! - [`gateway`]: upstream MCP servers whose tools berth serves as its own.
//! - [`app`]: the composition root: configuration, the plugin host, metrics.
//! - [`server`] and [`cli`]: the MCP transports and the command line.

pub mod app;
pub mod capabilities;
pub mod cli;
pub mod contract;
pub mod gateway;
pub mod host_tools;
pub mod runs;
pub mod runtime;
pub mod server;
pub mod state;
pub mod sys;
