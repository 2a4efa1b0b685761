//! `berth:plugin/mirrord`: run a command under `mirrord exec`, in the
//! network, environment and file context of a live Kubernetes workload,
//! through the engine in [`crate::sys::mirrord`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wasmtime::component::{HasSelf, Linker};

use super::unit::Switch;
use super::{HostServices, HostState};
use crate::capabilities::grants::Grants;
use crate::contract::bindings::shared::berth::plugin::mirrord::{
    self as wit, MirrordRequest, Target, TargetKind,
};
use crate::contract::bindings::shared::berth::plugin::process::RunRequest;
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};
use crate::contract::sink::CallSink;
use crate::sys::mirrord::{MirrordRun, exec, validate_target};

/// The `mirrord` capability: running granted programs under `mirrord exec`.
pub struct Mirrord;

impl Switch for Mirrord {
    const KEY: &'static str = "mirrord";
}

impl wit::Host for HostState {
    async fn exec(
        &mut self,
        request: MirrordRequest,
    ) -> wasmtime::Result<Result<ProcessOutput, WitError>> {
        if let Some(refused) = target_refusal(&self.caller.grants, &request.target) {
            return Ok(Err(self.caller.denied(&refused)));
        }
        let program = &request.command.program;
        if !self.caller.grants.allows_program(program) {
            return Ok(Err(self.caller.denied(&format!("the program `{program}`"))));
        }
        Ok(plugin_exec(&self.services, request, self.call.clone()).await)
    }
}

/// What of attaching to `target` through mirrord `grants` do not allow:
/// mirrord itself, or `exec` on the target's kind in its namespace (an
/// absent namespace, the kubeconfig's default, needs every namespace).
/// `None` when all of it is granted.
pub fn target_refusal(grants: &Grants, target: &Target) -> Option<String> {
    if !grants.mirrord {
        return Some("mirrord".into());
    }
    let Some(kube) = &grants.kube else {
        return Some("the kube capability (mirrord attaches to a workload)".into());
    };
    let kind = match target.kind {
        TargetKind::Deployment => "Deployment",
        TargetKind::Pod => "Pod",
    };
    let namespace = target.namespace.as_deref().unwrap_or("*");
    kube.refusal("exec", None, namespace, kind).map(|refused| {
        if target.namespace.is_none() {
            format!(
                "{refused} (give `namespace`: the grant does not cover the kubeconfig's default)"
            )
        } else {
            refused
        }
    })
}

/// The plugin-facing exec: a fresh workspace with the request's files,
/// prepared as `process` prepares its runs.
async fn plugin_exec(
    services: &HostServices,
    request: MirrordRequest,
    sink: Arc<dyn CallSink>,
) -> Result<ProcessOutput, WitError> {
    validate_target(&request.target)?;
    let prepared = super::process::prepare(
        services,
        RunRequest {
            command: request.command,
            files: request.files,
            stdin: request.stdin,
            timeout_ms: request.timeout_ms,
        },
    )?;
    let spec = prepared.spec;
    let run = MirrordRun {
        target: request.target,
        program: spec.program,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        stdin: spec.stdin,
        timeout: spec.timeout,
    };
    let result = exec(
        &services.process_slots,
        services.process.max_output_bytes,
        run,
        sink,
        CancellationToken::new(),
    )
    .await?;
    Ok(result.into())
}

/// Add `berth:plugin/mirrord` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}
