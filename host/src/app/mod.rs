//! The composition root: the configuration file, the plugin host that wires
//! every layer together (reload, validated and audited calls), and metrics.

pub mod config;
pub mod host;
pub mod metrics;
#[cfg(test)]
pub mod testing;
