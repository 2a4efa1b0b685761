//! `berth:plugin/process`: run a granted program in a fresh workspace.

use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wasmtime::component::{HasSelf, Linker};

use super::unit;
use super::{Caller, HostServices, HostState};
use crate::contract::bindings::shared::berth::plugin::process::{self as wit, RunRequest};
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};
use crate::sys::process::{self as exec, ProcessSpec};
use crate::sys::workspace::Workspace;

/// The `process` capability: which programs a plugin may run.
pub struct Process;

unit::name_list!(Process, "process");

/// Largest total size of files a request may write, bytes.
const MAX_FILES_BYTES: usize = 64 << 20;
/// Most arguments or environment entries in one request.
const MAX_LIST: usize = 4096;

/// A request made ready to run: its workspace (removed when dropped) and
/// the process to start in it.
pub struct Prepared {
    /// The fresh workspace holding the request's files.
    pub workspace: Workspace,
    /// The resolved program, arguments, environment and limits.
    pub spec: ProcessSpec,
}

/// Check a request's program, arguments, environment and files, and set up
/// a fresh workspace for it. The caller has checked the grant.
pub fn prepare(services: &HostServices, request: RunRequest) -> Result<Prepared, WitError> {
    let command = &request.command;
    let host_path = std::env::var("PATH").ok();
    let program =
        exec::resolve_program(&command.program, host_path.as_deref()).ok_or_else(|| {
            WitError::Unavailable(format!(
                "program `{}` is not installed on the host (not found on PATH)",
                command.program
            ))
        })?;
    if command.args.len() > MAX_LIST || command.env.len() > MAX_LIST {
        return Err(WitError::InvalidInput(format!(
            "more than {MAX_LIST} arguments or environment entries"
        )));
    }
    if let Some((name, _)) = command
        .env
        .iter()
        .find(|(name, _)| exec::is_forbidden_env(name))
    {
        return Err(WitError::InvalidInput(format!(
            "environment variable `{name}` may not be set (malformed, or it would load code or redirect a tool, like LD_*, PATH, NODE_OPTIONS or RUSTC_WRAPPER; the README lists them)"
        )));
    }
    let total: usize = request.files.iter().map(|f| f.contents.len()).sum();
    if total > MAX_FILES_BYTES {
        return Err(WitError::InvalidInput(format!(
            "files total {total} bytes; at most {MAX_FILES_BYTES} allowed"
        )));
    }

    let workspace = Workspace::create(&services.workspace_root)
        .map_err(|e| WitError::Failed(format!("{e:#}")))?;
    for file in &request.files {
        workspace
            .write(&file.path, &file.contents, file.executable)
            .map_err(|e| match e.downcast::<crate::sys::workspace::BadPath>() {
                Ok(bad) => WitError::InvalidInput(bad.to_string()),
                Err(other) => WitError::Failed(format!("{other:#}")),
            })?;
    }
    let cwd = match &command.cwd {
        Some(dir) => workspace
            .resolve(dir)
            .map_err(|bad| WitError::InvalidInput(bad.to_string()))?,
        None => workspace.path().to_path_buf(),
    };
    if !cwd.is_dir() {
        return Err(WitError::InvalidInput(format!(
            "working directory `{}` does not exist in the workspace",
            command.cwd.as_deref().unwrap_or(".")
        )));
    }

    let mut env = exec::base_env(&services.process, workspace.path());
    env.extend(command.env.iter().cloned());

    let ceiling = Duration::from_millis(services.process.timeout_ms);
    let timeout = request
        .timeout_ms
        .map(Duration::from_millis)
        .map_or(ceiling, |t| t.min(ceiling));
    let spec = ProcessSpec {
        program,
        args: command.args.clone(),
        env,
        cwd,
        stdin: request.stdin,
        timeout,
        max_output: services.process.max_output_bytes,
        lines: None,
        cgroup: None,
        rlimits: None,
    };
    Ok(Prepared { workspace, spec })
}

