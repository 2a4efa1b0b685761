//! Sessions: a named workspace that `run_<language>` keeps across calls
//! (files the program wrote, build output), removed when idle past the TTL
//! or stopped. They live on disk, so they survive a host restart.
//! The `list_sessions` and `stop_session` host tools manage them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::RunServices;
use crate::contract::bindings::types::Error as WitError;

/// File in a session directory that describes it; written last.
const RECORD: &str = ".berth-session.json";

/// What a session's record holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionInfo {
    /// Its name.
    pub name: String,
    /// The language it was opened for.
    pub language: String,
    /// When it was created (Unix seconds).
    pub created: u64,
    /// When a call last used it (Unix seconds).
    pub last_used: u64,
}

/// A session held by one call; other calls of the same session wait.
pub struct SessionLease {
    dir: PathBuf,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl SessionLease {
    /// The session's workspace.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn valid_name(name: &str) -> bool {
    crate::runtime::registry::is_valid_tool_name(name)
}

fn read(dir: &Path) -> Option<SessionInfo> {
    serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
}

fn write(dir: &Path, info: &SessionInfo) -> Result<(), WitError> {
    let bytes = serde_json::to_vec(info).map_err(|e| WitError::Failed(e.to_string()))?;
    std::fs::write(dir.join(RECORD), bytes)
        .map_err(|e| WitError::Failed(format!("recording session `{}`: {e}", info.name)))
}

fn lock_for(runs: &RunServices, name: &str) -> Arc<tokio::sync::Mutex<()>> {
    runs.session_locks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// Open (creating if needed) session `name` for `language`, waiting for any
/// other call using it.
pub async fn open(
    runs: &RunServices,
    name: &str,
    language: &str,
) -> Result<SessionLease, WitError> {
    if !valid_name(name) {
        return Err(WitError::InvalidInput(format!(
            "session name `{name}` must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    sweep(runs);
    let guard = lock_for(runs, name).lock_owned().await;
    let dir = runs.sessions_root.join(name);
    let info = match read(&dir) {
        Some(info) if info.language != language => {
            return Err(WitError::InvalidInput(format!(
                "session `{name}` belongs to {}; use another session name for {language}",
                info.language
            )));
        }
        Some(info) => SessionInfo {
            last_used: now(),
            ..info
        },
        None => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| WitError::Failed(format!("creating session `{name}`: {e}")))?;
            SessionInfo {
                name: name.to_string(),
                language: language.to_string(),
                created: now(),
                last_used: now(),
            }
        }
    };
    write(&dir, &info)?;
    Ok(SessionLease { dir, _guard: guard })
}

/// Every session, by name.
pub fn list(runs: &RunServices) -> Vec<SessionInfo> {
    let Ok(entries) = std::fs::read_dir(&runs.sessions_root) else {
        return Vec::new();
    };
    let mut sessions: Vec<SessionInfo> =
        entries.flatten().filter_map(|e| read(&e.path())).collect();
    sessions.sort_by(|a, b| a.name.cmp(&b.name));
    sessions
}

/// Remove session `name`; `not-found` when there is none.
pub async fn stop(runs: &RunServices, name: &str) -> Result<(), WitError> {
    if !valid_name(name) {
        return Err(WitError::InvalidInput(format!(
            "session name `{name}` must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
        )));
    }
    let _guard = lock_for(runs, name).lock_owned().await;
    let dir = runs.sessions_root.join(name);
    if read(&dir).is_none() {
        return Err(WitError::NotFound(format!(
            "session `{name}`; list_sessions shows the open ones"
        )));
    }
    remove(&dir).map_err(|e| WitError::Failed(format!("removing session `{name}`: {e}")))
}

fn remove(dir: &Path) -> std::io::Result<()> {
    // Drop the record first: a half-removed session is then never reused.
    let _ = std::fs::remove_file(dir.join(RECORD));
    std::fs::remove_dir_all(dir)
}

/// Remove sessions idle longer than the TTL, and directories without a
/// record. Sessions in use are skipped.
pub fn sweep(runs: &RunServices) -> usize {
    let Ok(entries) = std::fs::read_dir(&runs.sessions_root) else {
        return 0;
    };
    let ttl = Duration::from_secs(runs.config.session_idle_secs).as_secs();
    let mut removed = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let expired = match read(&dir) {
            Some(info) => now().saturating_sub(info.last_used) > ttl,
            None => true,
        };
        if !expired {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let lock = lock_for(runs, &name);
        let Ok(_guard) = lock.try_lock() else {
            continue;
        };
        if remove(&dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(dir: &Path, idle_secs: u64) -> RunServices {
        let config = crate::runs::config::RunsConfig {
            session_idle_secs: idle_secs,
            cgroups: false,
            ..Default::default()
        };
        RunServices::new(dir, &config)
    }

    #[tokio::test]
    async fn a_session_keeps_its_files_across_opens_and_restarts() {
        let root = tempfile::tempdir().unwrap();
        let first = runs(root.path(), 3600);
        let lease = open(&first, "s1", "python").await.unwrap();
        std::fs::write(lease.dir().join("state.txt"), "kept").unwrap();
        drop(lease);
        drop(first);
        let restarted = runs(root.path(), 3600);
        let lease = open(&restarted, "s1", "python").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(lease.dir().join("state.txt")).unwrap(),
            "kept"
        );
        assert_eq!(list(&restarted).len(), 1);
    }

    #[tokio::test]
    async fn sessions_are_per_language_and_names_are_checked() {
        let root = tempfile::tempdir().unwrap();
        let runs = runs(root.path(), 3600);
        drop(open(&runs, "s", "python").await.unwrap());
        assert!(matches!(
            open(&runs, "s", "node").await,
            Err(WitError::InvalidInput(_))
        ));
        assert!(matches!(
            open(&runs, "../x", "node").await,
            Err(WitError::InvalidInput(_))
        ));
    }

    #[tokio::test]
    async fn stop_removes_and_unknown_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        let runs = runs(root.path(), 3600);
        let dir = open(&runs, "gone", "python")
            .await
            .unwrap()
            .dir()
            .to_path_buf();
        stop(&runs, "gone").await.unwrap();
        assert!(!dir.exists());
        assert!(matches!(
            stop(&runs, "gone").await,
            Err(WitError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn idle_sessions_are_swept_but_not_while_in_use() {
        let root = tempfile::tempdir().unwrap();
        let runs = runs(root.path(), 0);
        let held = open(&runs, "busy", "python").await.unwrap();
        drop(open(&runs, "idle", "python").await.unwrap());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(sweep(&runs), 1);
        assert!(held.dir().exists());
        drop(held);
        assert_eq!(sweep(&runs), 1);
    }
}
