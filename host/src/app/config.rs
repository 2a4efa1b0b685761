//! `berth.toml`: where plugins come from, what each may do, and its limits.
//!
//! Precedence, lowest first: built-in defaults, the config file, `BERTH_*`
//! environment variables, command-line flags (applied by [`crate::cli`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::grants::Policy;
use crate::gateway::config::ServerConfig;
use crate::runs::config::RunsConfig;
use crate::runtime::filter::ToolFilter;
use crate::runtime::limits::{LimitsConfig, LimitsOverride};
use crate::runtime::loader::PluginSettings;
use crate::runtime::pin::Pin;
use crate::state::secrets::SecretsConfig;
use crate::sys::kube::config::KubeConfig;
use crate::sys::process::ProcessConfig;

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path} is invalid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offending key.
        message: String,
    },
    /// No data directory was given and this user has none by default.
    #[error(
        "no data directory: this user has no local data directory (is HOME set?); give --data-dir, BERTH_DATA_DIR or data_dir in berth.toml"
    )]
    NoDataDir,
    /// An environment variable has a value of the wrong form.
    #[error("environment variable {name}={value:?} is invalid: expected {expected}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where berth keeps its database and compiled-plugin cache.
    pub data_dir: PathBuf,
    /// Extra plugin directories: every `*.wasm` with a `plugin.toml` beside it
    /// (as `NAME.wasm` + `NAME.toml`, or a folder holding `plugin.wasm` and
    /// `plugin.toml`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Whether to load the plugins compiled into the binary.
    pub bundled_plugins: bool,
    /// Which tools to serve.
    pub tools: ToolFilter,
    /// HTTP transport settings.
    pub http: HttpConfig,
    /// Default limits for every plugin.
    pub limits: LimitsConfig,
    /// What plugins may do: `"*"` applies to every plugin, a plugin's own
    /// name adds to it.
    pub policy: BTreeMap<String, Policy>,
    /// Per-plugin limit overrides.
    pub plugin_limits: BTreeMap<String, LimitsOverride>,
    /// Host-wide caps on processes started for plugins.
    pub process: ProcessConfig,
    /// Snippet runs (`run_<language>`).
    pub runs: RunsConfig,
    /// Settings handed to each plugin (`context.config`), by plugin name.
    pub plugin_config: BTreeMap<String, toml::Table>,
    /// The Kubernetes cluster the `kube` capability talks to.
    pub kube: KubeConfig,
    /// The sha256 each named plugin's component must have; a plugin whose
    /// file differs is refused (both digests named).
    pub pins: BTreeMap<String, Pin>,
    /// Where named secrets are looked up.
    pub secrets: SecretsConfig,
    /// Upstream MCP servers whose tools berth serves (`[servers.NAME]`).
    pub servers: BTreeMap<String, ServerConfig>,
}

/// Streamable HTTP settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bearer token clients must send on every path but `/healthz`. When
    /// unset, berth generates one on first start and keeps it in
    /// `DATA_DIR/http-token` (0600).
    pub token: Option<String>,
    /// Host header values accepted besides loopback names (for example the
    /// name berth is reached by inside a cluster).
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) accepted from browsers besides
    /// berth's own (`http://` + an allowed host + the bound port).
    pub allowed_origins: Vec<String>,
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// MCP sessions at most; opening one more ends the least recently used.
    pub max_sessions: usize,
    /// Seconds a client has to send a request's headers (and its body): a
    /// new connection, or a kept-alive one between requests, that sends
    /// nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// Largest request body, MiB.
    pub max_request_mib: usize,
    /// Request bodies held in memory at once across all connections, MiB;
    /// further requests wait their turn.
    pub max_requests_in_memory_mib: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 512,
            max_sessions: 256,
            idle_timeout_secs: 30,
            max_request_mib: 4,
            max_requests_in_memory_mib: 16,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            plugin_dirs: Vec::new(),
            bundled_plugins: true,
            tools: ToolFilter::default(),
            http: HttpConfig::default(),
            limits: LimitsConfig::default(),
            policy: BTreeMap::new(),
            plugin_limits: BTreeMap::new(),
            process: ProcessConfig::default(),
            runs: RunsConfig::default(),
            plugin_config: BTreeMap::new(),
            kube: KubeConfig::default(),
            pins: BTreeMap::new(),
            secrets: SecretsConfig::default(),
            servers: BTreeMap::new(),
        }
    }
}

/// The user's local data directory's `berth`, or nothing (refused by
/// [`Config::check_data_dir`]): a shared temporary directory would let
/// another local user plant plugins' compiled code or read the database.
fn default_data_dir() -> PathBuf {
    dirs::data_local_dir()
        .map(|dir| dir.join("berth"))
        .unwrap_or_default()
}

/// `berth/berth.toml` in the user's config directory.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("berth").join("berth.toml"))
}

