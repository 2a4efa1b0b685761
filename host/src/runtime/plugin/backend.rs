//! A backend plugin's sandbox and workload exports.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use super::exports::Exports;
use super::{Plugin, unattended};
use crate::capabilities::HostState;
use crate::contract::bindings::backend::{BackendPlugin, BackendPluginPre};
use crate::contract::bindings::shared::berth::plugin::workload_types::{
    ExecRequest, SandboxSpec, StdioLink, Workload, WorkloadStatus,
};
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;

/// A plugin that implements the backend world: sandboxes for plans and
/// workloads for templates. Only [`Plugin::backend`] makes one.
#[derive(Clone)]
pub struct Backend {
    plugin: Arc<Plugin>,
    pre: BackendPluginPre<HostState>,
}

impl Backend {
    pub(super) fn of(plugin: &Arc<Plugin>) -> Option<Backend> {
        match &plugin.exports {
            Exports::Backend(pre) => Some(Backend {
                plugin: plugin.clone(),
                pre: pre.clone(),
            }),
            _ => None,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Run `f` against a fresh instance of the backend, allowing the call
    /// `wall` at least (a long command inside a sandbox).
    async fn call<R>(
        &self,
        wall: Duration,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(
            &BackendPlugin,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<R, CallError> {
        self.plugin.guard.call(&self.pre, wall, sink, f).await
    }

    /// Create a sandbox; returns its id.
    pub async fn sandbox_create(
        &self,
        spec: &SandboxSpec,
        sink: Arc<dyn CallSink>,
    ) -> Result<String, CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_sandbox().call_create(store, spec).await
        })
        .await
    }

    /// Write the request's files into a sandbox, then run its command
    /// there.
    pub async fn sandbox_exec(
        &self,
        id: &str,
        request: &ExecRequest,
        sink: Arc<dyn CallSink>,
    ) -> Result<ProcessOutput, CallError> {
        // The backend needs a little longer than the command to report.
        let wall = Duration::from_millis(request.timeout_ms.unwrap_or(0)) + Duration::from_secs(30);
        self.call(wall, sink, async |b, store| {
            b.berth_plugin_sandbox().call_exec(store, id, request).await
        })
        .await
    }

    /// Destroy a sandbox.
    pub async fn sandbox_destroy(
        &self,
        id: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<(), CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_sandbox().call_destroy(store, id).await
        })
        .await
    }

    /// Remove what outlived its TTL (every sandbox, with `all_sandboxes`);
    /// returns how many were removed.
    pub async fn reap(&self, all_sandboxes: bool) -> Result<u32, CallError> {
        self.call(Duration::ZERO, unattended(), async |b, store| {
            b.berth_plugin_sandbox()
                .call_reap(store, all_sandboxes)
                .await
        })
        .await
    }

    /// Deploy a workload.
    pub async fn workload_deploy(
        &self,
        workload: &Workload,
        sink: Arc<dyn CallSink>,
    ) -> Result<WorkloadStatus, CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads()
                .call_deploy(store, workload)
                .await
        })
        .await
    }

    /// Where a workload stands.
    pub async fn workload_status(
        &self,
        name: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<WorkloadStatus, CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads().call_status(store, name).await
        })
        .await
    }

    /// How to reach the stdio of MCP server workload `name`.
    pub async fn workload_attach(
        &self,
        name: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<StdioLink, CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads().call_attach(store, name).await
        })
        .await
    }

    /// The programs this backend may run (its `process` grant).
    pub fn allows_program(&self, program: &str) -> bool {
        self.plugin.grants().allows_program(program)
    }

    /// Stop and remove a workload.
    pub async fn workload_stop(
        &self,
        name: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<(), CallError> {
        self.call(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads().call_stop(store, name).await
        })
        .await
    }
}
