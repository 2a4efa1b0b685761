//! Calls waiting for the user's answer (the 2026-07-28 input-required
//! flow): parked by token, matched to the client's input responses, and
//! dropped after a while; plus the state every session of one server
//! shares.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::{ElicitResult, ElicitationAction, InputResponses};
use rmcp::service::SubscriptionSink;
use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::app::host::ToolCallError;
use crate::contract::bindings::shared::berth::plugin::context::ElicitAnswer;
use crate::contract::bindings::types::{Error as WitError, ToolOutput};
use crate::server::call::{self, Question};
use crate::server::tools::ToolCache;

/// How long a call waiting for an answer (2026-07-28 input-required) is kept.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// The key under which a pending call asks its question.
pub(super) const QUESTION_KEY: &str = "berth_elicitation";

pub(super) type CallTask = JoinHandle<Result<ToolOutput, ToolCallError>>;

/// A detached call waiting for the user's answer.
pub(super) struct Pending {
    pub(super) task: CallTask,
    pub(super) questions: mpsc::Receiver<Question>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<ElicitAnswer, WitError>>,
    pub(super) schema: serde_json::Value,
    pub(super) since: Instant,
}

/// State shared by every session of one server.
#[derive(Default)]
pub struct Shared {
    pub(super) peers: Mutex<Vec<Peer<RoleServer>>>,
    pub(super) subscriptions: Mutex<Vec<SubscriptionSink>>,
    pending: Mutex<HashMap<String, Pending>>,
    pub(super) tools: ToolCache,
}

impl Shared {
    /// Tell every connected client that the tool list changed.
    pub async fn notify_tools_changed(&self) {
        let peers: Vec<_> = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            let _ = peer.notify_tool_list_changed().await;
        }
        let sinks: Vec<_> = self
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for sink in sinks {
            let _ = sink.notify_tool_list_changed().await;
        }
    }

    pub(super) fn park(&self, pending: Pending) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        self.park_as(token.clone(), pending);
        token
    }

    pub(super) fn park_as(&self, token: String, pending: Pending) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, p| {
            let keep = p.since.elapsed() < PENDING_TTL;
            if !keep {
                p.task.abort();
            }
            keep
        });
        map.insert(token, pending);
    }

    pub(super) fn unpark(&self, token: &str) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token)
    }
}

/// The JSON Schema a question asks the user to fill in.
pub(super) fn requested_schema(question: &Question) -> serde_json::Value {
    serde_json::to_value(&question.params)
        .ok()
        .and_then(|v| v.get("requestedSchema").cloned())
        .unwrap_or_else(|| serde_json::json!({"type": "object"}))
}

/// The answer to a question among a client's input responses: the one under
/// our key, else the first elicitation result whose content fits the
/// requested schema, so clients that re-key or add entries still get through.
pub(super) fn pick_answer(
    responses: &InputResponses,
    schema: &serde_json::Value,
) -> Option<ElicitAnswer> {
    let ours = responses
        .get(QUESTION_KEY)
        .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok());
    if let Some(result) = ours {
        return Some(call::answer(result));
    }
    let validator = jsonschema::validator_for(schema).ok();
    let fits = |value: &serde_json::Value| -> Option<ElicitAnswer> {
        let result: ElicitResult = serde_json::from_value(value.clone()).ok()?;
        if matches!(result.action, ElicitationAction::Accept) {
            let content = result
                .content
                .clone()
                .unwrap_or_else(|| serde_json::json!({}));
            if validator.as_ref().is_some_and(|v| !v.is_valid(&content)) {
                return None;
            }
        }
        Some(call::answer(result))
    };
    responses.values().find_map(fits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn responses(entries: serde_json::Value) -> InputResponses {
        serde_json::from_value(entries).unwrap()
    }

    #[test]
    fn our_key_wins_even_when_the_content_does_not_fit() {
        let schema =
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
        let r = responses(json!({
            "other": {"action": "accept", "content": {"name": "x"}},
            QUESTION_KEY: {"action": "accept", "content": {"ok": true}},
        }));
        assert!(
            matches!(pick_answer(&r, &schema), Some(ElicitAnswer::Accept(j)) if j.contains("ok"))
        );
    }

    #[test]
    fn foreign_keys_are_matched_by_schema() {
        let schema =
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
        let r = responses(json!({
            "another_unexpected": {"action": "accept", "content": {"baz": 123}},
            "user_name": {"action": "accept", "content": {"name": "Alice"}},
        }));
        assert!(
            matches!(pick_answer(&r, &schema), Some(ElicitAnswer::Accept(j)) if j.contains("Alice"))
        );
        let none = responses(
            json!({"x": {"action": "accept", "content": {"baz": 1}}, "y": "not a result"}),
        );
        assert!(pick_answer(&none, &schema).is_none());
    }
}
