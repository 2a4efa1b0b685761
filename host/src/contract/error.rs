//! How a call fails: the plugin's own `error` values and the host's
//! reasons for stopping it, each with a category and a hint for clients.

use crate::contract::bindings::types::Error as WitError;

/// How a plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The plugin returned an expected error.
    #[error("{}", plugin_error_message(.0))]
    Plugin(WitError),
    /// The call ran past its wall-clock limit.
    #[error("plugin `{plugin}` did not finish within {limit_ms} ms and was stopped")]
    Timeout {
        /// Plugin.
        plugin: String,
        /// The limit.
        limit_ms: u64,
    },
    /// The call spent more CPU time in wasm than allowed.
    #[error("plugin `{plugin}` used more than its CPU limit of {limit_ms} ms and was stopped")]
    CpuLimit {
        /// Plugin.
        plugin: String,
        /// The limit.
        limit_ms: u64,
    },
    /// The call tried to use more memory than allowed.
    #[error("plugin `{plugin}` exceeded its memory limit of {limit_mib} MiB and was stopped")]
    MemoryLimit {
        /// Plugin.
        plugin: String,
        /// The limit.
        limit_mib: u32,
    },
    /// The plugin trapped (a panic, an abort, an invalid operation).
    #[error("plugin `{plugin}` crashed: {reason}")]
    Crashed {
        /// Plugin.
        plugin: String,
        /// The trap, as wasmtime describes it.
        reason: String,
    },
    /// The plugin returned more output than allowed.
    #[error(
        "plugin `{plugin}` returned {size} bytes of output, more than its limit of {limit} bytes"
    )]
    OutputTooLarge {
        /// Plugin.
        plugin: String,
        /// What it returned.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The host could not run the call (instantiation, pool exhausted, ...).
    #[error("plugin `{plugin}` could not be run: {reason}")]
    Host {
        /// Plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
}

fn plugin_error_message(err: &WitError) -> String {
    let (kind, message) = describe_wit_error(err);
    format!("{kind}: {message}")
}

/// A WIT error's category name and message.
pub fn describe_wit_error(err: &WitError) -> (&'static str, &str) {
    match err {
        WitError::InvalidInput(m) => ("invalid-input", m),
        WitError::NotFound(m) => ("not-found", m),
        WitError::Denied(m) => ("denied", m),
        WitError::Timeout(m) => ("timeout", m),
        WitError::Unavailable(m) => ("unavailable", m),
        WitError::Failed(m) => ("failed", m),
    }
}

impl CallError {
    /// What went wrong, without the category (a plugin's own message as it
    /// gave it; the host's reason otherwise).
    pub fn message(&self) -> String {
        match self {
            CallError::Plugin(inner) => describe_wit_error(inner).1.to_string(),
            other => other.to_string(),
        }
    }

    /// A short category for clients, metrics and the audit log.
    pub fn category(&self) -> &'static str {
        match self {
            CallError::Plugin(err) => describe_wit_error(err).0,
            CallError::Timeout { .. } => "timeout",
            CallError::CpuLimit { .. } => "cpu-limit",
            CallError::MemoryLimit { .. } => "memory-limit",
            CallError::Crashed { .. } => "crashed",
            CallError::OutputTooLarge { .. } => "output-too-large",
            CallError::Host { .. } => "host-error",
        }
    }

    /// What the caller could do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            CallError::Plugin(WitError::InvalidInput(_)) => {
                "Fix the named argument and call again."
            }
            CallError::Plugin(WitError::NotFound(_)) => "Check the name; list what exists first.",
            CallError::Plugin(WitError::Denied(_)) => {
                "The operator must grant this capability in berth.toml; retrying will not help."
            }
            CallError::Plugin(WitError::Timeout(_)) | CallError::Timeout { .. } => {
                "Retry with less work, or ask the operator to raise the plugin's timeout_ms."
            }
            CallError::Plugin(WitError::Unavailable(_)) => {
                "A system the tool needs is missing; install or start it."
            }
            CallError::Plugin(WitError::Failed(_)) => {
                "Read the message; retrying may help if the cause was transient."
            }
            CallError::CpuLimit { .. } => {
                "The plugin ran too long; retry with less work or raise cpu_ms."
            }
            CallError::MemoryLimit { .. } => {
                "The plugin needed too much memory; retry with less data or raise memory_mib."
            }
            CallError::Crashed { .. } => {
                "The plugin has a bug; report it to its authors. Other tools are unaffected."
            }
            CallError::OutputTooLarge { .. } => {
                "Ask for less output, or raise the plugin's max_output_bytes."
            }
            CallError::Host { .. } => "Check berth's log on stderr for the cause.",
        }
    }
}
