//! The one wasmtime engine: component model, async, epoch interruption
//! driven by a ticker thread, pooling allocator, and a compiled-component
//! cache on disk.

use std::time::Duration;

use anyhow::Context;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::CompileCache;

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

/// Compiles components, reusing native code from the compile cache when
/// this berth compiled the same bytes before.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache: Option<CompileCache>,
}

impl Compiler {
    /// A compiler keeping native code in `cache` (none: always compile).
    pub fn new(engine: Engine, cache: Option<CompileCache>) -> Self {
        Self { engine, cache }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile `bytes` (or load their cached compilation). Returns the
    /// component and whether the cache was used.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<(Component, bool)> {
        check_header(bytes)?;
        let Some(cache) = &self.cache else {
            return Ok((
                Component::new(&self.engine, bytes).map_err(anyhow::Error::from)?,
                false,
            ));
        };
        let name = CompileCache::entry_name(&self.engine, bytes);
        if let Some(component) = cache.load(&self.engine, &name) {
            return Ok((component, true));
        }
        let native = self
            .engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)?;
        if let Err(err) = cache.store(&name, &native) {
            tracing::warn!("could not cache a compiled plugin: {err:#}");
        }
        // SAFETY: `native` was produced by this engine just above.
        let component = unsafe { Component::deserialize(&self.engine, &native) }
            .map_err(anyhow::Error::from)?;
        Ok((component, false))
    }
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
