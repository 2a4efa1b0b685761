//! `berth:plugin/kube`: kubectl-equivalent actions against the configured
//! cluster. Every function first checks the plugin's kube grant for its
//! verb, context, namespace and kind; a refused action sends no request.

use std::time::Duration;

use kube::api::PropagationPolicy;
use wasmtime::component::{HasSelf, Linker};

use std::sync::Arc;

use crate::capabilities::{Caller, HostServices, HostState};
use crate::contract::bindings::shared::berth::plugin::kube::{
    self as wit, LogOptions, ObjectRef, Propagation, Scope, WaitUntil,
};
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};
use crate::sys::kube::actions::{self, Kind, LogFilter, Placed, PodCommand, Until};
use crate::sys::kube::{Cluster, manifest, names, privileges};

mod access;
pub use access::{Kube, KubeAccess};

/// Default time limit of `exec`.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest time limit `exec` accepts.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(900);

/// What the kube functions need from the store, cloned out so that their
/// futures hold nothing that is not `Sync`.
struct KubeCall {
    caller: Caller,
    services: Arc<HostServices>,
}

impl HostState {
    fn kube(&self) -> KubeCall {
        KubeCall {
            caller: self.caller.clone(),
            services: self.services.clone(),
        }
    }
}

impl KubeCall {
    fn kube_access(&self) -> Result<&KubeAccess, WitError> {
        self.caller
            .grants
            .kube
            .as_ref()
            .ok_or_else(|| self.caller.denied("kube"))
    }

    fn refuse(
        &self,
        verb: &str,
        context: Option<&str>,
        namespace: &str,
        kind: &str,
    ) -> Result<(), WitError> {
        match self.kube_access()?.refusal(verb, context, namespace, kind) {
            Some(what) => Err(self.caller.denied(&what)),
            None => Ok(()),
        }
    }

    fn refuse_verb(&self, verb: &str, at: &Scope) -> Result<(), WitError> {
        match self
            .kube_access()?
            .verb_refusal(verb, at.context.as_deref())
        {
            Some(what) => Err(self.caller.denied(&what)),
            None => Ok(()),
        }
    }

    /// The cluster and namespace of `at`, once `verb` on `kind` there is
    /// granted. Reading the kubeconfig sends nothing to the cluster.
    async fn kube_scope(
        &self,
        verb: &str,
        at: &Scope,
        kind: &str,
    ) -> Result<(Cluster, String), WitError> {
        self.refuse_verb(verb, at)?;
        if let Some(ns) = &at.namespace {
            names::check_label("namespace", ns).map_err(WitError::InvalidInput)?;
        }
        let cluster = self.services.kube.get(at.context.as_deref()).await?;
        let namespace = at
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone());
        self.refuse(verb, at.context.as_deref(), &namespace, kind)?;
        Ok((cluster, namespace))
    }

    /// [`Self::kube_scope`] for one object, with its kind resolved.
    async fn kube_object(
        &self,
        verb: &str,
        at: &Scope,
        object: &ObjectRef,
    ) -> Result<(Cluster, String, Kind), WitError> {
        names::check_object_name(&format!("{} name", object.kind), &object.name)
            .map_err(WitError::InvalidInput)?;
        self.kube_kind(verb, at, &object.api_version, &object.kind)
            .await
    }

    async fn kube_kind(
        &self,
        verb: &str,
        at: &Scope,
        api_version: &str,
        kind: &str,
    ) -> Result<(Cluster, String, Kind), WitError> {
        let (cluster, namespace) = self.kube_scope(verb, at, kind).await?;
        let resolved = actions::resolve(&cluster, api_version, kind).await?;
        self.refuse_cluster_scoped(&resolved, kind)?;
        Ok((cluster, namespace, resolved))
    }

    /// Cluster-scoped objects belong to no namespace, so only a plugin
    /// granted every namespace may touch them.
    fn refuse_cluster_scoped(&self, kind: &Kind, name: &str) -> Result<(), WitError> {
        if !kind.namespaced && !self.kube_access()?.namespaces.contains("*") {
            return Err(self.caller.denied(&format!(
                "the cluster-scoped kind `{name}` (it needs namespaces = [\"*\"])"
            )));
        }
        Ok(())
    }

    async fn apply_checked(&self, at: Scope, manifests: String) -> Result<Vec<String>, WitError> {
        self.refuse_verb("apply", &at)?;
        let objects = manifest::parse(&manifests)?;
        if let Some(ns) = &at.namespace {
            names::check_label("namespace", ns).map_err(WitError::InvalidInput)?;
        }
        let cluster = self.services.kube.get(at.context.as_deref()).await?;
        let default_ns = at
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone());
        // Every document is checked before the first request, so a refused
        // one stops the whole apply with nothing sent.
        let access = self.kube_access()?;
        for object in &objects {
            let namespace = object.namespace.as_deref().unwrap_or(&default_ns);
            self.refuse("apply", at.context.as_deref(), namespace, &object.kind)
                .map_err(|e| match e {
                    WitError::Denied(m) => WitError::Denied(format!("{}: {m}", object.describe())),
                    other => other,
                })?;
            for (privilege, path) in privileges::pod_privileges(object) {
                if let Some(refused) = access.pod_privilege_refusal(privilege, &path) {
                    return Err(self
                        .caller
                        .denied(&format!("{refused} of {}", object.describe())));
                }
            }
        }
        let mut placed = Vec::with_capacity(objects.len());
        for object in objects {
            let kind = actions::resolve(&cluster, &object.api_version, &object.kind).await?;
            self.refuse_cluster_scoped(&kind, &object.kind)?;
            let namespace = object
                .namespace
                .clone()
                .unwrap_or_else(|| default_ns.clone());
            placed.push(Placed {
                object,
                kind,
                namespace,
            });
        }
        actions::apply(&cluster, &placed).await
    }
}

