//! A loaded plugin: its pre-linked component and what it declared, and
//! calls into it — each in a fresh store, under its limits.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::capabilities::grants::Grants;
use crate::capabilities::{Caller, HostServices, HostState};
use crate::contract::bindings::shared::berth::plugin::runner_types::{
    RunPlan, RunnerInfo, Snippet,
};
use crate::contract::bindings::shared::berth::plugin::workload_types::{
    ExecRequest, SandboxSpec, TemplateInfo, Workload, WorkloadStatus,
};
use crate::contract::bindings::types::{
    Content, Error as WitError, ProcessOutput, ResourceBody, Tool, ToolOutput,
};
use crate::contract::bindings::{backend, runner, template, tools};
use crate::contract::error::CallError;
use crate::contract::sink::{CallSink, Unattended};
use crate::runtime::engine::EPOCH_TICK;
use crate::runtime::limits::LimitsConfig;
use crate::runtime::manifest::Manifest;
use crate::runtime::world::{self, World};

/// A component linked against the host, ready to instantiate, per world.
enum WorldPre {
    Tools(tools::ToolsPluginPre<HostState>),
    Runner(runner::RunnerPluginPre<HostState>),
    Backend(backend::BackendPluginPre<HostState>),
    Template(template::TemplatePluginPre<HostState>),
}

/// One instance of a plugin, per world.
enum Instance {
    Tools(tools::ToolsPlugin),
    Runner(runner::RunnerPlugin),
    Backend(backend::BackendPlugin),
    Template(template::TemplatePlugin),
}

/// Run `$body` with `$guest` bound to the instance's `plugin` export,
/// whichever world it belongs to (each world has its own generated type).
macro_rules! plugin_export {
    ($instance:expr, |$guest:ident| $body:expr) => {
        match $instance {
            Instance::Tools(i) => {
                let $guest = i.berth_plugin_plugin();
                $body
            }
            Instance::Runner(i) => {
                let $guest = i.berth_plugin_plugin();
                $body
            }
            Instance::Backend(i) => {
                let $guest = i.berth_plugin_plugin();
                $body
            }
            Instance::Template(i) => {
                let $guest = i.berth_plugin_plugin();
                $body
            }
        }
    };
}

impl WorldPre {
    fn new(
        world: World,
        pre: wasmtime::component::InstancePre<HostState>,
    ) -> wasmtime::Result<Self> {
        Ok(match world {
            World::Tools => WorldPre::Tools(tools::ToolsPluginPre::new(pre)?),
            World::Runner => WorldPre::Runner(runner::RunnerPluginPre::new(pre)?),
            World::Backend => WorldPre::Backend(backend::BackendPluginPre::new(pre)?),
            World::Template => WorldPre::Template(template::TemplatePluginPre::new(pre)?),
        })
    }

    async fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            WorldPre::Tools(p) => Instance::Tools(p.instantiate_async(store).await?),
            WorldPre::Runner(p) => Instance::Runner(p.instantiate_async(store).await?),
            WorldPre::Backend(p) => Instance::Backend(p.instantiate_async(store).await?),
            WorldPre::Template(p) => Instance::Template(p.instantiate_async(store).await?),
        })
    }
}

