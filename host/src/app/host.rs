//! The plugin host: engine, linker, services and the current registry, with
//! reload and validated tool calls. Transports (MCP, CLI) sit on top.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;
use wasmtime::component::Linker;

use crate::app::config::Config;
use crate::app::metrics::Metrics;
use crate::capabilities::{self, HostServices, HostState};
use crate::contract::bindings::types::Error as WitError;
use crate::contract::bindings::types::ToolOutput;
use crate::contract::error::CallError;
use crate::contract::sink::{CallSink, Unattended};
use crate::gateway::Gateway;
use crate::gateway::connect::Connector;
use crate::host_tools::run::RunTools;
use crate::host_tools::sandboxes::SandboxTools;
use crate::host_tools::sessions::SessionTools;
use crate::host_tools::templates::TemplateTools;
use crate::runs::RunServices;
use crate::runs::sessions;
use crate::runtime::cache::CompileCache;
use crate::runtime::engine::{self, Compiler};
use crate::runtime::host_tool::HostToolSet;
use crate::runtime::loader::{self, LoadStats};
use crate::runtime::plugin::Plugin;
use crate::runtime::registry::{LoadFailure, Owner, Registry};
use crate::state::audit::AuditLog;
use crate::state::secrets::SecretStore;
use crate::state::{AuditEntry, Database};
use crate::sys::datadir::DataDirLock;
use crate::sys::workspace;

/// How often backends are asked to reap what outlived its TTL.
const REAP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a tool call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ToolCallError {
    /// No served tool has this name.
    #[error("unknown tool `{0}`; list the available tools with tools/list")]
    UnknownTool(String),
    /// The arguments do not satisfy the tool's input schema.
    #[error("arguments of `{tool}` do not match its input schema: {problems}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// Every violation, with its JSON path.
        problems: String,
    },
    /// The plugin call failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// What a reload did.
#[derive(Debug, Clone, Default)]
pub struct ReloadOutcome {
    /// Whether the set of tools (names or schemas) changed.
    pub tools_changed: bool,
    /// Plugins loaded.
    pub plugins: usize,
    /// Plugins or sources that failed.
    pub failures: usize,
    /// Compile-cache statistics.
    pub stats: LoadStats,
}

/// The running plugin host.
pub struct PluginHost {
    config: Config,
    compiler: Compiler,
    linker: Linker<HostState>,
    services: Arc<HostServices>,
    runs: Arc<RunServices>,
    host_tools: Vec<Arc<dyn HostToolSet>>,
    gateway: Arc<Gateway>,
    registry: RwLock<Arc<Registry>>,
    generation: tokio::sync::watch::Sender<u64>,
    reload_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
    audit: AuditLog,
    /// Held while this host owns its data directory (it serves).
    owner: std::sync::Mutex<Option<DataDirLock>>,
}

impl PluginHost {
    /// Open the database, build the engine and load every plugin the config
    /// names: a host for one-off commands, which leaves the data
    /// directory's leftovers to its owner (see [`PluginHost::start_serving`]).
    pub async fn start(config: Config) -> anyhow::Result<Arc<Self>> {
        let db = Database::open(&config.database_path())?;
        let cache = CompileCache::open(config.cache_dir(), db.clone())?;
        Self::start_with_db(config, db, Some(cache)).await
    }