fn propagation(p: Propagation) -> PropagationPolicy {
    match p {
        Propagation::Foreground => PropagationPolicy::Foreground,
        Propagation::Background => PropagationPolicy::Background,
        Propagation::Orphan => PropagationPolicy::Orphan,
    }
}

fn exec_timeout(timeout_ms: Option<u64>) -> Duration {
    timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_EXEC_TIMEOUT)
        .min(MAX_EXEC_TIMEOUT)
}

impl wit::Host for HostState {
    async fn apply(
        &mut self,
        at: Scope,
        manifests: String,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        Ok(self.kube().apply_checked(at, manifests).await)
    }

    async fn get(
        &mut self,
        at: Scope,
        object: ObjectRef,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns, kind) = call.kube_object("get", &at, &object).await?;
            actions::get(&cluster, &kind, &ns, &object.name).await
        }
        .await)
    }

    async fn list(
        &mut self,
        at: Scope,
        api_version: String,
        kind: String,
        label_selector: Option<String>,
        field_selector: Option<String>,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns, resolved) = call.kube_kind("list", &at, &api_version, &kind).await?;
            actions::list(
                &cluster,
                &resolved,
                &ns,
                label_selector.as_deref(),
                field_selector.as_deref(),
            )
            .await
        }
        .await)
    }

    async fn delete(
        &mut self,
        at: Scope,
        object: ObjectRef,
        how: Propagation,
    ) -> wasmtime::Result<Result<bool, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns, kind) = call.kube_object("delete", &at, &object).await?;
            actions::delete(&cluster, &kind, &ns, &object.name, propagation(how)).await
        }
        .await)
    }

    async fn scale(
        &mut self,
        at: Scope,
        object: ObjectRef,
        replicas: u32,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns, kind) = call.kube_object("scale", &at, &object).await?;
            actions::scale(&cluster, &kind, &ns, &object.name, replicas).await
        }
        .await)
    }

    async fn wait(
        &mut self,
        at: Scope,
        object: ObjectRef,
        until: WaitUntil,
        timeout_ms: u64,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns, kind) = call.kube_object("wait", &at, &object).await?;
            let until = match until {
                WaitUntil::Condition(c) => Until::Condition(c),
                WaitUntil::RolloutComplete => Until::RolloutComplete,
                WaitUntil::Deleted => Until::Deleted,
            };
            let timeout = Duration::from_millis(timeout_ms);
            actions::wait(&cluster, &kind, &ns, &object.name, &until, timeout).await
        }
        .await)
    }

    async fn logs(
        &mut self,
        at: Scope,
        pod: String,
        options: LogOptions,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns) = call.kube_scope("logs", &at, "Pod").await?;
            names::check_object_name("pod", &pod).map_err(WitError::InvalidInput)?;
            let filter = LogFilter {
                container: options.container,
                tail_lines: options.tail_lines,
                since_seconds: options.since_seconds,
            };
            actions::logs(&cluster, &ns, &pod, &filter).await
        }
        .await)
    }

    async fn exec(
        &mut self,
        at: Scope,
        pod: String,
        container: Option<String>,
        command: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u64>,
    ) -> wasmtime::Result<Result<ProcessOutput, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, namespace) = call.kube_scope("exec", &at, "Pod").await?;
            names::check_object_name("pod", &pod).map_err(WitError::InvalidInput)?;
            let run = PodCommand {
                namespace: &namespace,
                pod: &pod,
                container: container.as_deref(),
                command: &command,
                stdin: stdin.as_deref(),
                timeout: exec_timeout(timeout_ms),
            };
            actions::exec(&cluster, &run).await
        }
        .await)
    }

    async fn port_forward(
        &mut self,
        at: Scope,
        pod: String,
        port: u16,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let call = self.kube();
        Ok(async move {
            let (cluster, ns) = call.kube_scope("port-forward", &at, "Pod").await?;
            names::check_object_name("pod", &pod).map_err(WitError::InvalidInput)?;
            if port == 0 {
                return Err(WitError::InvalidInput(
                    "port 0 is not a port; expected 1-65535".into(),
                ));
            }
            let owner = call.caller.plugin.clone();
            call.services
                .kube
                .forwards
                .open(&owner, &cluster, &ns, &pod, port)
                .await
        }
        .await)
    }

    async fn stop_forward(&mut self, address: String) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(denied) = self.kube().kube_access() {
            return Ok(Err(denied));
        }
        Ok(Ok(self
            .services
            .kube
            .forwards
            .close(&self.caller.plugin, &address)))
    }
}

/// Add `kube` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wit::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}
