//! Cached runner environments (virtualenvs, `node_modules`, compiled crates),
//! one directory per key. Each is built once under a per-key lock, marked
//! ready only when its setup succeeded, and evicted least-recently-used
//! beyond a size cap, never while a run is using it.
//!
//! Environments are built in place rather than in a temporary directory
//! that is renamed afterwards: virtualenvs and cargo target directories
//! record their own absolute paths and break when moved. The ready marker,
//! written last, gives the same guarantee: a directory without it is never
//! used, and is removed before the next attempt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// File that marks an environment as complete.
const READY: &str = ".berth-ready";

/// What the ready marker records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Marker {
    language: String,
    size_bytes: u64,
}

/// The environment cache under one directory.
pub struct EnvCache {
    root: PathBuf,
    cap_bytes: u64,
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
}

/// A ready environment, held for the length of a run: it cannot be evicted
/// or rebuilt meanwhile.
#[derive(Debug)]
pub struct EnvLease {
    /// The environment directory.
    pub dir: PathBuf,
    _guard: OwnedRwLockReadGuard<()>,
}

/// An environment being built, held exclusively. Dropped without
/// [`EnvBuild::finish`], it removes the partial directory.
pub struct EnvBuild {
    dir: PathBuf,
    language: String,
    guard: Option<OwnedRwLockWriteGuard<()>>,
}

/// What [`EnvCache::acquire`] found.
pub enum Acquired {
    /// The environment exists and is complete.
    Ready(EnvLease),
    /// The caller must build it.
    Build(EnvBuild),
}

/// One cached environment, for listing and eviction.
#[derive(Debug, Clone)]
pub struct CachedEnv {
    /// Its key.
    pub key: String,
    /// Its language.
    pub language: String,
    /// Bytes on disk, measured when it was built.
    pub size_bytes: u64,
    /// When a run last used it.
    pub last_used: SystemTime,
}