/// Where a plugin was loaded from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Compiled into the berth binary.
    Bundled,
    /// A file in a plugin directory.
    File(std::path::PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bundled => f.write_str("bundled"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A plugin, loaded and ready to call.
pub struct Plugin {
    /// Its manifest.
    pub manifest: Manifest,
    /// The world it implements.
    pub world: World,
    /// The contract version it was built against.
    pub api_version: semver::Version,
    /// What it may do.
    pub grants: Arc<Grants>,
    /// What it asked for and did not get.
    pub refused: Vec<String>,
    /// Its limits.
    pub limits: LimitsConfig,
    /// Its description.
    pub description: String,
    /// The tools it declared.
    pub tools: Vec<Tool>,
    /// Where it came from.
    pub origin: Origin,
    /// What it runs, when it is a runner.
    pub runner: Option<RunnerInfo>,
    /// Its settings from berth.toml, as a JSON object string.
    pub config: Arc<str>,
    pre: WorldPre,
    slots: tokio::sync::Semaphore,
    services: Arc<HostServices>,
    engine: Engine,
}

/// Everything needed to bring up one plugin.
pub struct PluginParts {
    /// Parsed manifest.
    pub manifest: Manifest,
    /// Compiled component.
    pub component: Component,
    /// Where it came from.
    pub origin: Origin,
    /// Granted capabilities.
    pub grants: Grants,
    /// Limits.
    pub limits: LimitsConfig,
    /// Settings from berth.toml, as a JSON object string.
    pub config: String,
}

impl Plugin {
    /// Check the component's world and version against its manifest and
    /// this host, link it, and ask it for its description and tools.
    pub async fn load(
        parts: PluginParts,
        linker: &Linker<HostState>,
        services: Arc<HostServices>,
    ) -> anyhow::Result<Plugin> {
        let PluginParts {
            manifest,
            component,
            origin,
            grants,
            limits,
            config,
        } = parts;
        let engine = linker.engine().clone();
        let component_type = component.component_type();
        let detected = world::detect(component_type.exports(&engine).map(|(name, _)| name))?;
        if detected.world != manifest.kind {
            anyhow::bail!(
                "plugin.toml declares kind `{}` but the component implements the {} world",
                manifest.kind.kind(),
                detected.world.kind()
            );
        }
        if !manifest.api.matches(&detected.version) {
            anyhow::bail!(
                "plugin.toml declares api `{}` but the component was built for berth:plugin@{}",
                manifest.api,
                detected.version
            );
        }
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!("the component imports something this host does not provide: {e:#}")
        })?;
        let pre = WorldPre::new(detected.world, instance_pre).map_err(anyhow::Error::from)?;
        let refused = grants.refused(&manifest.capabilities);
        let mut plugin = Plugin {
            world: detected.world,
            api_version: detected.version,
            grants: Arc::new(grants),
            refused,
            limits,
            description: manifest.description.clone().unwrap_or_default(),
            tools: Vec::new(),
            origin,
            runner: None,
            config: config.into(),
            pre,
            slots: tokio::sync::Semaphore::new(limits.max_concurrent.max(1) as usize),
            services,
            engine,
            manifest,
        };
        let sink: Arc<dyn CallSink> = Arc::new(Unattended);
        let (info, tools) = plugin
            .guarded(sink, async |instance, store| {
                plugin_export!(instance, |guest| {
                    let info = guest.call_describe(&mut *store).await?;
                    let tools = guest.call_tools(&mut *store).await?;
                    Ok((info, tools))
                })
            })
            .await
            .map_err(|e| anyhow::anyhow!("describing itself failed: {e}"))?;
        if plugin.description.is_empty() {
            plugin.description = info.description;
        }
        plugin.tools = tools;
        if plugin.world == World::Runner {
            let sink: Arc<dyn CallSink> = Arc::new(Unattended);
            let info = plugin
                .guarded(sink, async |instance, store| match instance {
                    Instance::Runner(i) => i.berth_plugin_runner().call_info(&mut *store).await,
                    _ => Err(wasmtime::Error::msg("not a runner")),
                })
                .await
                .map_err(|e| anyhow::anyhow!("describing its language failed: {e}"))?;
            plugin.runner = Some(info);
        }
        Ok(plugin)
    }

    /// Ask a runner plugin to plan `snippet`.
    pub async fn plan(
        &self,
        snippet: &Snippet,
        sink: Arc<dyn CallSink>,
    ) -> Result<RunPlan, CallError> {
        self.guarded(sink, async |instance, store| match instance {
            Instance::Runner(i) => {
                i.berth_plugin_runner()
                    .call_plan(&mut *store, snippet)
                    .await
            }
            _ => Ok(Err(WitError::Unavailable(format!(
                "plugin `{}` is not a runner",
                self.name()
            )))),
        })
        .await?
        .map_err(CallError::Plugin)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Call one of the plugin's own tools with validated JSON arguments.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<ToolOutput, CallError> {
        let output = self
            .guarded(sink, async |instance, store| {
                plugin_export!(instance, |guest| guest
                    .call_call_tool(&mut *store, tool, arguments)
                    .await)
            })
            .await?
            .map_err(CallError::Plugin)?;
        let size = output_size(&output);
        if size > self.limits.max_output_bytes {
            return Err(CallError::OutputTooLarge {
                plugin: self.name().to_string(),
                size,
                limit: self.limits.max_output_bytes,
            });
        }
        Ok(output)
    }

    /// Run `f` against a backend plugin's exports, allowing the call `wall`
    /// at least (a long command inside a sandbox).
    async fn with_backend<R>(
        &self,
        wall: Duration,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(
            &backend::BackendPlugin,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, WitError>>,
    ) -> Result<R, CallError> {
        self.guarded_for(wall, sink, async |instance, store| match instance {
            Instance::Backend(i) => f(i, store).await,
            _ => Ok(Err(WitError::Unavailable(format!(
                "plugin `{}` is not a backend",
                self.name()
            )))),
        })
        .await?
        .map_err(CallError::Plugin)
    }

    /// Create a sandbox on this backend; returns its id.
    pub async fn sandbox_create(
        &self,
        spec: &SandboxSpec,
        sink: Arc<dyn CallSink>,
    ) -> Result<String, CallError> {
        self.with_backend(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_sandbox()
                .call_create(&mut *store, spec)
                .await
        })
        .await
    }

    /// Write the request's files into a sandbox, then run its command
    /// there.
    pub async fn sandbox_exec(
        &self,
        id: &str,
        request: &ExecRequest,
        sink: Arc<dyn CallSink>,
    ) -> Result<ProcessOutput, CallError> {
        // The backend needs a little longer than the command to report.
        let wall = Duration::from_millis(request.timeout_ms.unwrap_or(0)) + Duration::from_secs(30);
        self.with_backend(wall, sink, async |b, store| {
            b.berth_plugin_sandbox()
                .call_exec(&mut *store, id, request)
                .await
        })
        .await
    }

    /// Destroy a sandbox.
    pub async fn sandbox_destroy(
        &self,
        id: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<(), CallError> {
        self.with_backend(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_sandbox().call_destroy(&mut *store, id).await
        })
        .await
    }

    /// Ask the backend to remove what outlived its TTL (every sandbox, with
    /// `all_sandboxes`).
    pub async fn reap(&self, all_sandboxes: bool) -> Result<u32, CallError> {
        self.with_backend(Duration::ZERO, Arc::new(Unattended), async |b, store| {
            b.berth_plugin_sandbox()
                .call_reap(&mut *store, all_sandboxes)
                .await
        })
        .await
    }

    /// Deploy a workload on this backend.
    pub async fn workload_deploy(
        &self,
        workload: &Workload,
        sink: Arc<dyn CallSink>,
    ) -> Result<WorkloadStatus, CallError> {
        self.with_backend(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads()
                .call_deploy(&mut *store, workload)
                .await
        })
        .await
    }

    /// Where a workload on this backend stands.
    pub async fn workload_status(
        &self,
        name: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<WorkloadStatus, CallError> {
        self.with_backend(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads()
                .call_status(&mut *store, name)
                .await
        })
        .await
    }

    /// Stop and remove a workload on this backend.
    pub async fn workload_stop(
        &self,
        name: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<(), CallError> {
        self.with_backend(Duration::ZERO, sink, async |b, store| {
            b.berth_plugin_workloads()
                .call_stop(&mut *store, name)
                .await
        })
        .await
    }

    /// The templates of a template plugin; empty for other plugins.
    pub async fn list_templates(&self) -> Result<Vec<TemplateInfo>, CallError> {
        self.guarded(
            Arc::new(Unattended),
            async |instance, store| match instance {
                Instance::Template(i) => {
                    i.berth_plugin_templates()
                        .call_list_templates(&mut *store)
                        .await
                }
                _ => Ok(Vec::new()),
            },
        )
        .await
    }

    /// Render a template of this plugin with `params` (a JSON object).
    pub async fn render_template(
        &self,
        name: &str,
        params: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<Workload, CallError> {
        self.guarded(sink, async |instance, store| match instance {
            Instance::Template(i) => {
                i.berth_plugin_templates()
                    .call_render(&mut *store, name, params)
                    .await
            }
            _ => Ok(Err(WitError::Unavailable(format!(
                "plugin `{}` is not a template plugin",
                self.name()
            )))),
        })
        .await?
        .map_err(CallError::Plugin)
    }

    /// A fresh store for one call, with the memory limit and CPU budget set.
    fn new_store(&self, sink: Arc<dyn CallSink>) -> Store<HostState> {
        let caller = Caller {
            plugin: self.manifest.name.as_str().into(),
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

    /// Run `f` on a fresh instance, within the plugin's concurrency cap, wall
    /// timeout, CPU and memory limits; map every way it can fail.
    async fn guarded<R>(
        &self,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.guarded_for(Duration::ZERO, sink, f).await
    }

    /// [`Plugin::guarded`], with the wall timeout raised to `at_least`.
    async fn guarded_for<R>(
        &self,
        at_least: Duration,
        sink: Arc<dyn CallSink>,
        f: impl AsyncFnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let wall = Duration::from_millis(self.limits.timeout_ms).max(at_least);
        let started = tokio::time::Instant::now();
        let timeout = || CallError::Timeout {
            plugin: self.name().to_string(),
            limit_ms: wall.as_millis() as u64,
        };
        let _permit = tokio::time::timeout(wall, self.slots.acquire())
            .await
            .map_err(|_| timeout())?
            .map_err(|_| CallError::Host {
                plugin: self.name().to_string(),
                reason: "plugin is unloading".into(),
            })?;
        let mut store = self.new_store(sink);
        let remaining = wall.saturating_sub(started.elapsed());
        let outcome = tokio::time::timeout(remaining, async {
            let instance = self.pre.instantiate(&mut store).await?;
            f(&instance, &mut store).await
        })
        .await;
        match outcome {
            Err(_) => Err(timeout()),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.classify(err, store.data())),
        }
    }

    fn classify(&self, err: wasmtime::Error, state: &HostState) -> CallError {
        let plugin = self.name().to_string();
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

/// Bytes of content a tool output carries.
fn output_size(output: &ToolOutput) -> u64 {
    let content: usize = output
        .content
        .iter()
        .map(|c| match c {
            Content::Text(t) | Content::Json(t) => t.len(),
            Content::Image(m) | Content::Audio(m) => m.data.len(),
            Content::ResourceLink(l) => l.uri.len() + l.name.len(),
            Content::Embedded(r) => match &r.body {
                ResourceBody::Text(t) => t.len(),
                ResourceBody::Blob(b) => b.len(),
            },
        })
        .sum();
    (content + output.structured.as_ref().map_or(0, String::len)) as u64
}
