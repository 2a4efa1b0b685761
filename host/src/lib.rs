//! berth: an MCP server whose tools come from WebAssembly component plugins.
//!
//! The host loads plugins ([`runtime`]), grants each one only the host
//! functions its policy allows ([`capabilities`]), keeps their state
//! ([`state`]) and serves their combined tools over MCP ([`mcp`]).

pub mod capabilities;
pub mod cli;
pub mod config;
pub mod exec;
pub mod generated;
pub mod kube;
pub mod mcp;
pub mod metrics;
pub mod runtime;
pub mod state;
