//! Tools the host composes on top of what plugins declare: `run_<language>`
//! for every runner, the session tools that go with them, the kept-sandbox
//! tools when a backend is loaded, and the template tools when a template
//! plugin is loaded.

pub mod run;
pub mod sandboxes;
pub mod sessions;
pub mod templates;

/// Where a served tool's calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSource {
    /// The plugin's own `call-tool`.
    Plugin,
    /// `run_<language>` of a runner plugin.
    Run,
    /// `list_sessions` or `stop_session`.
    Sessions,
    /// `create_sandbox`, `list_sandboxes` or `destroy_sandbox`.
    Sandboxes,
    /// `list_templates`, `deploy_template`, `template_status` or
    /// `stop_template`.
    Templates,
}
