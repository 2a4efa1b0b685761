//! The MCP surface: the server handler, conversions, and the transports.

pub mod call;
pub mod convert;
pub mod handler;
pub mod transport;
