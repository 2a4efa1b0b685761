//! A loaded plugin: what it declared, its pre-linked component, and calls
//! into it, each in a fresh store under its limits ([`guard`]).
//!
//! Every world exports the `plugin` interface, so every [`Plugin`] can
//! describe itself and call its tools. What only one world exports is
//! reached through a typed handle that exists only for a plugin of that
//! world: [`Plugin::runner`], [`Plugin::backend`], [`Plugin::templates`].

mod backend;
mod exports;
mod guard;
mod runner;
mod templates;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};

pub use self::backend::Backend;
pub use self::runner::Runner;
pub use self::templates::Templates;

use self::exports::Exports;
use self::guard::Guard;
use crate::capabilities::grants::Grants;
use crate::capabilities::{HostServices, HostState};
use crate::contract::bindings::types::{Content, ResourceBody, Tool, ToolOutput};
use crate::contract::error::CallError;
use crate::contract::sink::{CallSink, Unattended};
use crate::runtime::limits::LimitsConfig;
use crate::runtime::manifest::Manifest;
use crate::runtime::world::{self, World};

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
    /// What it asked for and did not get.
    pub refused: Vec<String>,
    /// Its description.
    pub description: String,
    /// The tools it declared.
    pub tools: Vec<Tool>,
    /// Where it came from.
    pub origin: Origin,
    guard: Guard,
    exports: Exports,
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
    /// this host, link it, and ask it for its description and tools (and a
    /// runner for its language).
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
        let refused = grants.refused(&manifest.capabilities);
        let guard = Guard::new(&manifest.name, grants, limits, config, services, engine);
        let (exports, info, tools) = Exports::load(detected.world, instance_pre, &guard).await?;
        let description = match &manifest.description {
            Some(described) if !described.is_empty() => described.clone(),
            _ => info.description,
        };
        Ok(Plugin {
            world: detected.world,
            api_version: detected.version,
            refused,
            description,
            tools,
            origin,
            guard,
            exports,
            manifest,
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// What it may do.
    pub fn grants(&self) -> &Grants {
        &self.guard.grants
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> &LimitsConfig {
        &self.guard.limits
    }

    /// This plugin as a runner, when it implements the runner world.
    pub fn runner(self: &Arc<Self>) -> Option<Runner> {
        Runner::of(self)
    }

    /// This plugin as a sandbox and workload backend, when it implements
    /// the backend world.
    pub fn backend(self: &Arc<Self>) -> Option<Backend> {
        Backend::of(self)
    }

    /// This plugin as a template plugin, when it implements the template
    /// world.
    pub fn templates(self: &Arc<Self>) -> Option<Templates> {
        Templates::of(self)
    }

    /// Call one of the plugin's own tools with validated JSON arguments.
    pub async fn call_tool(
        &self,
        tool: &str,
        arguments: &str,
        sink: Arc<dyn CallSink>,
    ) -> Result<ToolOutput, CallError> {
        let output = self
            .guard
            .run(Duration::ZERO, sink, async |store| {
                self.exports.call_tool(store, tool, arguments).await
            })
            .await?
            .map_err(CallError::Plugin)?;
        let size = output_size(&output);
        let limit = self.guard.limits.max_output_bytes;
        if size > limit {
            return Err(CallError::OutputTooLarge {
                plugin: self.name().to_string(),
                size,
                limit,
            });
        }
        Ok(output)
    }
}

/// A sink for calls the host makes on its own behalf (loading, reaping).
fn unattended() -> Arc<dyn CallSink> {
    Arc::new(Unattended)
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