/// Check the grant, prepare a workspace and run the request.
pub async fn run(
    caller: &Caller,
    services: &HostServices,
    request: RunRequest,
    cancel: CancellationToken,
) -> Result<ProcessOutput, WitError> {
    let program_name = request.command.program.clone();
    if !caller.grants.allows_program(&program_name) {
        return Err(caller.denied(&format!("the program `{program_name}`")));
    }
    let Prepared {
        workspace: _workspace,
        spec,
    } = prepare(services, request)?;
    let _slot = services
        .process_slots
        .acquire()
        .await
        .map_err(|_| WitError::Unavailable("host is shutting down".into()))?;
    let result = exec::run(spec, cancel)
        .await
        .with_context(|| format!("starting `{program_name}`"))
        .map_err(|e| WitError::Failed(format!("{e:#}")))?;
    if result.cancelled {
        return Err(WitError::Failed(
            "the call was cancelled; the process was killed".into(),
        ));
    }
    Ok(result.into())
}

impl wit::Host for HostState {
    async fn run(
        &mut self,
        request: RunRequest,
    ) -> wasmtime::Result<Result<ProcessOutput, WitError>> {
        if !self.caller.grants.allows_program(&request.command.program) {
            return Ok(Err(self
                .caller
                .denied(&format!("the program `{}`", request.command.program))));
        }
        let cancel = CancellationToken::new();
        let watcher = {
            let call = self.call.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                while !call.cancelled() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                cancel.cancel();
            })
        };
        let result = run(&self.caller, &self.services, request, cancel).await;
        watcher.abort();
        Ok(result)
    }
}

/// Add `berth:plugin/process` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capabilities::grants::Grants;
    use crate::contract::bindings::types::{Command, File};
    use crate::state::Database;
    use crate::sys::process::ProcessConfig;

    fn setup(programs: &[&str]) -> (Caller, HostServices, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let grants = Grants {
            process: programs.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        };
        let caller = Caller {
            plugin: "test".into(),
            grants: Arc::new(grants),
            config: "{}".into(),
        };
        let services = HostServices::new(
            Database::in_memory().unwrap(),
            ProcessConfig::default(),
            root.path().join("work"),
            Default::default(),
        );
        (caller, services, root)
    }

    fn request(program: &str, args: &[&str]) -> RunRequest {
        RunRequest {
            command: Command {
                program: program.into(),
                args: args.iter().map(|a| a.to_string()).collect(),
                env: vec![],
                cwd: None,
            },
            files: vec![],
            stdin: None,
            timeout_ms: Some(10_000),
        }
    }

    #[tokio::test]
    async fn ungranted_program_is_denied_before_anything_runs() {
        let (caller, services, root) = setup(&["echo"]);
        let err = run(
            &caller,
            &services,
            request("sh", &["-c", "true"]),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, WitError::Denied(m) if m.contains("`sh`")),
            "{err:?}"
        );
        assert!(
            !root.path().join("work").exists(),
            "a workspace was created for a denied call"
        );
    }

    #[tokio::test]
    async fn files_are_written_and_workspace_removed() {
        let (caller, services, root) = setup(&["sh"]);
        let mut req = request("sh", &["main.sh"]);
        req.files = vec![
            File {
                path: "main.sh".into(),
                contents: b"cat data/x.txt; pwd".to_vec(),
                executable: false,
            },
            File {
                path: "data/x.txt".into(),
                contents: b"hello ".to_vec(),
                executable: false,
            },
        ];
        let out = run(&caller, &services, req, CancellationToken::new())
            .await
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with("hello /"), "{stdout}");
        assert_eq!(
            std::fs::read_dir(root.path().join("work")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn escaping_paths_and_loader_env_are_invalid_input() {
        let (caller, services, _root) = setup(&["sh"]);
        let mut req = request("sh", &["-c", "true"]);
        req.files = vec![File {
            path: "../escape".into(),
            contents: vec![],
            executable: false,
        }];
        let err = run(&caller, &services, req, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WitError::InvalidInput(m) if m.contains("../escape")),
            "{err:?}"
        );

        let mut req = request("sh", &["-c", "true"]);
        req.command.env = vec![("LD_PRELOAD".into(), "/tmp/x.so".into())];
        let err = run(&caller, &services, req, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WitError::InvalidInput(m) if m.contains("LD_PRELOAD")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn granted_but_missing_program_is_unavailable() {
        let (caller, services, _root) = setup(&["no-such-program-xyz"]);
        let err = run(
            &caller,
            &services,
            request("no-such-program-xyz", &[]),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, WitError::Unavailable(_)));
    }

    #[tokio::test]
    async fn timeout_is_capped_by_the_host() {
        let (caller, mut services, _root) = setup(&["sh"]);
        services.process.timeout_ms = 200;
        let out = run(
            &caller,
            &services,
            request("sh", &["-c", "sleep 20"]),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(out.timed_out);
    }
}
