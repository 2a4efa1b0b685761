//! Kept sandboxes: a sandbox an agent creates once and runs several
//! snippets in, so files and installed packages carry over between runs.
//! A kept sandbox ends at its TTL, or when berth exits: it belongs to the
//! berth that created it. The `create_sandbox`, `list_sandboxes` and
//! `destroy_sandbox` host tools manage them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One kept sandbox.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeptSandbox {
    /// The backend's id of it.
    pub id: String,
    /// The backend that runs it.
    pub backend: String,
    /// The language whose runs it takes.
    pub language: String,
    /// When it ends (Unix seconds).
    pub expires_at: u64,
}

/// The lock the runs in one kept sandbox take turns on.
pub type Turn = Arc<tokio::sync::Mutex<()>>;

/// The kept sandboxes of one host, by id.
#[derive(Default)]
pub struct KeptSandboxes {
    sandboxes: Mutex<HashMap<String, (KeptSandbox, Turn)>>,
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl KeptSandboxes {
    fn sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, (KeptSandbox, Turn)>> {
        let mut sandboxes = self.sandboxes.lock().unwrap_or_else(|e| e.into_inner());
        // Past its TTL the backend has removed it (or will at its next reap).
        let now = now();
        sandboxes.retain(|_, (kept, _)| kept.expires_at > now);
        sandboxes
    }

    /// The kept sandbox `id` and the lock its runs take turns on.
    pub fn get(&self, id: &str) -> Option<(KeptSandbox, Turn)> {
        self.sandboxes().get(id).cloned()
    }

    /// Keep `kept`.
    pub fn insert(&self, kept: KeptSandbox) {
        self.sandboxes()
            .insert(kept.id.clone(), (kept, Arc::default()));
    }

    /// Forget sandbox `id`, returning it if it was kept.
    pub fn remove(&self, id: &str) -> Option<KeptSandbox> {
        self.sandboxes().remove(id).map(|(kept, _)| kept)
    }

    /// Forget every kept sandbox and return them, for removal at exit.
    pub fn drain(&self) -> Vec<KeptSandbox> {
        self.sandboxes()
            .drain()
            .map(|(_, (kept, _))| kept)
            .collect()
    }

    /// Every kept sandbox, by id.
    pub fn list(&self) -> Vec<KeptSandbox> {
        let mut all: Vec<KeptSandbox> = self.sandboxes().values().map(|(k, _)| k.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_sandboxes_are_forgotten() {
        let kept = KeptSandboxes::default();
        let sandbox = |id: &str, expires_at| KeptSandbox {
            id: id.into(),
            backend: "podman".into(),
            language: "python".into(),
            expires_at,
        };
        kept.insert(sandbox("live", now() + 60));
        kept.insert(sandbox("gone", now().saturating_sub(1)));
        assert!(kept.get("live").is_some());
        assert!(kept.get("gone").is_none());
        assert_eq!(kept.list().len(), 1);
        assert_eq!(kept.remove("live").map(|s| s.id), Some("live".into()));
        assert!(kept.list().is_empty());
    }
}
