//! One trait per plugin world. Implement the one for your plugin's kind and
//! register it with the matching `export_*!` macro.

use crate::{
    Command, Environment, Error, ExecRequest, File, ProcessOutput, Result, RunPlan, RunnerInfo,
    SandboxSpec, Snippet, TemplateInfo, Toolbox, Workload, WorkloadStatus,
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
///         RunnerInfo {
///             language: "shell".into(),
///             aliases: vec!["sh".into()],
///             programs: vec!["sh".into()],
///             toolchain_probe: Command::new("sh").arg("-c").arg("echo posix-sh"),
///         }
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

impl Command {
    /// A command running `program` with no arguments.
    ///
    /// ```
    /// let cmd = berth_sdk::Command::new("python3").arg("-V");
    /// assert_eq!(cmd.args, ["-V"]);
    /// ```
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Append one argument.
    ///
    /// ```
    /// let cmd = berth_sdk::Command::new("echo").arg("hi");
    /// ```
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Append several arguments.
    ///
    /// ```
    /// let cmd = berth_sdk::Command::new("echo").args(["a", "b"]);
    /// assert_eq!(cmd.args.len(), 2);
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set one environment variable.
    ///
    /// ```
    /// let cmd = berth_sdk::Command::new("node").env("NODE_ENV", "production");
    /// ```
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Run in a subdirectory of the workspace.
    ///
    /// ```
    /// let cmd = berth_sdk::Command::new("cargo").arg("build").cwd("app");
    /// ```
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }
}

impl RunPlan {
    /// A plan that writes no files, needs no environment and builds
    /// nothing: it only runs `run`. Add the rest with the methods below.
    ///
    /// ```
    /// use berth_sdk::{Command, File, RunPlan};
    /// let plan = RunPlan::new(Command::new("sh").arg("main.sh"))
    ///     .file(File::new("main.sh", "echo hi"));
    /// assert_eq!(plan.files.len(), 1);
    /// assert!(plan.environment.is_none() && plan.fork_server.is_none());
    /// ```
    pub fn new(run: Command) -> Self {
        Self {
            files: Vec::new(),
            environment: None,
            build: Vec::new(),
            run,
            fork_server: None,
        }
    }

    /// Write one more file into the workspace.
    pub fn file(mut self, file: File) -> Self {
        self.files.push(file);
        self
    }

    /// Prepare (or reuse) a cached environment: `key` names the
    /// normalised dependency set and `setup` builds it once per key.
    ///
    /// ```
    /// use berth_sdk::{Command, RunPlan};
    /// let plan = RunPlan::new(Command::new("{env}/bin/tool"))
    ///     .environment("dep==1", vec![Command::new("installer").arg("{env}")]);
    /// assert_eq!(plan.environment.unwrap().key, "dep==1");
    /// ```
    pub fn environment(mut self, key: impl Into<String>, setup: Vec<Command>) -> Self {
        self.environment = Some(Environment {
            key: key.into(),
            setup,
        });
        self
    }

    /// Run one more build step before the program.
    pub fn build_step(mut self, step: Command) -> Self {
        self.build.push(step);
        self
    }

    /// Offer a fork server that starts the run step faster; see the
    /// `fork-server` field of `run-plan` in the WIT for its protocol.
    pub fn fork_server(mut self, server: Command) -> Self {
        self.fork_server = Some(server);
        self
    }
}

impl File {
    /// A regular file at `path` (relative to the workspace).
    ///
    /// ```
    /// let file = berth_sdk::File::new("main.py", "print(1)");
    /// assert!(!file.executable);
    /// ```
    pub fn new(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into(),
            executable: false,
        }
    }
}

/// Most dependencies a plan accepts; more is refused as absurd.
pub const MAX_DEPENDENCIES: usize = 128;

/// Common checks for one dependency spec before a runner parses it: not
/// empty, at most 256 bytes, not an option (`-e`, `--index-url`), and made
/// only of characters `allowed` accepts. The error names the spec and the
/// first bad character.
///
/// ```
/// let ok = berth_sdk::check_dependency_spec("requests>=2", |c| c.is_ascii_alphanumeric() || "<>=.".contains(c));
/// assert!(ok.is_ok());
/// let err = berth_sdk::check_dependency_spec("--index-url", |c| c.is_ascii_alphanumeric()).unwrap_err();
/// assert!(err.message().contains("--index-url"));
/// ```
pub fn check_dependency_spec(spec: &str, allowed: impl Fn(char) -> bool) -> Result<()> {
    if spec.is_empty() {
        return Err(Error::invalid_input("a dependency spec is empty"));
    }
    if spec.len() > 256 {
        return Err(Error::invalid_input(format!(
            "dependency spec `{}…` is {} bytes; at most 256 allowed",
            spec.chars().take(40).collect::<String>(),
            spec.len()
        )));
    }
    if spec.starts_with('-') {
        return Err(Error::invalid_input(format!(
            "dependency spec `{spec}` looks like an option; give a package, not installer flags"
        )));
    }
    if let Some(bad) = spec.chars().find(|c| !allowed(*c)) {
        return Err(Error::invalid_input(format!(
            "dependency spec `{spec}` contains `{}`, which is not allowed in this ecosystem's specs (no URLs, paths, shell characters or whitespace)",
            bad.escape_default()
        )));
    }
    Ok(())
}

/// Refuse more than [`MAX_DEPENDENCIES`] dependencies.
///
/// ```
/// assert!(berth_sdk::check_dependency_count(&["a".to_string()]).is_ok());
/// ```
pub fn check_dependency_count(dependencies: &[String]) -> Result<()> {
    if dependencies.len() > MAX_DEPENDENCIES {
        return Err(Error::invalid_input(format!(
            "{} dependencies given; at most {MAX_DEPENDENCIES} allowed",
            dependencies.len()
        )));
    }
    Ok(())
}

impl WorkloadStatus {
    /// The status as a JSON object, for a tool's structured output.
    ///
    /// ```
    /// let status = berth_sdk::WorkloadStatus {
    ///     name: "web".into(),
    ///     id: "1a2b".into(),
    ///     phase: "running".into(),
    ///     endpoints: vec!["127.0.0.1:8080".into()],
    ///     message: None,
    /// };
    /// assert_eq!(status.to_json()["endpoints"][0], "127.0.0.1:8080");
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "id": self.id,
            "phase": self.phase,
            "endpoints": self.endpoints,
            "message": self.message,
        })
    }
}

impl SandboxSpec {
    /// The image to create the sandbox from, checked as an image reference,
    /// or an error saying where to configure one.
    pub fn checked_image(&self) -> Result<String> {
        let image = self.image.clone().ok_or_else(|| {
            Error::invalid_input(format!(
                "no sandbox image for {}; set [runs.sandbox_images.{}] image in berth.toml",
                self.language, self.language
            ))
        })?;
        crate::checks::image(&image)?;
        Ok(image)
    }
}
