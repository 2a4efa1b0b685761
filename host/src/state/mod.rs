//! The embedded database: plugin key-value state, the audit log, and the
//! keys and digests berth checks its own files against. It
//! lives in one SQLite file under the data directory and survives restarts.
//! Audit entries reach it through [`audit::AuditLog`], off the call path.

pub mod audit;
mod integrity;
pub mod secrets;

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

/// Largest key a plugin may store, bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value a plugin may store, bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
}

/// One finished tool call, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Plugin that served the call.
    pub plugin: String,
    /// Tool called.
    pub tool: String,
    /// `ok`, `tool-error`, or an error category.
    pub outcome: String,
    /// How long it took.
    pub duration_ms: u64,
}

impl Database {
    /// Open (creating if needed) the database at `path`.
    ///
    /// The data directory is kept to berth's user (0700) and the database
    /// file to its owner (0600).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
            // A directory berth does not own (a mounted volume) keeps its
            // mode; the operator then answers for it.
            if let Err(err) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            {
                tracing::warn!(
                    "cannot restrict data directory {} to its owner: {err}",
                    dir.display()
                );
            }
        }
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting database {}", path.display()))?;
        Self::init(conn)
    }

    /// An in-memory database, for tests and `berth call` without a data dir.
    pub fn in_memory() -> anyhow::Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> anyhow::Result<Self> {
        // WAL keeps readers from blocking the writer; a busy timeout makes a
        // second berth process on the same file wait instead of failing.
        conn.pragma_update(None, "journal_mode", "WAL").ok();
        // In WAL mode NORMAL cannot corrupt the file; it only risks the last
        // commits on power loss, and saves an fsync on every audited call.
        conn.pragma_update(None, "synchronous", "NORMAL").ok();
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS plugin_state (
                 plugin TEXT NOT NULL,
                 key    TEXT NOT NULL,
                 value  BLOB NOT NULL,
                 PRIMARY KEY (plugin, key)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS audit (
                 id          INTEGER PRIMARY KEY,
                 at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                 plugin      TEXT NOT NULL,
                 tool        TEXT NOT NULL,
                 outcome     TEXT NOT NULL,
                 duration_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS host_keys (
                 name  TEXT PRIMARY KEY,
                 value BLOB NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS compile_cache (
                 file   TEXT PRIMARY KEY,
                 digest BLOB NOT NULL
             ) WITHOUT ROWID;",
        )
        .context("creating database schema")?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("database lock poisoned"))?;
        Ok(f(&conn)?)
    }

    /// The value of `key` for `plugin`.
    pub fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM plugin_state WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Set `key` for `plugin`.
    pub fn set(&self, plugin: &str, key: &str, value: &[u8]) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO plugin_state (plugin, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
                params![plugin, key, value],
            )
            .map(drop)
        })
    }

    /// Delete `key` for `plugin`; whether it existed.
    pub fn delete(&self, plugin: &str, key: &str) -> anyhow::Result<bool> {
        self.with(|c| {
            c.execute(
                "DELETE FROM plugin_state WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
            )
            .map(|n| n > 0)
        })
    }

    /// Keys of `plugin` starting with `prefix`, sorted.
    pub fn keys(&self, plugin: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT key FROM plugin_state WHERE plugin = ?1 AND substr(key, 1, length(?2)) = ?2 ORDER BY key",
            )?;
            stmt.query_map(params![plugin, prefix], |r| r.get(0))?.collect()
        })
    }

    /// Append `entries` to the audit log in one transaction.
    pub fn audit_batch(&self, entries: &[AuditEntry]) -> anyhow::Result<()> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("database lock poisoned"))?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (plugin, tool, outcome, duration_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for entry in entries {
                insert.execute(params![
                    entry.plugin,
                    entry.tool,
                    entry.outcome,
                    entry.duration_ms as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub fn recent_audit(&self, limit: usize) -> anyhow::Result<Vec<AuditEntry>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT plugin, tool, outcome, duration_ms FROM audit ORDER BY id DESC LIMIT ?1",
            )?;
            stmt.query_map(params![limit as i64], |r| {
                Ok(AuditEntry {
                    plugin: r.get(0)?,
                    tool: r.get(1)?,
                    outcome: r.get(2)?,
                    duration_ms: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_separate_per_plugin() {
        let db = Database::in_memory().unwrap();
        db.set("a", "k", b"1").unwrap();
        db.set("b", "k", b"2").unwrap();
        assert_eq!(db.get("a", "k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get("b", "k").unwrap().as_deref(), Some(&b"2"[..]));
        assert!(db.delete("a", "k").unwrap());
        assert!(!db.delete("a", "k").unwrap());
        assert_eq!(db.get("b", "k").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn keys_filter_by_prefix_literally() {
        let db = Database::in_memory().unwrap();
        for key in ["s/1", "s/2", "s%", "t/1"] {
            db.set("p", key, b"x").unwrap();
        }
        assert_eq!(db.keys("p", "s/").unwrap(), vec!["s/1", "s/2"]);
        assert_eq!(db.keys("p", "s%").unwrap(), vec!["s%"]);
        assert_eq!(db.keys("p", "").unwrap().len(), 4);
    }

    #[test]
    fn state_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        Database::open(&path).unwrap().set("p", "k", b"v").unwrap();
        assert_eq!(
            Database::open(&path)
                .unwrap()
                .get("p", "k")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn audit_lists_newest_first() {
        let db = Database::in_memory().unwrap();
        let entries: Vec<AuditEntry> = ["one", "two"]
            .iter()
            .enumerate()
            .map(|(i, tool)| AuditEntry {
                plugin: "p".into(),
                tool: tool.to_string(),
                outcome: "ok".into(),
                duration_ms: i as u64,
            })
            .collect();
        db.audit_batch(&entries).unwrap();
        let recent = db.recent_audit(10).unwrap();
        assert_eq!(recent[0].tool, "two");
        assert_eq!(recent.len(), 2);
    }
}
