//! MCP-server templates: an npm package run with `npx`, or a PyPI package
//! run with `uvx`, over stdio or streamable HTTP, with plain and secret
//! environment parameters. Secrets go into the environment only; they are
//! never part of a label, a name or a status.

use std::collections::BTreeMap;

use berth_sdk::{
    Error, McpTransport, Plugin, Port, Resources, Template, TemplateInfo, Workload, checks,
};
use serde::Deserialize;
use serde_json::{Value, json};

struct McpServers;

/// Parameters both templates take.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    package: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    transport: Transport,
    port: Option<u16>,
    image: Option<String>,
    memory_mb: Option<u32>,
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Transport {
    #[default]
    Stdio,
    Http,
}

/// One of the two launchers.
struct Launcher {
    template: &'static str,
    description: &'static str,
    image: &'static str,
    program: &'static str,
    package_hint: &'static str,
    /// Whether a character may appear in a package spec of its ecosystem.
    allowed: fn(char) -> bool,
    cache_env: (&'static str, &'static str),
}

const LAUNCHERS: [Launcher; 2] = [
    Launcher {
        template: "npx",
        description: "An MCP server from an npm package, run with npx (e.g. @modelcontextprotocol/server-everything)",
        image: "docker.io/library/node:22-slim",
        program: "npx",
        package_hint: "an npm package, optionally @scope/ and @version",
        allowed: |c| c.is_ascii_alphanumeric() || "@/._-~^".contains(c),
        cache_env: ("npm_config_cache", "/tmp/.npm"),
    },
    Launcher {
        template: "uvx",
        description: "An MCP server from a PyPI package, run with uvx (e.g. mcp-server-fetch)",
        image: "ghcr.io/astral-sh/uv:python3.12-bookworm-slim",
        program: "uvx",
        package_hint: "a PyPI package, optionally with [extras] and ==version",
        allowed: |c| c.is_ascii_alphanumeric() || "._-[],=<>!~".contains(c),
        cache_env: ("UV_CACHE_DIR", "/tmp/.uv"),
    },
];

fn schema(launcher: &Launcher) -> Value {
    json!({
        "type": "object",
        "properties": {
            "package": {"type": "string", "minLength": 1, "maxLength": 214, "description": format!("The server: {}.", launcher.package_hint)},
            "args": {"type": "array", "items": {"type": "string"}, "description": "Arguments after the package."},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment variables."},
            "secrets": {"type": "object", "additionalProperties": {"type": "string"}, "writeOnly": true,
                        "description": "Secret environment variables (API keys); passed to the server only, never shown back."},
            "transport": {"type": "string", "enum": ["stdio", "http"], "default": "stdio", "description": "How clients reach it."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Port of the HTTP transport (default 3000)."},
            "image": {"type": "string", "default": launcher.image, "description": "Image with the launcher."},
            "memory_mb": {"type": "integer", "minimum": 64, "description": "Memory limit, MiB (default 512)."},
            "ttl_seconds": {"type": "integer", "minimum": 1, "description": "Seconds until the reaper removes it."}
        },
        "required": ["package"],
        "additionalProperties": false
    })
}

/// A DNS label from a package name: `@scope/server-x@1` becomes `server-x`.
fn workload_name(package: &str) -> String {
    let base = package.trim_start_matches('@');
    let base = base.rsplit('/').next().unwrap_or(base);
    let base = base
        .split(['@', '=', '[', '<', '>', '!', '~'])
        .next()
        .unwrap_or(base);
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(50);
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "mcp-server".into()
    } else {
        format!("mcp-{name}")
    }
}

fn render(launcher: &Launcher, params: Value) -> berth_sdk::Result<Workload> {
    let params: Params = serde_json::from_value(params).map_err(|e| {
        Error::invalid_input(format!("params of template `{}`: {e}", launcher.template))
    })?;
    let package = &params.package;
    if package.starts_with('-') || !package.chars().all(launcher.allowed) || package.contains("..")
    {
        return Err(Error::invalid_input(format!(
            "package `{package}` is not {}",
            launcher.package_hint
        )));
    }
    let image = params
        .image
        .clone()
        .unwrap_or_else(|| launcher.image.into());
    checks::image(&image)?;
    let mut env = vec![
        ("HOME".to_string(), "/tmp".to_string()),
        (
            launcher.cache_env.0.to_string(),
            launcher.cache_env.1.to_string(),
        ),
    ];
    for (key, value) in params.env.iter().chain(&params.secrets) {
        checks::env_name(key)?;
        env.push((key.clone(), value.clone()));
    }
    let mut command = vec![launcher.program.to_string()];
    if launcher.program == "npx" {
        command.push("-y".into());
    }
    command.push(package.clone());
    let mut ports = Vec::new();
    if params.transport == Transport::Http {
        let port = params.port.unwrap_or(3000);
        env.push(("PORT".into(), port.to_string()));
        ports.push(Port {
            container_port: port,
            host_port: None,
            protocol: "tcp".into(),
        });
    }
    Ok(Workload {
        name: workload_name(package),
        image,
        command,
        args: params.args,
        env,
        ports,
        resources: Resources {
            memory_mb: Some(params.memory_mb.unwrap_or(512)),
            cpu_millis: None,
            pids: None,
        },
        health: None,
        mcp: Some(match params.transport {
            Transport::Stdio => McpTransport::Stdio,
            Transport::Http => McpTransport::Http,
        }),
        // The launcher downloads the package at start.
        network: true,
        writable_root: false,
        mounts: Vec::new(),
        ttl_seconds: params.ttl_seconds,
        labels: Vec::new(),
    })
}

impl Plugin for McpServers {
    fn description() -> String {
        "MCP-server templates: npm packages through npx, PyPI packages through uvx".into()
    }
}

impl Template for McpServers {
    fn templates() -> Vec<TemplateInfo> {
        LAUNCHERS
            .iter()
            .map(|l| TemplateInfo {
                name: l.template.into(),
                description: l.description.into(),
                params_schema: schema(l).to_string(),
                is_mcp_server: true,
            })
            .collect()
    }

    fn render(name: String, params: Value) -> berth_sdk::Result<Workload> {
        match LAUNCHERS.iter().find(|l| l.template == name) {
            Some(launcher) => render(launcher, params),
            None => Err(Error::not_found(format!("template `{name}`"))),
        }
    }
}

berth_sdk::export_template!(McpServers);
