//! What lets berth trust files it wrote earlier: secret keys kept in the
//! database, and the keyed digest of each compile-cache entry.

use anyhow::Context;
use rusqlite::{OptionalExtension, params};

use super::Database;

impl Database {
    /// The 32-byte secret key called `name`, created on first use. It never
    /// leaves the database (0600, in berth's 0700 data dir).
    pub fn host_key(&self, name: &str) -> anyhow::Result<[u8; 32]> {
        let fresh: [u8; 32] = crate::sys::random::secret_bytes("a database key")?;
        let stored: Vec<u8> = self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO host_keys (name, value) VALUES (?1, ?2)",
                params![name, &fresh[..]],
            )?;
            c.query_row(
                "SELECT value FROM host_keys WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
        })?;
        stored
            .try_into()
            .ok()
            .with_context(|| format!("database key `{name}` is not 32 bytes"))
    }

    /// The digest recorded when berth wrote compile-cache entry `file`.
    pub fn cache_digest(&self, file: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.query_row(
                "SELECT digest FROM compile_cache WHERE file = ?1",
                params![file],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// Record the digest of compile-cache entry `file`.
    pub fn set_cache_digest(&self, file: &str, digest: &[u8]) -> anyhow::Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO compile_cache (file, digest) VALUES (?1, ?2)",
                params![file, digest],
            )
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_and_kept() {
        let db = Database::in_memory().unwrap();
        let first = db.host_key("cache").unwrap();
        assert_eq!(db.host_key("cache").unwrap(), first);
        assert_ne!(db.host_key("other").unwrap(), first);
    }

    #[test]
    fn a_cache_digest_is_replaced_not_duplicated() {
        let db = Database::in_memory().unwrap();
        assert_eq!(db.cache_digest("a.cwasm").unwrap(), None);
        db.set_cache_digest("a.cwasm", b"one").unwrap();
        db.set_cache_digest("a.cwasm", b"two").unwrap();
        assert_eq!(db.cache_digest("a.cwasm").unwrap(), Some(b"two".to_vec()));
    }
}
