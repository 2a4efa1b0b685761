//! The kubectl-equivalent actions, on a connected [`Cluster`]. Grants are
//! checked by the caller before any of these runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status as ExecStatus;
use kube::api::{
    Api, AttachParams, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PropagationPolicy,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::manifest::Object;
use super::{Cluster, api_error};
use crate::contract::bindings::types::{Error as WitError, ProcessOutput};

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

/// What [`wait`] waits for.
pub enum Until {
    /// A condition of this type is `True`.
    Condition(String),
    /// A rollout is complete.
    RolloutComplete,
    /// The object is gone.
    Deleted,
}

/// Poll the object until `until` holds or `timeout` passes.
pub async fn wait(
    cluster: &Cluster,
    kind: &Kind,
    namespace: &str,
    name: &str,
    until: &Until,
    timeout: Duration,
) -> Result<String, WitError> {
    let timeout = timeout.min(MAX_WAIT);
    let deadline = Instant::now() + timeout;
    let api = api(cluster, kind, namespace);
    let what = format!("{}/{name}", kind.resource.kind);
    loop {
        let last = match api.get_opt(name).await {
            Ok(None) if matches!(until, Until::Deleted) => return Ok("{}".into()),
            Ok(None) => "it does not exist".to_string(),
            Ok(Some(object)) => {
                let value = serde_json::to_value(&object).unwrap_or_default();
                match holds(until, &value) {
                    Ok(()) => return Ok(to_json(&object)),
                    Err(why) => why,
                }
            }
            Err(err) => return Err(api_error(&format!("waiting for {what}"), err)),
        };
        if Instant::now() >= deadline {
            return Err(WitError::Timeout(format!(
                "{what} did not reach the expected state within {} ms: {last}",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `Ok` when `until` holds for `object`, else what is still missing.
pub fn holds(until: &Until, object: &Value) -> Result<(), String> {
    let status = &object["status"];
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    match until {
        Until::Deleted => Err("it still exists".into()),
        Until::Condition(wanted) => {
            let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            match conditions.iter().find(|c| c["type"] == wanted.as_str()) {
                Some(c) if c["status"] == "True" => Ok(()),
                Some(c) => Err(format!(
                    "condition {wanted} is {} ({})",
                    c["status"].as_str().unwrap_or("?"),
                    c["message"].as_str().unwrap_or("no message")
                )),
                None => Err(format!("condition {wanted} is not reported yet")),
            }
        }
        Until::RolloutComplete => {
            let generation = int(&object["metadata"]["generation"]);
            if int(&status["observedGeneration"]) < generation {
                return Err("the controller has not seen the latest spec yet".into());
            }
            match object["kind"].as_str().unwrap_or_default() {
                "Deployment" | "StatefulSet" => {
                    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
                    let updated = int(&status["updatedReplicas"]);
                    let ready = if object["kind"] == "Deployment" {
                        int(&status["availableReplicas"])
                    } else {
                        int(&status["readyReplicas"])
                    };
                    let total = int(&status["replicas"]);
                    if updated == wanted && ready == wanted && total == wanted {
                        Ok(())
                    } else {
                        Err(format!(
                            "{updated} of {wanted} replicas updated, {ready} ready, {total} in total"
                        ))
                    }
                }
                "DaemonSet" => {
                    let wanted = int(&status["desiredNumberScheduled"]);
                    let updated = int(&status["updatedNumberScheduled"]);
                    let ready = int(&status["numberAvailable"]);
                    if updated == wanted && ready == wanted {
                        Ok(())
                    } else {
                        Err(format!(
                            "{updated} of {wanted} pods updated, {ready} available"
                        ))
                    }
                }
                other => Err(format!(
                    "kind `{other}` has no rollout; wait for a condition instead"
                )),
            }
        }
    }
}

/// Which log lines [`logs`] returns.
#[derive(Default)]
pub struct LogFilter {
    /// The container.
    pub container: Option<String>,
    /// Only the last lines.
    pub tail_lines: Option<u32>,
    /// Only recent lines.
    pub since_seconds: Option<u32>,
}

/// A pod's logs, at most [`OUTPUT_CAP`] bytes.
pub async fn logs(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    filter: &LogFilter,
) -> Result<String, WitError> {
    let params = LogParams {
        container: filter.container.clone(),
        tail_lines: filter.tail_lines.map(i64::from),
        since_seconds: filter.since_seconds.map(i64::from),
        limit_bytes: Some(OUTPUT_CAP as i64),
        ..LogParams::default()
    };
    Api::<Pod>::namespaced(cluster.client.clone(), namespace)
        .logs(pod, &params)
        .await
        .map_err(|e| api_error(&format!("reading the logs of pod/{pod}"), e))
}

/// Output collected from a stream, kept when the command times out.
#[derive(Default)]
struct Collected {
    bytes: Vec<u8>,
    truncated: bool,
}

async fn collect(mut stream: impl AsyncRead + Unpin, into: Arc<Mutex<Collected>>) {
    let mut buf = vec![0u8; 16 * 1024];
    // Keep reading past the cap, so a chatty command never blocks on a
    // full pipe.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut collected = lock(&into);
        let room = OUTPUT_CAP.saturating_sub(collected.bytes.len());
        collected.bytes.extend_from_slice(&buf[..n.min(room)]);
        collected.truncated |= n > room;
    }
}

/// A command to run in a pod.
pub struct PodCommand<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod.
    pub pod: &'a str,
    /// The container; the only one when absent.
    pub container: Option<&'a str>,
    /// Program and arguments.
    pub command: &'a [String],
    /// Bytes for standard input.
    pub stdin: Option<&'a [u8]>,
    /// Time limit.
    pub timeout: Duration,
}

/// Run a command in a pod through the API server's exec subresource.
pub async fn exec(cluster: &Cluster, run: &PodCommand<'_>) -> Result<ProcessOutput, WitError> {
    if run.command.is_empty() {
        return Err(WitError::InvalidInput(
            "the command is empty; expected a program and its arguments".into(),
        ));
    }
    let mut params = AttachParams::default()
        .stdin(run.stdin.is_some())
        .stdout(true)
        .stderr(true);
    if let Some(container) = run.container {
        params = params.container(container);
    }
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), run.namespace);
    let mut attached = pods
        .exec(run.pod, run.command.to_vec(), &params)
        .await
        .map_err(|e| api_error(&format!("exec in pod/{}", run.pod), e))?;
    let stdout = Arc::new(Mutex::new(Collected::default()));
    let stderr = Arc::new(Mutex::new(Collected::default()));
    let mut readers = Vec::new();
    if let Some(stream) = attached.stdout() {
        readers.push(tokio::spawn(collect(stream, stdout.clone())));
    }
    if let Some(stream) = attached.stderr() {
        readers.push(tokio::spawn(collect(stream, stderr.clone())));
    }
    // Closing stdin closes the whole stream on API servers that speak only
    // the v4 exec protocol (before Kubernetes 1.30), losing the exit
    // status; so stdin stays open until the command is done.
    let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
    if let (Some(bytes), Some(mut writer)) = (run.stdin, attached.stdin()) {
        let bytes = bytes.to_vec();
        tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            let _ = writer.flush().await;
            let _ = finished_rx.await;
        });
    }
    let status = attached.take_status();
    let finished = tokio::time::timeout(run.timeout, async {
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        for reader in readers {
            let _ = reader.await;
        }
        status
    })
    .await;
    let _ = done.send(());
    let timed_out = finished.is_err();
    if timed_out {
        attached.abort();
    }
    let take = |c: &Arc<Mutex<Collected>>| {
        let mut c = lock(c);
        (std::mem::take(&mut c.bytes), c.truncated)
    };
    let (out, out_cut) = take(&stdout);
    let (err, err_cut) = take(&stderr);
    let exit_code =
        match finished {
            Ok(Some(status)) => Some(exit_code(&status).map_err(|message| {
                WitError::Failed(format!("exec in pod/{}: {message}", run.pod))
            })?),
            Ok(None) | Err(_) => None,
        };
    Ok(ProcessOutput {
        exit_code,
        stdout: out,
        stderr: err,
        truncated: out_cut || err_cut,
        timed_out,
    })
}

/// The exit code an exec's final status reports, or the failure that kept
/// the command from running.
pub fn exit_code(status: &ExecStatus) -> Result<i32, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|details| details.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref()?.parse::<i32>().ok())
        });
    match code {
        Some(code) => Ok(code),
        None => Err(status
            .message
            .clone()
            .unwrap_or_else(|| "the command failed without a message".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_is_complete_only_when_every_replica_is_updated_and_available() {
        let deployment = |updated: i64, available: i64, observed: i64| {
            json!({
                "kind": "Deployment",
                "metadata": {"generation": 2},
                "spec": {"replicas": 2},
                "status": {"observedGeneration": observed, "replicas": 2,
                           "updatedReplicas": updated, "availableReplicas": available}
            })
        };
        assert!(holds(&Until::RolloutComplete, &deployment(2, 2, 2)).is_ok());
        assert!(
            holds(&Until::RolloutComplete, &deployment(1, 2, 2))
                .unwrap_err()
                .contains("1 of 2 replicas updated")
        );
        assert!(
            holds(&Until::RolloutComplete, &deployment(2, 2, 1))
                .unwrap_err()
                .contains("not seen the latest spec")
        );
        let pod = json!({"kind": "Pod", "status": {"conditions": [{"type": "Ready", "status": "False", "message": "containers not ready"}]}});
        assert!(
            holds(&Until::RolloutComplete, &pod)
                .unwrap_err()
                .contains("has no rollout")
        );
        assert!(
            holds(&Until::Condition("Ready".into()), &pod)
                .unwrap_err()
                .contains("containers not ready")
        );
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(holds(&Until::Condition("Ready".into()), &ready).is_ok());
    }

    #[test]
    fn exec_status_gives_the_exit_code_or_the_failure() {
        let status = |value: Value| serde_json::from_value::<ExecStatus>(value).unwrap();
        assert_eq!(exit_code(&status(json!({"status": "Success"}))), Ok(0));
        let failed = status(json!({
            "status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(&failed), Ok(3));
        let not_run = status(json!({"status": "Failure", "message": "executable file not found"}));
        assert_eq!(
            exit_code(&not_run),
            Err("executable file not found".to_string())
        );
    }
}