impl Config {
    /// Read `path` if given, else the user's `berth.toml` (see
    /// [`default_config_path`]) if it exists, else the defaults; then apply
    /// `BERTH_*` environment overrides. The current directory is never
    /// read: a client started inside a cloned repository must not take that
    /// repository's policy.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match (path, default_config_path()) {
            (Some(path), _) => Self::from_file(path)?,
            (None, Some(user)) if user.is_file() => Self::from_file(&user)?,
            (None, _) => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Refuse to go on without a data directory.
    pub fn check_data_dir(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::NoDataDir);
        }
        Ok(())
    }

    /// Parse one config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|err| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        // Relative paths in a config file mean relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        config.plugin_dirs = config
            .plugin_dirs
            .iter()
            .map(|dir| base.join(dir))
            .collect();
        if config.data_dir.is_relative() {
            config.data_dir = base.join(&config.data_dir);
        }
        Ok(config)
    }

    /// Apply `BERTH_DATA_DIR`, `BERTH_PLUGIN_DIRS` (colon-separated),
    /// `BERTH_TOKEN` and `BERTH_NO_BUNDLED`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(dir) = get("BERTH_DATA_DIR").filter(|v| !v.is_empty()) {
            self.data_dir = PathBuf::from(dir);
        }
        if let Some(dirs) = get("BERTH_PLUGIN_DIRS") {
            self.plugin_dirs
                .extend(std::env::split_paths(&dirs).filter(|p| !p.as_os_str().is_empty()));
        }
        if let Some(token) = get("BERTH_TOKEN").filter(|v| !v.is_empty()) {
            self.http.token = Some(token);
        }
        if let Some(value) = get("BERTH_NO_BUNDLED") {
            self.bundled_plugins = match value.as_str() {
                "1" | "true" | "yes" => false,
                "0" | "false" | "no" | "" => true,
                _ => {
                    return Err(ConfigError::Env {
                        name: "BERTH_NO_BUNDLED",
                        value,
                        expected: "1/true/yes or 0/false/no",
                    });
                }
            };
        }
        Ok(())
    }

    /// The limits for `plugin`: defaults with its overrides applied.
    pub fn limits_for(&self, plugin: &str) -> LimitsConfig {
        let mut limits = self.limits;
        if let Some(o) = self.plugin_limits.get(plugin) {
            limits.memory_mib = o.memory_mib.unwrap_or(limits.memory_mib);
            limits.cpu_ms = o.cpu_ms.unwrap_or(limits.cpu_ms);
            limits.timeout_ms = o.timeout_ms.unwrap_or(limits.timeout_ms);
            limits.max_concurrent = o.max_concurrent.unwrap_or(limits.max_concurrent);
            limits.max_output_bytes = o.max_output_bytes.unwrap_or(limits.max_output_bytes);
        }
        limits
    }

    /// The policy for `plugin`: the `"*"` entry joined with its own.
    pub fn policy_for(&self, plugin: &str) -> Policy {
        let mut policy = self.policy.get("*").cloned().unwrap_or_default();
        if let Some(own) = self.policy.get(plugin) {
            policy = policy.union(own);
        }
        policy
    }

    /// The settings of `plugin` as a JSON object string.
    pub fn plugin_config_json(&self, plugin: &str) -> String {
        self.plugin_config
            .get(plugin)
            .and_then(|table| serde_json::to_string(table).ok())
            .unwrap_or_else(|| "{}".to_string())
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("berth.db")
    }

    /// The compiled-component cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

impl PluginSettings for Config {
    fn bundled(&self) -> bool {
        self.bundled_plugins
    }

    fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    fn names_policy(&self, plugin: &str) -> bool {
        self.policy.contains_key(plugin)
    }

    fn policy_for(&self, plugin: &str) -> Policy {
        Config::policy_for(self, plugin)
    }

    fn limits_for(&self, plugin: &str) -> LimitsConfig {
        Config::limits_for(self, plugin)
    }

    fn plugin_config_json(&self, plugin: &str) -> String {
        Config::plugin_config_json(self, plugin)
    }

    fn pin_for(&self, plugin: &str) -> Option<&Pin> {
        self.pins.get(plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "plugin_dir = ['x']\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("plugin_dir"), "{err}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, "plugin_dirs = ['plugins']\ndata_dir = 'data'\n").unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.plugin_dirs, vec![dir.path().join("plugins")]);
        assert_eq!(config.data_dir, dir.path().join("data"));
    }

    #[test]
    fn env_overrides_and_rejects_bad_values() {
        let mut config = Config::default();
        config
            .apply_env(|k| match k {
                "BERTH_TOKEN" => Some("s3cret".into()),
                "BERTH_PLUGIN_DIRS" => Some("/a:/b".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.http.token.as_deref(), Some("s3cret"));
        assert_eq!(
            config.plugin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let err = config
            .apply_env(|k| (k == "BERTH_NO_BUNDLED").then(|| "maybe".into()))
            .unwrap_err();
        assert!(err.to_string().contains("BERTH_NO_BUNDLED"), "{err}");
    }

    #[test]
    fn plugin_limits_override_defaults_field_by_field() {
        let mut config = Config::default();
        config.plugin_limits.insert(
            "slow".into(),
            LimitsOverride {
                timeout_ms: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(config.limits_for("slow").timeout_ms, 5);
        assert_eq!(
            config.limits_for("slow").memory_mib,
            config.limits.memory_mib
        );
        assert_eq!(config.limits_for("other"), config.limits);
    }
}
