//! User templates: one TOML file per template in `/templates`, a directory
//! the host maps read-only (`[policy.services] read_dirs`). A file that
//! does not parse is reported in the log and skipped.
//!
//! ```toml
//! name = "whoami"
//! description = "Answers with its host name"
//! image = "docker.io/traefik/whoami:v1.10"
//! args = ["--port", "{{port}}"]
//! ports = [8080]
//! network = true
//! health_path = "/"
//!
//! [env]
//! GREETING = "{{greeting}}"
//!
//! [params.port]
//! description = "Port to listen on"
//! default = "8080"
//!
//! [params.greeting]
//! description = "Text to greet with"
//! ```
//!
//! `{{param}}` in `command`, `args` and `env` values is replaced by the
//! parameter's value; a parameter without a default is required.

use std::collections::BTreeMap;

use berth_sdk::{Error, HealthCheck, LogLevel, Port, Resources, TemplateInfo, Workload, checks};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where the host maps the user's template directory.
const DIR: &str = "/templates";

/// Largest template file read, bytes.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// One parameter of a user template.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// What it is for.
    #[serde(default)]
    description: String,
    /// Its value when the caller gives none; required when absent.
    default: Option<String>,
}

/// A template file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTemplate {
    /// Template name, a DNS label.
    pub name: String,
    /// What it starts.
    #[serde(default)]
    description: String,
    /// Image reference.
    image: String,
    /// Entrypoint override.
    #[serde(default)]
    command: Vec<String>,
    /// Arguments.
    #[serde(default)]
    args: Vec<String>,
    /// Environment.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Container ports.
    #[serde(default)]
    ports: Vec<u16>,
    /// Whether it needs network.
    #[serde(default)]
    network: bool,
    /// Whether its root filesystem must be writable.
    #[serde(default)]
    writable_root: bool,
    /// Memory limit, MiB.
    memory_mb: Option<u32>,
    /// HTTP health check path on the first port.
    health_path: Option<String>,
    /// Parameters.
    #[serde(default)]
    params: BTreeMap<String, Param>,
}

/// Every template in the directory, in file-name order.
pub fn load() -> Vec<UserTemplate> {
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut templates = Vec::new();
    for path in paths {
        match read(&path) {
            Ok(template) => templates.push(template),
            Err(message) => berth_sdk::log(
                LogLevel::Warning,
                format!("template file {} is skipped: {message}", path.display()),
            ),
        }
    }
    templates
}

fn read(path: &std::path::Path) -> Result<UserTemplate, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "it is {size} bytes; at most {MAX_FILE_BYTES} allowed"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let template: UserTemplate = toml::from_str(&text).map_err(|e| e.to_string())?;
    checks::name(&template.name).map_err(|e| e.message().to_string())?;
    checks::image(&template.image).map_err(|e| e.message().to_string())?;
    Ok(template)
}

impl UserTemplate {
    /// How `list_templates` shows it.
    pub fn info(&self) -> TemplateInfo {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for (name, param) in &self.params {
            let mut property = json!({"type": "string", "description": param.description});
            match &param.default {
                Some(default) => property["default"] = json!(default),
                None => required.push(name.clone()),
            }
            properties.insert(name.clone(), property);
        }
        TemplateInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            params_schema: json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false}).to_string(),
            is_mcp_server: false,
        }
    }

    /// The workload, with `{{param}}` filled in.
    pub fn render(&self, params: &Value) -> berth_sdk::Result<Workload> {
        let mut values = BTreeMap::new();
        for (name, param) in &self.params {
            let value = match params.get(name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => param.default.clone().ok_or_else(|| {
                    Error::invalid_input(format!(
                        "template `{}` needs the parameter `{name}`",
                        self.name
                    ))
                })?,
            };
            values.insert(name.as_str(), value);
        }
        let fill = |text: &String| {
            values.iter().fold(text.clone(), |acc, (name, value)| {
                acc.replace(&format!("{{{{{name}}}}}"), value)
            })
        };
        let ports: Vec<Port> = self
            .ports
            .iter()
            .map(|p| Port {
                container_port: *p,
                host_port: None,
                protocol: "tcp".into(),
            })
            .collect();
        let health = match (&self.health_path, ports.first()) {
            (Some(path), Some(port)) => Some(HealthCheck {
                path: path.clone(),
                port: port.container_port,
            }),
            _ => None,
        };
        Ok(Workload {
            name: self.name.clone(),
            image: self.image.clone(),
            command: self.command.iter().map(fill).collect(),
            args: self.args.iter().map(fill).collect(),
            env: self.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            ports,
            resources: Resources {
                memory_mb: self.memory_mb,
                cpu_millis: None,
                pids: None,
            },
            health,
            mcp: None,
            network: self.network,
            writable_root: self.writable_root,
            mounts: Vec::new(),
            ttl_seconds: None,
            labels: Vec::new(),
        })
    }
}
