//! Finding plugins (bundled, and in plugin directories), compiling them in
//! parallel, and loading each independently: one broken plugin is reported
//! and the others still load.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use wasmtime::component::Linker;

use crate::capabilities::grants::{Grants, Policy};
use crate::capabilities::{HostServices, HostState};
use crate::runtime::bundled::BUNDLED;
use crate::runtime::engine::Compiler;
use crate::runtime::limits::LimitsConfig;
use crate::runtime::manifest::Manifest;
use crate::runtime::pin::Pin;
use crate::runtime::plugin::{Origin, Plugin, PluginParts};
use crate::runtime::registry::LoadFailure;

/// What the loader needs to know of berth's configuration: where plugins
/// come from, and each one's policy, limits and settings.
pub trait PluginSettings: Sync {
    /// Whether the plugins compiled into the binary load.
    fn bundled(&self) -> bool;
    /// Directories to load more plugins from.
    fn plugin_dirs(&self) -> &[PathBuf];
    /// Whether the configuration has a policy of `plugin`'s own (a bundled
    /// plugin without one gets what its manifest requests).
    fn names_policy(&self, plugin: &str) -> bool;
    /// What `plugin` may do.
    fn policy_for(&self, plugin: &str) -> Policy;
    /// What one call of `plugin` may use.
    fn limits_for(&self, plugin: &str) -> LimitsConfig;
    /// `plugin`'s settings, as a JSON object string.
    fn plugin_config_json(&self, plugin: &str) -> String;
    /// The digest `plugin`'s component must have, if the operator pinned it.
    fn pin_for(&self, plugin: &str) -> Option<&Pin>;
}

/// Whether a plugin from `origin` named `name` runs on the default policy
/// of a bundled plugin (its manifest's `[defaults]`, else what it
/// requests), since berth.toml does not name it.
pub fn on_bundled_default(origin: &Origin, name: &str, config: &dyn PluginSettings) -> bool {
    matches!(origin, Origin::Bundled) && !config.names_policy(name)
}

/// A plugin's files, before anything is checked.
pub struct Source {
    /// Where it comes from.
    pub origin: Origin,
    /// Text of its `plugin.toml`.
    pub manifest: String,
    /// The component's bytes.
    pub wasm: Cow<'static, [u8]>,
}

impl Source {
    fn label(&self) -> String {
        match &self.origin {
            Origin::Bundled => {
                let name = Manifest::parse(&self.manifest)
                    .map(|m| m.name)
                    .unwrap_or_else(|_| "?".into());
                format!("bundled:{name}")
            }
            Origin::File(path) => path.display().to_string(),
        }
    }
}

/// The plugins compiled into this binary.
pub fn bundled_sources() -> Vec<Source> {
    BUNDLED
        .iter()
        .map(|b| Source {
            origin: Origin::Bundled,
            manifest: b.manifest.to_string(),
            wasm: Cow::Borrowed(b.wasm),
        })
        .collect()
}

/// Plugins in `dir`: `NAME.wasm` with `NAME.toml`, or `NAME/plugin.wasm`
/// with `NAME/plugin.toml`. Sorted by path so load order is stable.
pub fn directory_sources(dir: &Path) -> (Vec<Source>, Vec<LoadFailure>) {
    let mut sources = Vec::new();
    let mut failures = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            failures.push(LoadFailure {
                origin: dir.display().to_string(),
                reason: format!("cannot read plugin directory: {err}"),
            });
            return (sources, failures);
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let (wasm, manifest) = if path.is_dir() {
            (path.join("plugin.wasm"), path.join("plugin.toml"))
        } else if path.extension().is_some_and(|e| e == "wasm") {
            (path.clone(), path.with_extension("toml"))
        } else {
            continue;
        };
        if !wasm.is_file() {
            continue;
        }
        let read = || -> anyhow::Result<Source> {
            let manifest_text = std::fs::read_to_string(&manifest).with_context(|| {
                format!("missing or unreadable manifest {}", manifest.display())
            })?;
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            Ok(Source {
                origin: Origin::File(wasm.clone()),
                manifest: manifest_text,
                wasm: Cow::Owned(bytes),
            })
        };
        match read() {
            Ok(source) => sources.push(source),
            Err(err) => failures.push(LoadFailure {
                origin: wasm.display().to_string(),
                reason: format!("{err:#}"),
            }),
        }
    }
    (sources, failures)
}

/// Every source the config names, bundled first.
pub fn all_sources(config: &dyn PluginSettings) -> (Vec<Source>, Vec<LoadFailure>) {
    let mut sources = if config.bundled() {
        bundled_sources()
    } else {
        Vec::new()
    };
    let mut failures = Vec::new();
    for dir in config.plugin_dirs() {
        let (more, failed) = directory_sources(dir);
        sources.extend(more);
        failures.extend(failed);
    }
    (sources, failures)
}

/// Statistics of one load, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    /// Components taken from the compile cache.
    pub cache_hits: usize,
    /// Components compiled afresh.
    pub compiled: usize,
}

/// Check, compile and load every source; return what loaded (in source
/// order) and what did not, each with its reason.
pub async fn load(
    sources: Vec<Source>,
    config: &dyn PluginSettings,
    compiler: &Compiler,
    linker: &Linker<HostState>,
    services: &Arc<HostServices>,
) -> (Vec<Plugin>, Vec<LoadFailure>, LoadStats) {
    let attempts = sources.into_iter().map(|source| async move {
        let label = source.label();
        let result = load_one(source, config, compiler, linker, services).await;
        (label, result)
    });
    let mut plugins = Vec::new();
    let mut failures = Vec::new();
    let mut stats = LoadStats::default();
    for (label, result) in futures::future::join_all(attempts).await {
        match result {
            Ok((plugin, cached)) => {
                if cached {
                    stats.cache_hits += 1;
                } else {
                    stats.compiled += 1;
                }
                plugins.push(plugin);
            }
            Err(err) => failures.push(LoadFailure {
                origin: label,
                reason: format!("{err:#}"),
            }),
        }
    }
    (plugins, failures, stats)
}

async fn load_one(
    source: Source,
    config: &dyn PluginSettings,
    compiler: &Compiler,
    linker: &Linker<HostState>,
    services: &Arc<HostServices>,
) -> anyhow::Result<(Plugin, bool)> {
    let manifest = Manifest::parse(&source.manifest)?;
    if let Some(pin) = config.pin_for(&manifest.name) {
        pin.check(&manifest.name, &source.wasm)?;
    }
    let compiler = compiler.clone();
    let wasm = source.wasm;
    let (component, cached) = tokio::task::spawn_blocking(move || compiler.compile(&wasm))
        .await
        .context("compiler task failed")?
        .context("not a valid WebAssembly component")?;
    // A bundled plugin ships with berth and was reviewed with it: its
    // defaults (else what it requests) are its policy, until berth.toml
    // names it.
    let policy = if on_bundled_default(&source.origin, &manifest.name, config) {
        let defaults = manifest.defaults.as_ref().unwrap_or(&manifest.capabilities);
        config
            .policy_for(&manifest.name)
            .union(&Policy::from(defaults))
    } else {
        config.policy_for(&manifest.name)
    };
    let grants = Grants::intersect(&manifest.capabilities, &policy);
    let limits = config.limits_for(&manifest.name);
    let name = manifest.name.clone();
    let parts = PluginParts {
        manifest,
        component,
        origin: source.origin,
        grants,
        limits,
        config: config.plugin_config_json(&name),
    };
    let plugin = Plugin::load(parts, linker, services.clone())
        .await
        .with_context(|| format!("plugin `{name}`"))?;
    Ok((plugin, cached))
}
