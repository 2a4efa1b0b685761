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
        "granted": *plugin.grants,
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
    let manifest_path = match manifest {
        Some(path) => path.to_path_buf(),
        None if file.with_extension("toml").is_file() => file.with_extension("toml"),
        None => file.with_file_name("plugin.toml"),
    };
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "reading manifest {} (pass --manifest to name it)",
            manifest_path.display()
        )
    })?;
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    config.bundled_plugins = false;
    config.plugin_dirs.clear();
    let host = PluginHost::start_with_db(config, crate::state::Database::in_memory()?).await?;
    let source = Source {
        origin: Origin::File(file.to_path_buf()),
        manifest: manifest_text,
        wasm: wasm.into(),
    };
    let (plugins, failures) = host.load_sources(vec![source]).await;
    if let Some(failure) = failures.first() {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "ok": false, "error": failure.reason }))?
            );
        } else {
            println!("{}: {}", file.display(), failure.reason);
        }
        return Ok(ExitCode::FAILURE);
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
        println!("granted   {}", serde_json::to_string(&*plugin.grants)?);
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
