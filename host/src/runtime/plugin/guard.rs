//! Containment of one call into a plugin: a fresh store with the memory
//! limit and CPU budget set, the concurrency cap and wall timeout around
//! it, and every way the call can fail mapped to a [`CallError`].

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::capabilities::grants::Grants;
use crate::capabilities::{Caller, HostServices, HostState};
use crate::contract::bindings::types::Error as WitError;
use crate::contract::bindings::{backend, runner, template};
use crate::contract::error::CallError;
use crate::contract::sink::CallSink;
use crate::runtime::engine::EPOCH_TICK;
use crate::runtime::limits::LimitsConfig;

/// A component pre-linked for one world, instantiated per call into that
/// world's typed exports.
pub(super) trait Instantiate {
    /// The instance, with the world's typed exports.
    type Instance;

    /// A fresh instance in `store`.
    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send;
}

macro_rules! instantiate_world {
    ($($pre:ty => $instance:ty),*) => {$(
        impl Instantiate for $pre {
            type Instance = $instance;

            fn instantiate(
                &self,
                store: &mut Store<HostState>,
            ) -> impl Future<Output = wasmtime::Result<$instance>> + Send {
                self.instantiate_async(store)
            }
        }
    )*};
}

instantiate_world!(
    runner::RunnerPluginPre<HostState> => runner::RunnerPlugin,
    backend::BackendPluginPre<HostState> => backend::BackendPlugin,
    template::TemplatePluginPre<HostState> => template::TemplatePlugin
);

/// What every call into one plugin runs under, whichever world it is.
pub(super) struct Guard {
    pub(super) name: Arc<str>,
    pub(super) grants: Arc<Grants>,
    pub(super) limits: LimitsConfig,
    pub(super) config: Arc<str>,
    slots: tokio::sync::Semaphore,
    services: Arc<HostServices>,
    engine: Engine,
}

impl Guard {
    pub(super) fn new(
        name: &str,
        grants: Grants,
        limits: LimitsConfig,
        config: String,
        services: Arc<HostServices>,
        engine: Engine,
    ) -> Self {
        Guard {
            name: name.into(),
            grants: Arc::new(grants),
            limits,
            config: config.into(),
            slots: tokio::sync::Semaphore::new(limits.max_concurrent.max(1) as usize),
            services,
            engine,
        }
    }

    /// Run `f` on a fresh store, within the plugin's concurrency cap, a wall
    /// timeout of its limit or `at_least` (a long command inside a
    /// sandbox), and its CPU and memory limits. `f` instantiates the
    /// component itself, so instantiation counts against the same limits.
    pub(super) async fn run<R>(
        &self,
        at_least: Duration,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let wall = Duration::from_millis(self.limits.timeout_ms).max(at_least);
        let started = tokio::time::Instant::now();
        let timeout = || CallError::Timeout {
            plugin: self.name.to_string(),
            limit_ms: wall.as_millis() as u64,
        };
        let _permit = tokio::time::timeout(wall, self.slots.acquire())
            .await
            .map_err(|_| timeout())?
            .map_err(|_| CallError::Host {
                plugin: self.name.to_string(),
                reason: "plugin is unloading".into(),
            })?;
        let mut store = self.new_store(sink);
        let remaining = wall.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, f(&mut store)).await {
            Err(_) => Err(timeout()),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.classify(err, store.data())),
        }
    }

    /// Run `f` on a fresh instance of `pre`'s world, under [`Guard::run`];
    /// the error the guest returns becomes [`CallError::Plugin`].
    pub(super) async fn call<P: Instantiate, R>(
        &self,
        pre: &P,
        at_least: Duration,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(
            &P::Instance,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<R, CallError> {
        self.run(at_least, sink, async |store| {
            let instance = pre.instantiate(&mut *store).await?;
            f(&instance, store).await
        })
        .await?
        .map_err(CallError::Plugin)
    }

    fn new_store(&self, sink: Arc<dyn CallSink>) -> Store<HostState> {
        let caller = Caller {
            plugin: self.name.clone(),
            grants: self.grants.clone(),
            config: self.config.clone(),
        };
        let memory = (self.limits.memory_mib as usize) << 20;
        let state = HostState::new(caller, self.services.clone(), sink, memory);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        let budget = (self.limits.cpu_ms / EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(1);
        // Each tick spent in wasm is counted; the guest yields to other
        // tasks every tick and is interrupted once its budget is spent.
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            Ok(if state.cpu_ticks > budget {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store
    }

    fn classify(&self, err: wasmtime::Error, state: &HostState) -> CallError {
        let plugin = self.name.to_string();
        if state.limits.memory_exceeded {
            return CallError::MemoryLimit {
                plugin,
                limit_mib: self.limits.memory_mib,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => CallError::CpuLimit {
                plugin,
                limit_ms: self.limits.cpu_ms,
            },
            Some(trap) => {
                // A Rust guest prints its panic message to stderr before it
                // aborts; it is the most useful part of the report.
                let tail = state
                    .stderr_tail
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .trim()
                    .to_string();
                let reason = if tail.is_empty() {
                    trap.to_string()
                } else {
                    format!("{trap}; the plugin's last output: {tail}")
                };
                CallError::Crashed { plugin, reason }
            }
            None => CallError::Host {
                plugin,
                reason: format!("{err:#}"),
            },
        }
    }
}
