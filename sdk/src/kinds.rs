//! One trait per plugin world. Implement the one for your plugin's kind and
//! register it with the matching `export_*!` macro.

use crate::{
    Error, ExecRequest, ProcessOutput, Result, RunPlan, RunnerInfo, SandboxSpec, Snippet,
    StdioLink, TemplateInfo, Toolbox, Workload, WorkloadStatus,
};

/// Every plugin: a description and its own tools. Both have defaults, so a
/// runner, backend or template plugin may implement this trait empty.
///
/// ```
/// struct Quiet;
/// impl berth_sdk::Plugin for Quiet {}
/// assert!(<Quiet as berth_sdk::Plugin>::toolbox().list().is_empty());
/// ```
pub trait Plugin {
    /// One line describing the plugin, shown by `berth plugins list`.
    fn description() -> String {
        String::new()
    }

    /// The plugin's tools and their handlers.
    fn toolbox() -> Toolbox {
        Toolbox::new()
    }
}

/// A language runner. The host generates `run_<language>` and executes the
/// plans this trait returns, locally, under mirrord or in a sandbox.
///
/// ```no_run
/// use berth_sdk::{Command, RunPlan, Plugin, Runner, RunnerInfo, Snippet, File};
/// struct Shell;
/// impl Plugin for Shell {}
/// impl Runner for Shell {
///     fn info() -> RunnerInfo {
///         RunnerInfo::new("shell", Command::new("sh").args(["-c", "echo posix-sh"]))
///             .alias("sh")
///             .program("sh")
///     }
///     fn plan(snippet: Snippet) -> berth_sdk::Result<RunPlan> {
///         Ok(RunPlan::new(Command::new("sh").arg("main.sh").args(snippet.args))
///             .file(File::new("main.sh", snippet.code)))
///     }
/// }
/// berth_sdk::export_runner!(Shell);
/// ```
pub trait Runner: Plugin {
    /// The language and the programs its plans use.
    fn info() -> RunnerInfo;

    /// Turn a snippet into a plan. Validate every dependency spec here and
    /// return [`Error::InvalidInput`] naming any bad one.
    fn plan(snippet: Snippet) -> Result<RunPlan>;
}

/// A sandbox backend. Every method defaults to [`Error::Unavailable`], so a
/// backend implements only what its platform supports.
///
/// ```no_run
/// struct Nowhere;
/// impl berth_sdk::Plugin for Nowhere {}
/// impl berth_sdk::Backend for Nowhere {}
/// berth_sdk::export_backend!(Nowhere);
/// ```
pub trait Backend: Plugin {
    /// Create a sandbox; returns its id.
    fn create_sandbox(spec: SandboxSpec) -> Result<String> {
        let _ = spec;
        Err(unsupported("sandboxes"))
    }

    /// Write the request's files into a sandbox's workspace, then run its
    /// command there.
    fn exec(id: String, request: ExecRequest) -> Result<ProcessOutput> {
        let _ = (id, request);
        Err(unsupported("sandboxes"))
    }

    /// Destroy a sandbox.
    fn destroy_sandbox(id: String) -> Result<()> {
        let _ = id;
        Err(unsupported("sandboxes"))
    }

    /// Remove what outlived its TTL; with `all_sandboxes`, every sandbox
    /// (the host passes it at start, when none of its runs can be using
    /// one). Returns how many were removed.
    fn reap(all_sandboxes: bool) -> Result<u32> {
        let _ = all_sandboxes;
        Err(unsupported("reaping"))
    }

    /// Deploy a long-running workload.
    fn deploy(workload: Workload) -> Result<WorkloadStatus> {
        let _ = workload;
        Err(unsupported("workloads"))
    }

    /// Status of a workload.
    fn status(name: String) -> Result<WorkloadStatus> {
        let _ = name;
        Err(unsupported("workloads"))
    }

    /// The last `tail` lines of a workload's logs.
    fn logs(name: String, tail: Option<u32>) -> Result<String> {
        let _ = (name, tail);
        Err(unsupported("workloads"))
    }

    /// Stop and remove a workload.
    fn stop(name: String) -> Result<()> {
        let _ = name;
        Err(unsupported("workloads"))
    }

    /// Every workload this backend runs for berth.
    fn list() -> Result<Vec<WorkloadStatus>> {
        Err(unsupported("workloads"))
    }

    /// How the host reaches the stdio of MCP server workload `name`
    /// (running, and this deployment's); `unavailable` while it is not
    /// running.
    fn attach(name: String) -> Result<StdioLink> {
        let _ = name;
        Err(unsupported("attaching to workloads"))
    }
}

/// A template plugin: named, parameterised workloads.
///
/// ```no_run
/// use berth_sdk::{Template, TemplateInfo, Workload, Plugin};
/// struct Nginx;
/// impl Plugin for Nginx {}
/// impl Template for Nginx {
///     fn templates() -> Vec<TemplateInfo> { vec![] }
///     fn render(name: String, _params: serde_json::Value) -> berth_sdk::Result<Workload> {
///         Err(berth_sdk::Error::not_found(format!("template `{name}`")))
///     }
/// }
/// berth_sdk::export_template!(Nginx);
/// ```
pub trait Template: Plugin {
    /// Every template this plugin offers.
    fn templates() -> Vec<TemplateInfo>;

    /// Render template `name` with validated parameters.
    fn render(name: String, params: serde_json::Value) -> Result<Workload>;
}

fn unsupported(what: &str) -> Error {
    Error::unavailable(format!("this backend does not support {what}"))
}
