//! MCP-server templates: an npm package run with `npx`, or a PyPI package
//! run with `uvx`, over stdio or streamable HTTP, with plain environment
//! parameters and secrets from berth's store. A secret is named, never
//! given: it is rendered as `${secret:NAME}`, which the host resolves from
//! its store (if the operator lets templates use that secret) only when it
//! hands the workload to the backend.

use std::collections::BTreeMap;

use berth_sdk::{
    Error, McpTransport, Mount, Plugin, Port, Resources, Template, TemplateInfo, Workload, checks,
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
    #[serde(default)]
    mounts: Vec<MountParam>,
    cache_dir: Option<String>,
    #[serde(default)]
    offline: bool,
}

/// A host directory the server sees.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MountParam {
    host_path: String,
    container_path: String,
    #[serde(default = "read_only_by_default")]
    read_only: bool,
}

fn read_only_by_default() -> bool {
    true
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
    /// The variable and value that keep the launcher from fetching.
    offline_env: (&'static str, &'static str),
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
        offline_env: ("npm_config_offline", "true"),
    },
    Launcher {
        template: "uvx",
        description: "An MCP server from a PyPI package, run with uvx (e.g. mcp-server-fetch)",
        image: "ghcr.io/astral-sh/uv:python3.12-bookworm-slim",
        program: "uvx",
        package_hint: "a PyPI package, optionally with [extras] and ==version",
        allowed: |c| c.is_ascii_alphanumeric() || "._-[],=<>!~".contains(c),
        cache_env: ("UV_CACHE_DIR", "/tmp/.uv"),
        offline_env: ("UV_OFFLINE", "1"),
    },
];

fn schema(launcher: &Launcher) -> Value {
    json!({
        "type": "object",
        "properties": {
            "package": {"type": "string", "minLength": 1, "maxLength": 214, "description": format!("The server: {}.", launcher.package_hint)},
            "args": {"type": "array", "items": {"type": "string"}, "description": "Arguments after the package."},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment variables."},
            "secrets": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Environment variables set from berth's secrets store: variable name to secret name (`berth secrets set NAME`); the value never passes through the agent."},
            "transport": {"type": "string", "enum": ["stdio", "http"], "default": "stdio", "description": "How clients reach it."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Port of the HTTP transport (default 3000)."},
            "image": {"type": "string", "default": launcher.image, "description": "Image with the launcher."},
            "memory_mb": {"type": "integer", "minimum": 64, "description": "Memory limit, MiB (default 512)."},
            "ttl_seconds": {"type": "integer", "minimum": 1, "description": "Seconds until the reaper removes it."},
            "mounts": {"type": "array", "description": "Host directories the server sees (the backend refuses paths outside its allowed roots).",
                       "items": {"type": "object", "properties": {
                           "host_path": {"type": "string"}, "container_path": {"type": "string"},
                           "read_only": {"type": "boolean", "default": true}},
                           "required": ["host_path", "container_path"], "additionalProperties": false}},
            "cache_dir": {"type": "string", "description": format!("A host directory holding the launcher's cache, mounted writable at {}; fill it on the host first to start without fetching.", launcher.cache_env.1)},
            "offline": {"type": "boolean", "default": false, "description": "Fetch nothing: run from the cache only, without network (an HTTP server keeps the network its port needs)."}
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
    for (key, value) in &params.env {
        checks::env_name(key)?;
        // Only the `secrets` parameter may name a secret.
        if value.contains("${secret:") {
            return Err(Error::invalid_input(format!(
                "env `{key}` holds a secret reference; name secrets in the `secrets` parameter"
            )));
        }
        env.push((key.clone(), value.clone()));
    }
    for (key, secret) in &params.secrets {
        checks::env_name(key)?;
        if secret.is_empty()
            || !secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(Error::invalid_input(format!(
                "secret name `{secret}` (for `{key}`) is not a valid secret name"
            )));
        }
        env.push((key.clone(), format!("${{secret:{secret}}}")));
    }
    if params.offline {
        env.push((
            launcher.offline_env.0.to_string(),
            launcher.offline_env.1.to_string(),
        ));
    }
    let mut mounts: Vec<Mount> = params
        .mounts
        .iter()
        .map(|m| Mount {
            host_path: m.host_path.clone(),
            container_path: m.container_path.clone(),
            read_only: m.read_only,
        })
        .collect();
    if let Some(cache) = &params.cache_dir {
        mounts.push(Mount {
            host_path: cache.clone(),
            container_path: launcher.cache_env.1.to_string(),
            read_only: false,
        });
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
        // The launcher downloads the package at start, unless told to run
        // from its cache; a published port needs the network either way.
        network: !params.offline || params.transport == Transport::Http,
        writable_root: false,
        mounts,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn npx() -> &'static Launcher {
        &LAUNCHERS[0]
    }

    #[test]
    fn an_offline_stdio_server_runs_from_its_cache_without_network() {
        let workload = render(
            npx(),
            json!({"package": "@modelcontextprotocol/server-everything@2026.8.31", "args": ["stdio"],
                   "offline": true, "cache_dir": "/srv/npm-cache",
                   "mounts": [{"host_path": "/usr", "container_path": "/usr"}]}),
        )
        .unwrap();
        assert_eq!(workload.name, "mcp-server-everything");
        assert!(!workload.network);
        assert_eq!(workload.mcp, Some(McpTransport::Stdio));
        assert!(
            workload
                .env
                .contains(&("npm_config_offline".into(), "true".into()))
        );
        assert_eq!(workload.mounts.len(), 2);
        assert!(workload.mounts[0].read_only);
        assert_eq!(workload.mounts[1].container_path, "/tmp/.npm");
        assert!(!workload.mounts[1].read_only);
        assert_eq!(
            workload.command,
            [
                "npx",
                "-y",
                "@modelcontextprotocol/server-everything@2026.8.31"
            ]
        );
        assert_eq!(workload.args, ["stdio"]);
    }

    #[test]
    fn an_http_server_keeps_the_network_its_port_needs_even_offline() {
        let workload = render(
            npx(),
            json!({"package": "srv", "transport": "http", "offline": true}),
        )
        .unwrap();
        assert!(workload.network);
        assert_eq!(workload.ports[0].container_port, 3000);
    }

    #[test]
    fn secrets_are_named_for_the_host_and_plain_env_cannot_name_one() {
        let workload = render(
            npx(),
            json!({"package": "srv", "secrets": {"GITHUB_TOKEN": "github-token"}}),
        )
        .unwrap();
        assert!(
            workload
                .env
                .contains(&("GITHUB_TOKEN".into(), "${secret:github-token}".into()))
        );
        let err = render(
            npx(),
            json!({"package": "srv", "env": {"X": "${secret:github-token}"}}),
        )
        .unwrap_err();
        assert!(err.message().contains("`X`"), "{err:?}");
        let err = render(npx(), json!({"package": "srv", "secrets": {"X": "../x"}})).unwrap_err();
        assert!(err.message().contains("../x"), "{err:?}");
    }

    #[test]
    fn package_specs_with_option_or_path_syntax_are_refused() {
        for bad in ["-e", "../x", "a b", "x;rm"] {
            let err = render(npx(), json!({"package": bad})).unwrap_err();
            assert!(err.message().contains(bad), "{bad}: {err:?}");
        }
    }
}
