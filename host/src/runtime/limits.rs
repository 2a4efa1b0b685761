//! `[limits]` and `[plugin_limits.NAME]`: what one plugin call may use.

use serde::Deserialize;

/// Limits applied to each plugin call.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory per instance, MiB.
    pub memory_mib: u32,
    /// CPU time a call may spend executing wasm, milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time a call may take, including host functions, ms.
    pub timeout_ms: u64,
    /// Calls of one plugin that may run at once; more wait their turn.
    pub max_concurrent: u32,
    /// Largest tool output a plugin may return, bytes.
    pub max_output_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mib: 128,
            cpu_ms: 10_000,
            timeout_ms: 120_000,
            max_concurrent: 16,
            max_output_bytes: 4 << 20,
        }
    }
}

/// Per-plugin overrides of [`LimitsConfig`]; absent fields keep the default.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`LimitsConfig::memory_mib`].
    pub memory_mib: Option<u32>,
    /// See [`LimitsConfig::cpu_ms`].
    pub cpu_ms: Option<u64>,
    /// See [`LimitsConfig::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`LimitsConfig::max_concurrent`].
    pub max_concurrent: Option<u32>,
    /// See [`LimitsConfig::max_output_bytes`].
    pub max_output_bytes: Option<u64>,
}
