//! Warm pools of sandboxes, created ahead of the runs that need them so a
//! sandboxed `run_<language>` skips the backend's create step. A pooled
//! sandbox serves one run and is destroyed afterwards like any other; the
//! pool refills in the background. Pools are active only while berth
//! serves, so a one-off `berth call` never creates sandboxes it would not
//! use.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::contract::bindings::shared::berth::plugin::workload_types::SandboxSpec;
use crate::contract::sink::{CallSink, Unattended};
use crate::runtime::plugin::Backend;

/// Lifetime a backend gives a pooled sandbox: it removes it on its own
/// after this even when berth is gone.
pub const POOL_TTL_SECS: u64 = 3600;

/// A pooled sandbox older than this is replaced rather than used, so no
/// run starts in one about to expire.
const MAX_AGE: Duration = Duration::from_secs(POOL_TTL_SECS / 2);

struct Entry {
    id: String,
    created: Instant,
}

/// The sandboxes kept for one backend and sandbox spec.
struct Pool {
    backend: String,
    spec: SandboxSpec,
    size: usize,
    ready: VecDeque<Entry>,
    creating: usize,
}

/// Every pool of one host.
#[derive(Default)]
pub struct SandboxPools {
    pools: Mutex<HashMap<String, Pool>>,
    active: AtomicBool,
    /// Sandboxes being destroyed in the background right now.
    destroying: Arc<AtomicUsize>,
}

/// Longest [`SandboxPools::drain`] waits for background destroys.
const DRAIN_WAIT: Duration = Duration::from_secs(60);

/// The spec a pool creates its sandboxes with: the run's, with the pool's
/// own lifetime.
fn pooled(spec: &SandboxSpec) -> SandboxSpec {
    SandboxSpec {
        ttl_seconds: Some(POOL_TTL_SECS),
        ..spec.clone()
    }
}

/// Runs that may share one pool: same backend and same sandbox, whatever
/// their time limits.
fn pool_key(backend: &str, spec: &SandboxSpec) -> String {
    format!("{backend}\n{:?}", pooled(spec))
}

