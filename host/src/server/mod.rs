//! The MCP surface: the server handler, calls parked for an answer,
//! conversions, and the transports.

pub mod call;
pub mod convert;
pub mod handler;
pub mod http;
pub mod pending;
pub mod stdio;
pub mod transport;
