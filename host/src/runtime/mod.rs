//! Loading and calling plugins.

pub mod bindings;