    /// Like [`PluginHost::start`], for a berth that serves: it takes the
    /// data directory for itself (a second one is refused), then clears
    /// what earlier runs left there and reaps their sandboxes.
    pub async fn start_serving(config: Config) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let host = Self::start(config).await?;
        host.take_ownership(lock).await;
        Ok(host)
    }

    /// Like [`PluginHost::start`], with a given database and compile cache
    /// (none: every plugin is compiled).
    pub async fn start_with_db(
        config: Config,
        db: Database,
        cache: Option<CompileCache>,
    ) -> anyhow::Result<Arc<Self>> {
        let engine = engine::build()?;
        let compiler = Compiler::new(engine.clone(), cache);
        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker).context("linking host functions")?;
        let workspace_root = config.data_dir.join("work");
        let runs = Arc::new(RunServices::new(&config.data_dir, &config.runs));
        let audit = AuditLog::start(db.clone()).context("starting the audit writer")?;
        let services = Arc::new(HostServices::new(
            db,
            config.process.clone(),
            workspace_root,
            config.kube.clone(),
        ));
        let secrets = SecretStore::new(&config.data_dir, config.secrets.clone());
        let gateway = Arc::new(Gateway::new(
            Connector {
                secrets: secrets.clone(),
                runs: runs.clone(),
                process: config.process.clone(),
                servers_root: config.data_dir.join("servers"),
                registry: std::sync::OnceLock::new(),
            },
            config.servers.clone(),
            config.limits,
        ));
        let host_tools: Vec<Arc<dyn HostToolSet>> = vec![
            Arc::new(RunTools::new(services.clone(), runs.clone())),
            Arc::new(SessionTools::new(runs.clone())),
            Arc::new(SandboxTools::new(
                runs.kept_sandboxes.clone(),
                config.runs.clone(),
            )),
            Arc::new(TemplateTools::new(Some(gateway.clone()), secrets)),
            gateway.clone(),
        ];
        let host = Arc::new(Self {
            config,
            compiler,
            linker,
            services,
            runs,
            host_tools,
            gateway,
            registry: RwLock::new(Arc::new(Registry::default())),
            generation: tokio::sync::watch::channel(0).0,
            reload_lock: tokio::sync::Mutex::new(()),
            metrics: Arc::default(),
            audit,
            owner: std::sync::Mutex::new(None),
        });
        host.reload().await;
        host.follow_gateway();
        Ok(host)
    }

    /// Rebuild the registry whenever an upstream server's tools change,
    /// for as long as the host lives; give the gateway the registry's
    /// backends to attach to workloads.
    fn follow_gateway(self: &Arc<Self>) {
        let (for_registry, for_refresh) = (Arc::downgrade(self), Arc::downgrade(self));
        self.gateway.join_host(
            Box::new(move || for_registry.upgrade().map(|host| host.registry())),
            Box::new(move || {
                let host = for_refresh.upgrade();
                Box::pin(async move {
                    if let Some(host) = host {
                        host.refresh().await;
                    }
                })
            }),
        );
        let mut changes = self.gateway.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(host) = weak.upgrade() else { break };
                host.refresh().await;
            }
        });
    }

    /// Ask the host's tool sets for their tools again, keeping the loaded
    /// plugins, and tell clients when the tool set changed.
    pub async fn refresh(&self) {
        let _one_at_a_time = self.reload_lock.lock().await;
        let current = self.registry();
        let registry = current.rebuild(&self.config.tools, &self.host_tools);
        for failure in &registry.failures()[current.plugin_failures()..] {
            tracing::warn!(origin = %failure.origin, "tool not served: {}", failure.reason);
        }
        let changed = tool_signature(&registry) != tool_signature(&current);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Own the data directory while `lock` is held: remove the workspaces,
    /// unfinished environments and idle sessions earlier runs left, reap
    /// every sandbox they left, and from now on reap expired ones.
    async fn take_ownership(self: &Arc<Self>, lock: DataDirLock) {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = Some(lock);
        let swept = workspace::sweep(&self.services.workspace_root);
        if swept > 0 {
            tracing::info!(swept, "removed workspaces left by an earlier run");
        }
        let unfinished = self.runs.envs.remove_unfinished();
        if unfinished > 0 {
            tracing::info!(
                unfinished,
                "removed environments whose build never finished"
            );
        }
        let expired = sessions::sweep(&self.runs);
        if expired > 0 {
            tracing::info!(expired, "removed idle run sessions");
        }
        // No run of this host is in flight yet, and no other berth serves
        // this data dir: every sandbox a backend holds for it is an orphan.
        self.reap(true).await;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(host) = weak.upgrade() else { break };
                host.reap(false).await;
                host.runs.fork_servers.sweep();
                let registry = host.registry();
                host.runs
                    .sandbox_pools
                    .refresh(|name| registry.backend(name).ok());
            }
        });
    }

    /// Keep warm what makes repeat calls fast, from now until
    /// [`PluginHost::shutdown`]: runners' fork servers, and the sandbox
    /// pools `[runs.sandbox_images.*] pool` asks for. Only a serving berth
    /// does: a one-off call would start servers and sandboxes nobody uses.
    pub fn keep_warm(&self) -> anyhow::Result<()> {
        self.gateway.start();
        self.runs.fork_servers.activate();
        let pools = &self.runs.sandbox_pools;
        pools.activate();
        let registry = self.registry();
        for (language, image) in &self.config.runs.sandbox_images {
            for (name, size) in &image.pool {
                let backend = registry
                    .backend(name)
                    .map_err(|e| anyhow::anyhow!("the warm pool for {language}: {e}"))?;
                let spec = self
                    .config
                    .runs
                    .sandbox_spec(language, 0)
                    .map_err(|e| anyhow::anyhow!("the warm pool for {language}: {e}"))?;
                pools.fill(&backend, &spec, *size);
            }
        }
        Ok(())
    }

    /// Stop keeping pools and remove the sandboxes in them and the kept
    /// ones, and commit every audit entry; for a berth that is about to
    /// exit.
    pub async fn shutdown(&self) {
        self.gateway.stop();
        let registry = self.registry();
        let kept = self.runs.kept_sandboxes.drain();
        let destroys = kept.into_iter().filter_map(|sandbox| {
            let backend = registry.backend(&sandbox.backend).ok()?;
            Some(async move {
                let sink: Arc<dyn CallSink> = Arc::new(Unattended);
                if let Err(err) = backend.sandbox_destroy(&sandbox.id, sink).await {
                    tracing::warn!(sandbox = %sandbox.id, "destroying a kept sandbox failed: {err}");
                }
            })
        });
        futures::future::join_all(destroys).await;
        self.runs
            .sandbox_pools
            .drain(|name| registry.backend(name).ok())
            .await;
        let audit = self.audit.clone();
        if tokio::task::spawn_blocking(move || audit.flush())
            .await
            .is_err()
        {
            tracing::warn!("the audit log could not be flushed before exit");
        }
    }

    /// Ask every backend to remove what outlived its TTL (and, with
    /// `all_sandboxes`, every sandbox).
    pub async fn reap(&self, all_sandboxes: bool) {
        let registry = self.registry();
        // Backends answer independently; one slow platform (an unreachable
        // cluster) must not hold up the others.
        let reaps = registry
            .plugins()
            .filter_map(|p| p.backend())
            .map(|backend| async move {
                let outcome = backend.reap(all_sandboxes).await;
                (backend, outcome)
            });
        for (backend, outcome) in futures::future::join_all(reaps).await {
            match outcome {
                Ok(0) => {}
                Ok(removed) => tracing::info!(
                    backend = backend.name(),
                    removed,
                    "reaped expired sandboxes and workloads"
                ),
                Err(CallError::Plugin(WitError::Unavailable(_))) => {}
                Err(err) => tracing::warn!(backend = backend.name(), "reaping failed: {err}"),
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Call metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Shared services (database, process caps).
    pub fn services(&self) -> &Arc<HostServices> {
        &self.services
    }

    /// What snippet runs share: environments, fork servers, pools, kept
    /// sandboxes and sessions.
    pub fn runs(&self) -> &Arc<RunServices> {
        &self.runs
    }

    /// A receiver that changes whenever a reload changes the tool set.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Load every plugin again and swap the registry. Calls already running
    /// finish on the plugins they started with.
    pub async fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = self.reload_lock.lock().await;
        let started = Instant::now();
        let (sources, mut failures) = loader::all_sources(&self.config);
        let (plugins, load_failures, stats) = loader::load(
            sources,
            &self.config,
            &self.compiler,
            &self.linker,
            &self.services,
        )
        .await;
        failures.extend(load_failures);
        let registry = Registry::build(plugins, failures, &self.config.tools, &self.host_tools);
        for failure in registry.failures() {
            tracing::error!(origin = %failure.origin, "plugin not loaded: {}", failure.reason);
        }
        for plugin in registry.plugins() {
            if plugin.refused.is_empty() {
                continue;
            }
            // A bundled plugin the operator has not configured gets what it
            // requests, except what only the operator can choose (a host
            // directory behind `read_dirs`): that is the expected default,
            // not a warning.
            if loader::on_bundled_default(&plugin.origin, plugin.name(), &self.config) {
                tracing::info!(plugin = plugin.name(), refused = ?plugin.refused, "optional capabilities left off until berth.toml grants them in [policy.NAME]");
            } else {
                tracing::warn!(plugin = plugin.name(), refused = ?plugin.refused, "requested capabilities not granted by policy");
            }
        }
        let outcome = ReloadOutcome {
            tools_changed: tool_signature(&registry) != tool_signature(&self.registry()),
            plugins: registry.plugins().count(),
            failures: registry.failures().len(),
            stats,
        };
        self.metrics.set_loaded(outcome.plugins, outcome.failures);
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
        if outcome.tools_changed {
            self.generation.send_modify(|g| *g += 1);
        }
        tracing::info!(
            plugins = outcome.plugins,
            failures = outcome.failures,
            cache_hits = stats.cache_hits,
            compiled = stats.compiled,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugins loaded"
        );
        outcome
    }

    /// Load `sources` with this host's engine and policy, without adding
    /// them to the registry (for `berth plugins check`).
    pub async fn load_sources(
        &self,
        sources: Vec<loader::Source>,
    ) -> (Vec<Plugin>, Vec<LoadFailure>) {
        let (plugins, failures, _) = loader::load(
            sources,
            &self.config,
            &self.compiler,
            &self.linker,
            &self.services,
        )
        .await;
        (plugins, failures)
    }

    /// Validate `arguments` and call `tool`, recording the outcome.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: Value,
        sink: Arc<dyn CallSink>,
    ) -> Result<ToolOutput, ToolCallError> {
        let registry = self.registry();
        let entry = registry
            .tool(tool)
            .ok_or_else(|| ToolCallError::UnknownTool(tool.to_string()))?
            .clone();
        entry
            .validate(&arguments)
            .map_err(|problems| ToolCallError::InvalidArguments {
                tool: tool.to_string(),
                problems,
            })?;
        let started = Instant::now();
        let result = match &entry.owner {
            Owner::Plugin(plugin) => plugin.call_tool(tool, &arguments.to_string(), sink).await,
            Owner::Host(set) => set.call(tool, arguments, registry, sink).await,
        };
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(output) if output.is_error => "tool-error",
            Ok(_) => "ok",
            Err(err) => err.category(),
        };
        self.metrics.record_call(tool, outcome, elapsed);
        let entry_log = AuditEntry {
            plugin: entry.owner.name(),
            tool: tool.to_string(),
            outcome: outcome.to_string(),
            duration_ms: elapsed.as_millis() as u64,
        };
        self.audit.record(entry_log);
        Ok(result?)
    }
}

/// Names and schemas of every served tool, to tell whether a reload changed
/// what clients see.
fn tool_signature(registry: &Registry) -> Vec<(String, String, Option<String>, String)> {
    registry
        .tools()
        .map(|t| {
            (
                t.tool.name.clone(),
                t.tool.input_schema.clone(),
                t.tool.output_schema.clone(),
                t.tool.description.clone(),
            )
        })
        .collect()
}