impl SandboxPools {
    fn pools(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pool>> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start keeping pools: from now on they are filled and refilled.
    pub fn activate(&self) {
        self.active.store(true, Ordering::SeqCst);
    }

    /// A ready sandbox of `backend` for `spec`, if its pool (of `size`)
    /// holds one; the pool is refilled either way.
    pub fn take(
        self: &Arc<Self>,
        backend: &Backend,
        spec: &SandboxSpec,
        size: usize,
    ) -> Option<String> {
        if size == 0 || !self.active.load(Ordering::SeqCst) {
            return None;
        }
        let taken = {
            let mut pools = self.pools();
            let mut taken = None;
            if let Some(pool) = pools.get_mut(&pool_key(backend.name(), spec)) {
                while let Some(entry) = pool.ready.pop_front() {
                    if entry.created.elapsed() < MAX_AGE {
                        taken = Some(entry.id);
                        break;
                    }
                    self.destroy_later(backend.clone(), entry.id);
                }
            }
            taken
        };
        self.fill(backend, spec, size);
        taken
    }

    /// Create sandboxes in the background until the pool of `backend` for
    /// `spec` holds (or is creating) `size`.
    pub fn fill(self: &Arc<Self>, backend: &Backend, spec: &SandboxSpec, size: usize) {
        if !self.active.load(Ordering::SeqCst) {
            return;
        }
        let key = pool_key(backend.name(), spec);
        let missing = {
            let mut pools = self.pools();
            let pool = pools.entry(key.clone()).or_insert_with(|| Pool {
                backend: backend.name().to_string(),
                spec: pooled(spec),
                size,
                ready: VecDeque::new(),
                creating: 0,
            });
            pool.size = size;
            let missing = size.saturating_sub(pool.ready.len() + pool.creating);
            pool.creating += missing;
            missing
        };
        for _ in 0..missing {
            let pools = self.clone();
            let backend = backend.clone();
            let key = key.clone();
            let spec = pooled(spec);
            tokio::spawn(async move {
                let sink: Arc<dyn CallSink> = Arc::new(Unattended);
                let created = backend.sandbox_create(&spec, sink).await;
                let mut all = pools.pools();
                let Some(pool) = all.get_mut(&key) else {
                    return;
                };
                match created {
                    Ok(id) if pools.active.load(Ordering::SeqCst) => pool.ready.push_back(Entry {
                        id,
                        created: Instant::now(),
                    }),
                    // Drained meanwhile. Counted as destroying before it stops
                    // counting as creating, so a drain never sees neither.
                    Ok(id) => pools.destroy_later(backend.clone(), id),
                    Err(err) => tracing::warn!(
                        backend = backend.name(),
                        "creating a pooled sandbox failed: {err}"
                    ),
                }
                pool.creating -= 1;
            });
        }
    }

    /// Replace pooled sandboxes that are too old and top every pool up;
    /// `backend` finds a loaded backend by name.
    pub fn refresh(self: &Arc<Self>, backend: impl Fn(&str) -> Option<Backend>) {
        let pools: Vec<(String, SandboxSpec, usize, Vec<String>)> = self
            .pools()
            .values_mut()
            .map(|pool| {
                let (old, fresh) = pool
                    .ready
                    .drain(..)
                    .partition::<VecDeque<_>, _>(|e| e.created.elapsed() >= MAX_AGE);
                pool.ready = fresh;
                let old = old.into_iter().map(|e| e.id).collect();
                (pool.backend.clone(), pool.spec.clone(), pool.size, old)
            })
            .collect();
        for (name, spec, size, old) in pools {
            let Some(plugin) = backend(&name) else {
                continue;
            };
            for id in old {
                self.destroy_later(plugin.clone(), id);
            }
            self.fill(&plugin, &spec, size);
        }
    }

    /// Stop keeping pools, destroy every pooled sandbox and wait for the
    /// sandboxes of finished runs to be gone.
    pub async fn drain(&self, backend: impl Fn(&str) -> Option<Backend>) {
        self.active.store(false, Ordering::SeqCst);
        let pooled: Vec<(String, String)> = self
            .pools()
            .values_mut()
            .flat_map(|pool| {
                let name = pool.backend.clone();
                pool.ready.drain(..).map(move |e| (name.clone(), e.id))
            })
            .collect();
        let destroys = pooled.into_iter().filter_map(|(name, id)| {
            let plugin = backend(&name)?;
            Some(async move { destroy(&plugin, &id).await })
        });
        futures::future::join_all(destroys).await;
        // A sandbox still being created is destroyed once it exists.
        let busy = || {
            self.destroying.load(Ordering::SeqCst) > 0
                || self.pools().values().any(|pool| pool.creating > 0)
        };
        let deadline = Instant::now() + DRAIN_WAIT;
        while busy() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many sandboxes are pooled and ready now.
    pub fn ready_count(&self) -> usize {
        self.pools().values().map(|p| p.ready.len()).sum()
    }

    /// Destroy sandbox `id` of `backend` in the background;
    /// [`SandboxPools::drain`] waits for it.
    pub fn destroy_later(&self, backend: Backend, id: String) {
        let destroying = self.destroying.clone();
        destroying.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            destroy(&backend, &id).await;
            destroying.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn destroy(backend: &Backend, id: &str) {
    if let Err(err) = backend.sandbox_destroy(id, Arc::new(Unattended)).await {
        tracing::warn!(sandbox = %id, "destroying the sandbox failed (the reaper will retry): {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ttl: Option<u64>, network: bool) -> SandboxSpec {
        SandboxSpec {
            language: "python".into(),
            image: Some("img".into()),
            network,
            ttl_seconds: ttl,
            mounts: Vec::new(),
        }
    }

    #[test]
    fn runs_with_different_time_limits_share_a_pool_but_not_other_specs() {
        assert_eq!(
            pool_key("podman", &spec(Some(60), false)),
            pool_key("podman", &spec(Some(900), false))
        );
        assert_ne!(
            pool_key("podman", &spec(None, false)),
            pool_key("podman", &spec(None, true))
        );
        assert_ne!(
            pool_key("podman", &spec(None, false)),
            pool_key("k8s", &spec(None, false))
        );
        assert_eq!(
            pooled(&spec(Some(5), false)).ttl_seconds,
            Some(POOL_TTL_SECS)
        );
    }
}
