//! The MCP surface: the server handler, calls parked for an answer,
//! conversions, the converted tool list, and the transports.

pub mod call;
pub mod convert;
pub mod handler;
pub mod http;
pub mod pending;
pub mod stdio;
pub mod tools;
pub mod transport;
