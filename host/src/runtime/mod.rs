//! Loading and calling plugins.

pub mod bindings;
pub mod bundled;
pub mod engine;
pub mod limits;
pub mod loader;
pub mod manifest;
pub mod plugin;
pub mod plugin_host;
pub mod registry;
pub mod world;
