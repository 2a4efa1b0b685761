//! Loading and calling plugins.

pub mod bindings;
pub mod engine;
pub mod limits;
pub mod manifest;
pub mod plugin;
pub mod world;
pub mod bundled;
pub mod loader;
pub mod registry;
pub mod plugin_host;
