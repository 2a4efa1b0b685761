//! The vocabulary every layer shares: the generated WIT bindings, how a
//! call fails, and where a call's logs, progress and questions go.

pub mod bindings;
pub mod error;
pub mod sink;
