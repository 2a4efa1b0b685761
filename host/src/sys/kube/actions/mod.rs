//! The kubectl-equivalent actions, on a connected [`Cluster`]: objects
//! (apply, get, list, delete, scale) here, [`wait`] conditions, and pods'
//! logs and exec in [`pods`]. Grants are checked by the caller before any
//! of these runs.

mod pods;
mod wait;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::{Value, json};

use super::manifest::Object;
use super::{Cluster, api_error};
use crate::contract::bindings::types::Error as WitError;

pub use self::pods::{LogFilter, PodCommand, exec, exit_code, logs};
pub use self::wait::{Until, holds, wait};

/// The field manager berth applies as.
pub const FIELD_MANAGER: &str = "berth";

/// Most bytes of logs, or of each exec output stream, returned.
pub const OUTPUT_CAP: usize = 1024 * 1024;

/// Longest `wait` allowed.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// A kind as the cluster serves it.
#[derive(Clone)]
pub struct Kind {
    /// The resource behind it.
    pub resource: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

/// Find `kind` of `api_version` in the cluster's API, through discovery
/// the first time.
pub async fn resolve(cluster: &Cluster, api_version: &str, kind: &str) -> Result<Kind, WitError> {
    let key = (api_version.to_string(), kind.to_string());
    if let Some(found) = lock(&cluster.kinds).get(&key) {
        return Ok(found.clone());
    }
    let found = discover(cluster, api_version, kind).await?;
    lock(&cluster.kinds).insert(key, found.clone());
    Ok(found)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn discover(cluster: &Cluster, api_version: &str, kind: &str) -> Result<Kind, WitError> {
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    if version.is_empty() || version.contains('/') {
        return Err(WitError::InvalidInput(format!(
            "apiVersion `{api_version}` is not `VERSION` or `GROUP/VERSION`"
        )));
    }
    let gvk = GroupVersionKind::gvk(group, version, kind);
    match discovery::pinned_kind(&cluster.client, &gvk).await {
        Ok((resource, caps)) => Ok(Kind {
            resource,
            namespaced: matches!(caps.scope, Scope::Namespaced),
        }),
        Err(kube::Error::Discovery(_)) => Err(unknown_kind(api_version, kind)),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(unknown_kind(api_version, kind)),
        Err(err) => Err(api_error(&format!("looking up kind {kind}"), err)),
    }
}

fn unknown_kind(api_version: &str, kind: &str) -> WitError {
    WitError::InvalidInput(format!(
        "the cluster serves no kind `{kind}` in `{api_version}`; check the apiVersion and kind (they are case-sensitive)"
    ))
}

fn api(cluster: &Cluster, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.namespaced {
        Api::namespaced_with(cluster.client.clone(), namespace, &kind.resource)
    } else {
        Api::all_with(cluster.client.clone(), &kind.resource)
    }
}

fn to_json(object: &DynamicObject) -> String {
    serde_json::to_string(object).unwrap_or_else(|_| "{}".into())
}

/// One manifest object, resolved and placed in its namespace.
pub struct Placed {
    /// The object.
    pub object: Object,
    /// Its kind as served.
    pub kind: Kind,
    /// The namespace it goes to (ignored for cluster-scoped kinds).
    pub namespace: String,
}

/// Server-side apply `objects`: all dry-run first, then all for real, so
/// that one the server rejects leaves nothing behind.
pub async fn apply(cluster: &Cluster, objects: &[Placed]) -> Result<Vec<String>, WitError> {
    let new_namespaces: HashSet<&str> = objects
        .iter()
        .filter(|p| p.object.kind == "Namespace" && !p.kind.namespaced)
        .map(|p| p.object.name.as_str())
        .collect();
    let mut dry_run = PatchParams::apply(FIELD_MANAGER).force();
    dry_run.dry_run = true;
    for placed in objects {
        // A namespace created by this same apply does not exist yet, so
        // objects in it cannot be dry-run.
        if placed.kind.namespaced && new_namespaces.contains(placed.namespace.as_str()) {
            continue;
        }
        patch(cluster, placed, &dry_run).await?;
    }
    let real = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::with_capacity(objects.len());
    for placed in objects {
        applied.push(to_json(&patch(cluster, placed, &real).await?));
    }
    Ok(applied)
}

async fn patch(
    cluster: &Cluster,
    placed: &Placed,
    params: &PatchParams,
) -> Result<DynamicObject, WitError> {
    let mut body = placed.object.body.clone();
    if placed.kind.namespaced {
        body["metadata"]["namespace"] = Value::String(placed.namespace.clone());
    }
    let what = if params.dry_run {
        format!("checking {} (dry run)", placed.object.describe())
    } else {
        format!("applying {}", placed.object.describe())
    };
    api(cluster, &placed.kind, &placed.namespace)
        .patch(&placed.object.name, params, &Patch::Apply(body))
        .await
        .map_err(|e| api_error(&what, e))
}

/// One object as JSON.
pub async fn get(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    name: &str,
) -> Result<String, WitError> {
    api(cluster, kind, namespace)
        .get(name)
        .await
        .map(|o| to_json(&o))
        .map_err(|e| api_error(&format!("getting {}/{name}", kind.resource.kind), e))
}

/// Objects of a kind, filtered by selectors.
pub async fn list(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    labels: Option<&str>,
    fields: Option<&str>,
) -> Result<Vec<String>, WitError> {
    let mut params = ListParams::default();
    if let Some(labels) = labels {
        params = params.labels(labels);
    }
    if let Some(fields) = fields {
        params = params.fields(fields);
    }
    let list = api(cluster, kind, namespace)
        .list(&params)
        .await
        .map_err(|e| api_error(&format!("listing {}", kind.resource.plural), e))?;
    Ok(list.items.iter().map(to_json).collect())
}

/// Delete an object; false when it was already gone.
pub async fn delete(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    name: &str,
    propagation: PropagationPolicy,
) -> Result<bool, WitError> {
    let params = DeleteParams {
        propagation_policy: Some(propagation),
        ..DeleteParams::default()
    };
    match api(cluster, kind, namespace).delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(err) => Err(api_error(
            &format!("deleting {}/{name}", kind.resource.kind),
            err,
        )),
    }
}

/// Set an object's replicas through its `scale` subresource.
pub async fn scale(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> Result<(), WitError> {
    api(cluster, kind, namespace)
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            api_error(
                &format!("scaling {}/{name} to {replicas}", kind.resource.kind),
                e,
            )
        })
}
