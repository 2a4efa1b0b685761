//! Waiting until an object holds a condition (exists, is deleted, has
//! rolled out, reports a condition).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Kind, MAX_WAIT, api, to_json};
use crate::contract::bindings::types::Error as WitError;
use crate::sys::kube::{Cluster, api_error};

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
