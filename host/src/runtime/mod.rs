//! Loading and calling plugins: the engine and compile cache, the loader,
//! per-plugin handles with their limits, and the registry of served tools
//! (the plugins' own and the host's tool sets).

pub mod bundled;
pub mod cache;
pub mod engine;
pub mod filter;
pub mod host_tool;
pub mod limits;
pub mod loader;
pub mod manifest;
pub mod pin;
pub mod plugin;
pub mod registry;
pub mod world;
