//! Plugins embedded in the binary by the build script.

/// One embedded plugin.
pub struct Bundled {
    /// Its `plugin.toml`.
    pub manifest: &'static str,
    /// Its component.
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
