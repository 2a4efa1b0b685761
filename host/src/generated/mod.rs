//! Tools the host composes on top of what plugins declare: `run_<language>`
//! for every runner, and the session tools that go with them.

pub mod run;
pub mod sessions;

/// Where a served tool's calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSource {
    /// The plugin's own `call-tool`.
    Plugin,
    /// `run_<language>` of a runner plugin.
    Run,
    /// `list_sessions` or `stop_session`.
    Sessions,
}
