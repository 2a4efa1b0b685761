//! The memory limit of one plugin store, which is part of the store's data.

use wasmtime::ResourceLimiter;

/// Memory and instance limits of one store; remembers whether the plugin
/// hit its memory limit, so the failure can be reported as such.
pub struct CallLimiter {
    memory_bytes: usize,
    /// Set when a memory grow was refused.
    pub memory_exceeded: bool,
}

impl CallLimiter {
    /// At most `memory_bytes` of linear memory.
    pub fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_exceeded: false,
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            // Trap instead of returning -1: the guest cannot recover anyway
            // and a trap ends the call at once.
            wasmtime::bail!(
                "plugin memory limit of {} MiB reached",
                self.memory_bytes >> 20
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }
}
