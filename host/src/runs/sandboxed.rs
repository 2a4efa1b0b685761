//! Executing a runner's plan in a sandbox of a backend plugin instead of
//! on the host: a fresh one (from the warm pool, or created for the run and
//! destroyed after it), or one kept across runs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capabilities::grants::Grants;
use crate::contract::bindings::shared::berth::plugin::context::LogLevel;
use crate::contract::bindings::shared::berth::plugin::workload_types::{ExecRequest, SandboxSpec};
use crate::contract::bindings::types::{Command, Error as WitError, ProcessOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runs::plan::{Execution, Outcome, Phase, Places, SandboxUse, describe};
use crate::runs::pool::SandboxPools;
use crate::runtime::plugin::Backend;

/// A sandbox of a backend plugin that a plan runs in instead of the host.
pub struct SandboxPlace {
    /// The backend.
    pub backend: Backend,
    /// Which of its sandboxes.
    pub sandbox: Sandbox,
}

/// The sandbox a run goes to.
pub enum Sandbox {
    /// One no other run has used: from the warm pool, or created now; it
    /// is destroyed after the run.
    Fresh {
        /// What to create.
        spec: SandboxSpec,
        /// Size of the warm pool to take it from (0: create one).
        pool: usize,
        /// The host's warm pools.
        pools: Arc<SandboxPools>,
    },
    /// One kept across runs (`create_sandbox`), with the lock its runs take
    /// turns on; it is left as the run leaves it.
    Kept {
        /// Its id.
        id: String,
        /// Held for the length of the run.
        turn: Arc<tokio::sync::Mutex<()>>,
    },
}

/// Where the placeholders point inside a sandbox.
const SANDBOX_WORK: &str = "/work";
const SANDBOX_ENV: &str = "/work/.berth-env";
const SANDBOX_CACHE: &str = "/work/.berth-cache";

/// Execute `execution` in the sandbox `place` names. A fresh one is
/// destroyed afterwards whatever happens; environments are built inside it
/// on every run, since it is thrown away with them.
pub async fn execute_in_sandbox(
    grants: &Grants,
    execution: Execution,
    place: SandboxPlace,
    sink: Arc<dyn CallSink>,
) -> Result<Outcome, WitError> {
    let started = Instant::now();
    let backend = place.backend;
    let (id, pooled, _turn, pools) = match place.sandbox {
        Sandbox::Kept { id, turn } => (id, false, Some(turn.lock_owned().await), None),
        Sandbox::Fresh { spec, pool, pools } => match pools.take(&backend, &spec, pool) {
            Some(id) => (id, true, None, Some(pools)),
            None => {
                let id = backend
                    .sandbox_create(&spec, sink.clone())
                    .await
                    .map_err(|e| sandbox_error("creating a sandbox", &backend, e))?;
                (id, false, None, Some(pools))
            }
        },
    };
    sink.log(
        LogLevel::Info,
        format!("running in sandbox {id} of backend `{}`", backend.name()),
    )
    .await;
    let fresh = pools.is_some();
    let result = run_in_sandbox(grants, &execution, &backend, &id, sink, started, fresh).await;
    let used = SandboxUse {
        backend: backend.name().to_string(),
        id: id.clone(),
        pooled,
    };
    if let Some(pools) = pools {
        // The caller has its result; removing the sandbox need not delay it.
        pools.destroy_later(backend, id);
    }
    result.map(|outcome| Outcome {
        sandbox: Some(used),
        ..outcome
    })
}

fn sandbox_error(what: &str, backend: &Backend, err: CallError) -> WitError {
    match err {
        CallError::Plugin(wit) => wit,
        other => WitError::Failed(format!("{what} on backend `{}`: {other}", backend.name())),
    }
}

async fn run_in_sandbox(
    grants: &Grants,
    execution: &Execution,
    backend: &Backend,
    id: &str,
    sink: Arc<dyn CallSink>,
    started: Instant,
    ends_sandbox: bool,
) -> Result<Outcome, WitError> {
    let plan = &execution.plan;
    let places = Places {
        work: Path::new(SANDBOX_WORK),
        env: plan.environment.as_ref().map(|_| Path::new(SANDBOX_ENV)),
        cache: Path::new(SANDBOX_CACHE),
    };
    let finish = |phase, out: ProcessOutput| Outcome {
        phase,
        exit_code: out.exit_code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        truncated: out.truncated,
        timed_out: out.timed_out,
        cached_env: false,
        duration_ms: started.elapsed().as_millis() as u64,
        limits_enforced: true,
        memory_exceeded: false,
        pids_exceeded: false,
        forked: false,
        isolated: true,
        limits: vec!["sandbox"],
        sandbox: None,
    };
    let setup = plan.environment.iter().flat_map(|e| e.setup.iter());
    let prepare = setup
        .map(|s| (Phase::Setup, s))
        .chain(plan.build.iter().map(|s| (Phase::Build, s)));
    // The plan's files go with the first command, whichever it is.
    let mut files = Some(plan.files.clone());
    let mut exec = async |command: Command, stdin: Option<Vec<u8>>, timeout: Duration, last| {
        let request = ExecRequest {
            files: files.take().unwrap_or_default(),
            command,
            stdin,
            timeout_ms: Some(timeout.as_millis() as u64),
            last,
        };
        backend
            .sandbox_exec(id, &request, sink.clone())
            .await
            .map_err(|e| sandbox_error("running in the sandbox", backend, e))
    };
    for (phase, step) in prepare {
        sink.progress(0.0, None, Some(describe(step))).await;
        let out = exec(
            places.fill(step, grants)?,
            None,
            Duration::from_secs(600),
            false,
        )
        .await?;
        if out.exit_code != Some(0) {
            return Ok(finish(phase, out));
        }
    }
    let mut run = places.fill(&plan.run, grants)?;
    run.env.extend(execution.env.iter().cloned());
    let out = exec(
        run,
        execution.stdin.clone(),
        execution.run_timeout,
        ends_sandbox,
    )
    .await?;
    Ok(finish(Phase::Run, out))
}
