//! The compile cache: each component's native code, kept under the data
//! dir so a restart skips compilation. Loading native code runs it, so an
//! entry is used only when berth can show it wrote it: a regular file of
//! berth's user that no one else may touch, whose keyed digest (over its
//! name and content, the key and digest in the database) matches. Anything
//! else is deleted and compiled afresh.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::state::Database;

/// The database key the digests are made with.
const KEY_NAME: &str = "compile-cache";

/// Native code on disk, checked before it is loaded.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    db: Database,
    key: [u8; 32],
}

impl CompileCache {
    /// A cache in `dir` whose digests live in `db`.
    pub fn open(dir: PathBuf, db: Database) -> anyhow::Result<Self> {
        let key = db
            .host_key(KEY_NAME)
            .context("reading the compile-cache key")?;
        Ok(Self { dir, db, key })
    }

    /// The entry's file name for component `bytes`: its hash and the
    /// engine's compatibility hash, so another wasmtime never loads it.
    pub fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut compat);
        let engine_key = std::hash::Hasher::finish(&compat);
        format!(
            "{}-{engine_key:016x}.cwasm",
            hex::encode(Sha256::digest(bytes))
        )
    }

    fn mac(&self, name: &str, native: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(native);
        mac
    }

    /// The cached compilation in entry `name`, if there is a trustworthy
    /// one. An untrustworthy entry is logged and deleted.
    pub fn load(&self, engine: &Engine, name: &str) -> Option<Component> {
        let path = self.dir.join(name);
        match self.verified(engine, name, &path) {
            Ok(component) => component,
            Err(reason) => {
                tracing::warn!(path = %path.display(), "rejected compile-cache entry, recompiling: {reason:#}");
                if let Err(err) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), "could not delete it: {err}");
                }
                None
            }
        }
    }

    fn verified(
        &self,
        engine: &Engine,
        name: &str,
        path: &Path,
    ) -> anyhow::Result<Option<Component>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).context("reading its metadata"),
        };
        if !crate::sys::datadir::private_to_me(&meta) {
            anyhow::bail!(
                "not a regular file of berth's user with mode 0600 (uid {}, mode {:o})",
                std::os::unix::fs::MetadataExt::uid(&meta),
                std::os::unix::fs::MetadataExt::mode(&meta) & 0o7777
            );
        }
        let native = std::fs::read(path).context("reading it")?;
        let recorded = self
            .db
            .cache_digest(name)?
            .context("berth has no record of writing it")?;
        self.mac(name, &native)
            .verify_slice(&recorded)
            .ok()
            .context("its content is not what berth wrote")?;
        // SAFETY: these bytes are what this berth's `precompile_component`
        // wrote (the keyed digest above proves it) for an engine with the
        // same compatibility hash (it is in the name).
        let component = unsafe { Component::deserialize(engine, &native) }
            .map_err(anyhow::Error::from)
            .context("wasmtime refused it")?;
        Ok(Some(component))
    }

    /// Keep `native` in entry `name` for the next start.
    pub fn store(&self, name: &str, native: &[u8]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // NamedTempFile creates 0600; the rename makes the entry whole or absent.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, native)?;
        let digest = self.mac(name, native).finalize().into_bytes();
        self.db.set_cache_digest(name, &digest)?;
        tmp.persist(self.dir.join(name))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn setup() -> (tempfile::TempDir, Engine, CompileCache) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache =
            CompileCache::open(dir.path().join("cache"), Database::in_memory().unwrap()).unwrap();
        (dir, engine, cache)
    }

    fn name(engine: &Engine) -> String {
        CompileCache::entry_name(engine, EMPTY_COMPONENT)
    }

    fn entry(cache: &CompileCache, engine: &Engine) -> PathBuf {
        cache.dir.join(name(engine))
    }

    fn compile_and_store(cache: &CompileCache, engine: &Engine) {
        let native = engine.precompile_component(EMPTY_COMPONENT).unwrap();
        cache.store(&name(engine), &native).unwrap();
    }

    #[test]
    fn an_entry_berth_wrote_is_loaded() {
        let (_dir, engine, cache) = setup();
        assert!(cache.load(&engine, &name(&engine)).is_none());
        compile_and_store(&cache, &engine);
        assert!(cache.load(&engine, &name(&engine)).is_some());
    }

    #[test]
    fn a_changed_entry_is_rejected_and_deleted() {
        let (_dir, engine, cache) = setup();
        compile_and_store(&cache, &engine);
        let path = entry(&cache, &engine);
        let mut native = std::fs::read(&path).unwrap();
        let last = native.len() - 1;
        native[last] ^= 1;
        std::fs::write(&path, native).unwrap();
        assert!(cache.load(&engine, &name(&engine)).is_none());
        assert!(!path.exists(), "the rejected entry was kept");
    }

    #[test]
    fn an_entry_berth_never_recorded_is_rejected() {
        let (_dir, engine, cache) = setup();
        compile_and_store(&cache, &engine);
        // The same file seen by a berth with another database: a copy from
        // elsewhere.
        let stranger =
            CompileCache::open(cache.dir.clone(), Database::in_memory().unwrap()).unwrap();
        assert!(stranger.load(&engine, &name(&engine)).is_none());
    }

    #[test]
    fn an_entry_others_may_write_is_rejected() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, engine, cache) = setup();
        compile_and_store(&cache, &engine);
        let path = entry(&cache, &engine);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(cache.load(&engine, &name(&engine)).is_none());
    }
}
