//! The vocabulary every layer shares: the generated WIT bindings, how a
//! call fails, and where a call's logs, progress and questions go.
//!
//! Each released contract version has its bindings in a module of its own
//! (`since_v0_1_0` for `wit/since_v0.1.0/`). The rest of the host uses
//! [`bindings`], the newest version; a plugin built against an older one is
//! adapted to it where its handle is made, so nothing else knows versions.

pub mod error;
pub mod since_v0_1_0;
pub mod sink;

pub use since_v0_1_0 as bindings;
