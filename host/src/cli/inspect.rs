//! `berth plugins list`, `berth plugins check` and `berth tools`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::app::config::Config;
use crate::app::host::PluginHost;
use crate::runtime::loader::Source;
use crate::runtime::plugin::{Origin, Plugin};

fn plugin_json(plugin: &Plugin) -> serde_json::Value {
    json!({
        "name": plugin.name(),
        "version": plugin.manifest.version.to_string(),
        "kind": plugin.world.kind(),
        "api": plugin.api_version.to_string(),
        "origin": plugin.origin.to_string(),
        "description": plugin.description,
        "requested": plugin.manifest.capabilities,
        "granted": *plugin.grants(),
        "refused": plugin.refused,
        "tools": plugin.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
    })
}

/// Print loaded plugins and load failures.
pub fn list_plugins(host: &PluginHost, json: bool) -> anyhow::Result<()> {
    let registry = host.registry();
    if json {
        let value = json!({
            "plugins": registry.plugins().map(|p| plugin_json(p)).collect::<Vec<_>>(),
            "failures": registry.failures(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for plugin in registry.plugins() {
        println!(
            "{:<24} {:<8} {:<9} api {:<6} {:>3} tools  {}",
            plugin.name(),
            plugin.manifest.version.to_string(),
            plugin.world.kind(),
            plugin.api_version.to_string(),
            plugin.tools.len(),
            plugin.origin
        );
    }
    for failure in registry.failures() {
        println!("FAILED {}: {}", failure.origin, failure.reason);
    }
    Ok(())
}

/// Print the served tools.
pub fn list_tools(host: &PluginHost, json: bool) -> anyhow::Result<()> {
    let registry = host.registry();
    if json {
        let tools: Vec<_> = registry
            .tools()
            .map(|t| {
                json!({
                    "name": t.tool.name,
                    "plugin": t.owner.name(),
                    "description": t.tool.description,
                    "inputSchema": *t.input_schema,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&tools)?);
        return Ok(());
    }
    for tool in registry.tools() {
        let first_line = tool.tool.description.lines().next().unwrap_or("");
        println!(
            "{:<32} {:<20} {first_line}",
            tool.tool.name,
            tool.owner.name()
        );
    }
    Ok(())
}

/// Load one plugin file in isolation and report what the host sees.
pub async fn check(
    mut config: Config,
    file: &Path,
    manifest: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let manifest_path = match manifest {
        Some(path) => Some(path.to_path_buf()),
        None if file.with_extension("toml").is_file() => Some(file.with_extension("toml")),
        None if file.with_file_name("plugin.toml").is_file() => {
            Some(file.with_file_name("plugin.toml"))
        }
        None => None,
    };
    let manifest_text = match &manifest_path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?,
        None => match unrequested_manifest(file, &wasm) {
            Ok(text) => text,
            Err(err) => return report_failure(file, &format!("{err:#}"), json),
        },
    };
    config.bundled_plugins = false;
    config.plugin_dirs.clear();
    // A one-off check compiles afresh: the compile cache is the serving
    // berth's, verified against its database.
    let host =
        PluginHost::start_with_db(config, crate::state::Database::in_memory()?, None).await?;
    let source = Source {
        origin: Origin::File(file.to_path_buf()),
        manifest: manifest_text,
        wasm: wasm.into(),
    };
    let (plugins, failures) = host.load_sources(vec![source]).await;
    if let Some(failure) = failures.first() {
        return report_failure(file, &failure.reason, json);
    }
    let plugin = plugins
        .first()
        .context("the loader returned neither a plugin nor a failure")?;
    if json {
        let mut value = plugin_json(plugin);
        value["ok"] = json!(true);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("plugin    {} {}", plugin.name(), plugin.manifest.version);
        println!("world     {}", plugin.world.kind());
        println!("api       berth:plugin@{}", plugin.api_version);
        println!(
            "requested {}",
            serde_json::to_string(&plugin.manifest.capabilities)?
        );
        println!("granted   {}", serde_json::to_string(plugin.grants())?);
        for tool in &plugin.tools {
            println!(
                "tool      {} - {}",
                tool.name,
                tool.description.lines().next().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A manifest for a component that came without one: named after the file,
/// of the world and contract version its exports declare, requesting no
/// capabilities (so every grant shows as unrequested).
fn unrequested_manifest(file: &Path, wasm: &[u8]) -> anyhow::Result<String> {
    crate::runtime::engine::check_header(wasm)?;
    let engine = crate::runtime::engine::build()?;
    let component = wasmtime::component::Component::new(&engine, wasm)
        .map_err(|e| anyhow::anyhow!("not a valid WebAssembly component: {e}"))?;
    let component_type = component.component_type();
    let detected =
        crate::runtime::world::detect(component_type.exports(&engine).map(|(name, _)| name))?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    let name = if name.is_empty() { "plugin" } else { name };
    Ok(format!(
        "name = {name:?}\nversion = \"0.0.0\"\nkind = {:?}\napi = \"={}\"\n",
        detected.world.kind(),
        detected.version
    ))
}

/// Print why `file` did not load, on one line, and fail.
fn report_failure(file: &Path, reason: &str, json: bool) -> anyhow::Result<ExitCode> {
    let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "ok": false, "error": reason }))?
        );
    } else {
        println!("{}: {reason}", file.display());
    }
    Ok(ExitCode::FAILURE)
}