impl EnvCache {
    /// A cache under `root` holding at most about `cap_bytes`.
    pub fn new(root: PathBuf, cap_bytes: u64) -> Self {
        Self {
            root,
            cap_bytes,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Remove the leftovers of builds that never finished, and say how
    /// many. Only the data directory's owner may: another process's build
    /// in progress looks the same.
    pub fn remove_unfinished(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            if entry.path().is_dir()
                && !entry.path().join(READY).is_file()
                && std::fs::remove_dir_all(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    fn lock_for(&self, key: &str) -> Arc<RwLock<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// The environment for `key` (a hex digest), ready or to be built.
    /// Concurrent callers with the same key wait for one build.
    pub async fn acquire(&self, key: &str, language: &str) -> anyhow::Result<Acquired> {
        anyhow::ensure!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "environment key `{key}` is not a hex digest"
        );
        let dir = self.root.join(key);
        let lock = self.lock_for(key);
        let read = lock.clone().read_owned().await;
        if dir.join(READY).is_file() {
            touch(&dir);
            return Ok(Acquired::Ready(EnvLease { dir, _guard: read }));
        }
        drop(read);
        let write = lock.write_owned().await;
        if dir.join(READY).is_file() {
            touch(&dir);
            return Ok(Acquired::Ready(EnvLease {
                dir,
                _guard: write.downgrade(),
            }));
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| {
                format!("removing the unfinished environment {}", dir.display())
            })?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating environment {}", dir.display()))?;
        Ok(Acquired::Build(EnvBuild {
            dir,
            language: language.to_string(),
            guard: Some(write),
        }))
    }

    /// Every complete environment, least recently used first.
    pub fn list(&self) -> Vec<CachedEnv> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut envs: Vec<CachedEnv> = entries
            .flatten()
            .filter_map(|entry| {
                let marker_path = entry.path().join(READY);
                let marker: Marker =
                    serde_json::from_slice(&std::fs::read(&marker_path).ok()?).ok()?;
                let last_used = marker_path.metadata().ok()?.modified().ok()?;
                Some(CachedEnv {
                    key: entry.file_name().to_string_lossy().into_owned(),
                    language: marker.language,
                    size_bytes: marker.size_bytes,
                    last_used,
                })
            })
            .collect();
        envs.sort_by_key(|e| e.last_used);
        envs
    }

    /// Remove least-recently-used environments until the cache fits its
    /// cap, skipping any in use. Returns the keys removed.
    pub fn evict(&self) -> Vec<String> {
        let envs = self.list();
        let mut total: u64 = envs.iter().map(|e| e.size_bytes).sum();
        let mut removed = Vec::new();
        for env in envs {
            if total <= self.cap_bytes {
                break;
            }
            let lock = self.lock_for(&env.key);
            let Ok(_exclusive) = lock.try_write_owned() else {
                continue;
            };
            let dir = self.root.join(&env.key);
            // Unmark first, so a crash mid-removal leaves an unfinished
            // directory that is cleaned up, never a broken "ready" one.
            let _ = std::fs::remove_file(dir.join(READY));
            if std::fs::remove_dir_all(&dir).is_ok() {
                total = total.saturating_sub(env.size_bytes);
                removed.push(env.key);
            }
        }
        removed
    }
}

impl EnvBuild {
    /// The directory being built.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Mark the environment complete and keep using it.
    pub fn finish(mut self) -> anyhow::Result<EnvLease> {
        let marker = Marker {
            language: self.language.clone(),
            size_bytes: dir_size(&self.dir),
        };
        std::fs::write(self.dir.join(READY), serde_json::to_vec(&marker)?)
            .with_context(|| format!("marking {} ready", self.dir.display()))?;
        let guard = self.guard.take().expect("finish is called once");
        Ok(EnvLease {
            dir: self.dir.clone(),
            _guard: guard.downgrade(),
        })
    }
}

impl Drop for EnvBuild {
    fn drop(&mut self) {
        if self.guard.is_some() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn touch(dir: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(dir.join(READY)) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Bytes of regular files under `dir`, not following symlinks.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn build(cache: &EnvCache, key: &str, bytes: usize) -> EnvLease {
        match cache.acquire(key, "test").await.unwrap() {
            Acquired::Build(b) => {
                std::fs::write(b.dir().join("payload"), vec![0u8; bytes]).unwrap();
                b.finish().unwrap()
            }
            Acquired::Ready(_) => panic!("{key} was already built"),
        }
    }

    #[tokio::test]
    async fn a_finished_environment_is_reused() {
        let root = tempfile::tempdir().unwrap();
        let cache = EnvCache::new(root.path().to_path_buf(), u64::MAX);
        drop(build(&cache, "aa", 10).await);
        assert!(matches!(
            cache.acquire("aa", "test").await.unwrap(),
            Acquired::Ready(_)
        ));
    }

    #[tokio::test]
    async fn an_abandoned_build_leaves_nothing_and_is_retried() {
        let root = tempfile::tempdir().unwrap();
        let cache = EnvCache::new(root.path().to_path_buf(), u64::MAX);
        let Acquired::Build(b) = cache.acquire("bb", "test").await.unwrap() else {
            panic!("expected a build");
        };
        std::fs::write(b.dir().join("half"), "x").unwrap();
        drop(b);
        assert!(!root.path().join("bb").exists());
        assert!(matches!(
            cache.acquire("bb", "test").await.unwrap(),
            Acquired::Build(_)
        ));
    }

    #[tokio::test]
    async fn concurrent_callers_wait_for_one_build() {
        let root = tempfile::tempdir().unwrap();
        let cache = Arc::new(EnvCache::new(root.path().to_path_buf(), u64::MAX));
        let Acquired::Build(b) = cache.acquire("cc", "test").await.unwrap() else {
            panic!("expected a build");
        };
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                matches!(
                    cache.acquire("cc", "test").await.unwrap(),
                    Acquired::Ready(_)
                )
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second caller did not wait");
        drop(b.finish().unwrap());
        assert!(waiter.await.unwrap(), "the second caller rebuilt");
    }

    #[tokio::test]
    async fn eviction_removes_the_least_recently_used_and_spares_leases() {
        let root = tempfile::tempdir().unwrap();
        let cache = EnvCache::new(root.path().to_path_buf(), 1500);
        drop(build(&cache, "01", 1000).await);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let held = build(&cache, "02", 1000).await;
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(build(&cache, "03", 1000).await);
        // Two over the cap: the oldest goes, the held one is skipped, the
        // next goes.
        assert_eq!(cache.evict(), vec!["01".to_string(), "03".to_string()]);
        drop(held);
        let left: Vec<String> = cache.list().into_iter().map(|e| e.key).collect();
        assert_eq!(left, ["02"]);
    }

    #[test]
    fn unfinished_directories_are_removed_only_when_asked() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("dd")).unwrap();
        let cache = EnvCache::new(root.path().to_path_buf(), u64::MAX);
        assert!(root.path().join("dd").exists());
        assert_eq!(cache.remove_unfinished(), 1);
        assert!(!root.path().join("dd").exists());
    }

    #[tokio::test]
    async fn keys_must_be_hex() {
        let root = tempfile::tempdir().unwrap();
        let cache = EnvCache::new(root.path().to_path_buf(), u64::MAX);
        assert!(cache.acquire("../x", "test").await.is_err());
    }
}
