//! Constructors and builders for the contract's records, so plugins name
//! only the fields they set.

use crate::{
    Command, Environment, Error, File, Result, RunPlan, RunnerInfo, SandboxSpec, WorkloadStatus,
};

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

impl RunnerInfo {
    /// A runner of `language`, whose toolchain version `toolchain_probe`
    /// prints. It has no aliases, declares no programs and takes string
    /// dependencies until the methods below say otherwise.
    ///
    /// ```
    /// use berth_sdk::{Command, RunnerInfo};
    /// let info = RunnerInfo::new("python", Command::new("python3").arg("-VV"))
    ///     .alias("py")
    ///     .program("python3");
    /// assert_eq!((info.aliases.len(), info.programs.len()), (1, 1));
    /// assert!(info.dependency_schema.is_none());
    /// ```
    pub fn new(language: impl Into<String>, toolchain_probe: Command) -> Self {
        Self {
            language: language.into(),
            aliases: Vec::new(),
            programs: Vec::new(),
            toolchain_probe,
            dependency_schema: None,
        }
    }

    /// Another name callers may use for the language.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.aliases.push(alias.into());
        self
    }

    /// A program the plans run; the operator must grant it too.
    pub fn program(mut self, program: impl Into<String>) -> Self {
        self.programs.push(program.into());
        self
    }

    /// Accept the dependency items `schema` (a JSON Schema of one item)
    /// describes, rather than strings only. The host checks each item
    /// against it; items that are not strings reach
    /// [`Runner::plan`](crate::Runner::plan) as their JSON text.
    ///
    /// ```
    /// use berth_sdk::{Command, RunnerInfo};
    /// let info = RunnerInfo::new("rust", Command::new("cargo").arg("--version"))
    ///     .dependency_schema(serde_json::json!({"oneOf": [
    ///         {"type": "string"},
    ///         {"type": "object", "required": ["name"]},
    ///     ]}));
    /// assert!(info.dependency_schema.unwrap().contains("oneOf"));
    /// ```
    pub fn dependency_schema(mut self, schema: serde_json::Value) -> Self {
        self.dependency_schema = Some(schema.to_string());
        self
    }
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
