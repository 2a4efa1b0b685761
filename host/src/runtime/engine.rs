//! The one wasmtime engine: component model, async, epoch interruption
//! driven by a ticker thread, pooling allocator, and a compiled-component
//! cache on disk.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; CPU budgets are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each linear memory and table reset in place, not returned to the
/// kernel, when a call ends.
const KEEP_RESIDENT: usize = 1 << 20;

/// Largest linear memory any plugin may be configured with.
pub const MAX_PLUGIN_MEMORY: usize = 4 << 30;

/// Build the engine and start its epoch ticker.
pub fn build() -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .parallel_compilation(true);
    let mut pool = PoolingAllocationConfig::new();
    // A Rust component holds a handful of core instances, tables and one
    // memory; these counts bound how many calls can be in flight at once.
    pool.total_component_instances(512)
        .total_core_instances(4096)
        .total_memories(512)
        .total_tables(4096)
        .total_stacks(512)
        .max_memory_size(MAX_PLUGIN_MEMORY)
        .max_unused_warm_slots(64)
        // Reset the first MiB of a finished call's memory (and its tables)
        // in place rather than with `madvise`: a small plugin's next call
        // finds its pages resident, and no call pays the TLB shootdown an
        // `madvise` sends to every core. Where the kernel offers
        // PAGEMAP_SCAN (6.7+) only the pages the call dirtied are reset. At
        // most the warm slots above stay resident: 64 MiB.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // What a call dirtied beyond that goes back to the kernel at once
        // (no batched decommits): a plugin that took 256 MiB must not keep
        // it resident after its call.
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")?;
    start_ticker(&engine);
    Ok(engine)
}

fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("berth-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// Compiles components, reusing native code cached on disk when the same
/// bytes were compiled by a compatible engine before.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache_dir: Option<PathBuf>,
}

impl Compiler {
    /// A compiler caching in `cache_dir` (none: always compile).
    pub fn new(engine: Engine, cache_dir: Option<PathBuf>) -> Self {
        Self { engine, cache_dir }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn cache_path(&self, bytes: &[u8]) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut compat);
        let engine_key = std::hash::Hasher::finish(&compat);
        Some(dir.join(format!(
            "{}-{engine_key:016x}.cwasm",
            hex::encode(hasher.finalize())
        )))
    }

    /// Compile `bytes` (or load their cached compilation). Returns the
    /// component and whether the cache was used.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<(Component, bool)> {
        check_header(bytes)?;
        let cached = self.cache_path(bytes);
        if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the name),
            // into berth's own data directory.
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(component) => return Ok((component, true)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {err}")
                }
            }
        }
        let Some(path) = cached else {
            return Ok((
                Component::new(&self.engine, bytes).map_err(anyhow::Error::from)?,
                false,
            ));
        };
        let native = self
            .engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)?;
        if let Err(err) = write_atomically(&path, &native) {
            tracing::warn!(path = %path.display(), "could not cache compiled plugin: {err:#}");
        }
        // SAFETY: `native` was produced by this engine just above.
        let component = unsafe { Component::deserialize(&self.engine, &native) }
            .map_err(anyhow::Error::from)?;
        Ok((component, false))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has no parent")?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path)?;
    Ok(())
}

/// Refuse bytes that are not a component before wasmtime parses them, in
/// one line: not WebAssembly at all, or a core module rather than a
/// component.
pub fn check_header(bytes: &[u8]) -> anyhow::Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    const COMPONENT_LAYER: [u8; 2] = [0x01, 0x00];
    if !bytes.starts_with(MAGIC) {
        anyhow::bail!(
            "not a valid WebAssembly component: not a WebAssembly file at all (it does not start with `\\0asm`)"
        );
    }
    if bytes.get(6..8) != Some(&COMPONENT_LAYER[..]) {
        anyhow::bail!(
            "not a valid WebAssembly component: a core module; build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_are_not_a_component_are_named_in_one_line() {
        let not_wasm = check_header(b"#!/bin/sh\n").unwrap_err().to_string();
        assert!(
            not_wasm.contains("not a WebAssembly file at all"),
            "{not_wasm}"
        );
        let core = check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(core.contains("a core module"), "{core}");
        assert!(!not_wasm.contains('\n') && !core.contains('\n'));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
