//! `berth.toml`: where plugins come from, what each may do, and its limits.
//!
//! Precedence, lowest first: built-in defaults, the config file, `BERTH_*`
//! environment variables, command-line flags (applied by [`crate::cli`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capabilities::grants::Policy;

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
}

/// Which cluster `kube` uses. Without settings it follows kubectl:
/// `KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeConfig {
    /// A kubeconfig file to read instead.
    pub kubeconfig: Option<PathBuf>,
    /// The context to use instead of the kubeconfig's current one.
    pub context: Option<String>,
    /// Longest a single API request may take, seconds.
    pub request_timeout_secs: u64,
}

impl Default for KubeConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            request_timeout_secs: 30,
        }
    }
}

/// Tool filter: a tool is served when it matches `allow` (or `allow` is
/// empty) and does not match `deny`. Patterns are names with `*` wildcards.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolFilter {
    /// Patterns of tools to serve.
    pub allow: Vec<String>,
    /// Patterns of tools to hide.
    pub deny: Vec<String>,
}

impl ToolFilter {
    /// Whether `tool` passes the filter.
    pub fn admits(&self, tool: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|p| glob_match(p, tool)))
            && !self.deny.iter().any(|p| glob_match(p, tool))
    }
}

/// Match `name` against `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Streamable HTTP settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bearer token clients must send. Required for a non-loopback bind.
    pub token: Option<String>,
    /// Host header values accepted besides loopback names (for example the
    /// name berth is reached by inside a cluster).
    pub allowed_hosts: Vec<String>,
    /// Origin header values accepted from browsers; when empty, requests that
    /// carry an Origin must come from a loopback origin.
    pub allowed_origins: Vec<String>,
}

/// Limits applied to each plugin call.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory per instance, MiB.
    pub memory_mib: u32,
    /// CPU time a call may spend executing wasm, milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time a call may take, including host functions, ms.
    pub timeout_ms: u64,
    /// Calls of one plugin that may run at once; more wait their turn.
    pub max_concurrent: u32,
    /// Largest tool output a plugin may return, bytes.
    pub max_output_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mib: 128,
            cpu_ms: 10_000,
            timeout_ms: 120_000,
            max_concurrent: 16,
            max_output_bytes: 4 << 20,
        }
    }
}

/// Per-plugin overrides of [`LimitsConfig`]; absent fields keep the default.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// See [`LimitsConfig::memory_mib`].
    pub memory_mib: Option<u32>,
    /// See [`LimitsConfig::cpu_ms`].
    pub cpu_ms: Option<u64>,
    /// See [`LimitsConfig::timeout_ms`].
    pub timeout_ms: Option<u64>,
    /// See [`LimitsConfig::max_concurrent`].
    pub max_concurrent: Option<u32>,
    /// See [`LimitsConfig::max_output_bytes`].
    pub max_output_bytes: Option<u64>,
}

/// Caps on processes the host runs for plugins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Default and largest timeout of one process, ms.
    pub timeout_ms: u64,
    /// Cap on each of stdout and stderr, bytes.
    pub max_output_bytes: usize,
    /// Environment variables passed through from the host to every process.
    pub env_allow: Vec<String>,
    /// Environment variables set to fixed values in every process. By
    /// default `RUSTUP_HOME` points at the host's rustup, so the `cargo`
    /// proxy works with `HOME` moved to the workspace.
    pub env_set: BTreeMap<String, String>,
    /// Processes that may run at once across all plugins.
    pub max_concurrent: usize,
}

/// How the generated `run_<language>` tools run snippets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// Size cap of the environment cache, MiB; least recently used
    /// environments are removed beyond it.
    pub env_cache_mib: u64,
    /// Memory limit of a snippet's processes, MiB (with cgroups).
    pub memory_mib: u64,
    /// Most processes and threads of a snippet at once (with cgroups).
    pub pids: u64,
    /// Whether to use cgroups for the limits when the host allows it.
    pub cgroups: bool,
    /// Time limit of each environment setup or build step, seconds.
    pub setup_timeout_secs: u64,
    /// Default time limit of the run step, seconds.
    pub default_timeout_secs: u64,
    /// Largest time limit a caller may ask for, seconds.
    pub max_timeout_secs: u64,
    /// Largest snippet accepted, bytes.
    pub max_code_bytes: usize,
    /// A session unused this long is removed, seconds.
    pub session_idle_secs: u64,
    /// What a sandbox for each language runs, by language.
    pub sandbox_images: BTreeMap<String, SandboxImage>,
    /// Most fork servers (pre-loaded interpreters a runner offers) kept
    /// at once; 0 turns them off.
    pub fork_servers: usize,
    /// A fork server unused this long is stopped, seconds.
    pub fork_server_idle_secs: u64,
}

/// The image a sandbox for one language uses, and what it mounts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxImage {
    /// Image reference, e.g. `python:3.12-slim`.
    pub image: String,
    /// Host directories to mount, as `HOST:CONTAINER[:ro]`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// Whether the sandbox gets network access (to install dependencies).
    #[serde(default)]
    pub network: bool,
    /// Sandboxes to keep created and ready, by backend name, while berth
    /// serves (a warm pool); none by default.
    #[serde(default)]
    pub pool: BTreeMap<String, usize>,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            env_cache_mib: 10 * 1024,
            memory_mib: 1024,
            pids: 256,
            cgroups: true,
            setup_timeout_secs: 600,
            default_timeout_secs: 60,
            max_timeout_secs: 900,
            max_code_bytes: 1 << 20,
            session_idle_secs: 3600,
            sandbox_images: BTreeMap::new(),
            fork_servers: 8,
            fork_server_idle_secs: 600,
        }
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 300_000,
            max_output_bytes: 1 << 20,
            env_allow: [
                "PATH",
                "LANG",
                "LC_ALL",
                "TZ",
                "TERM",
                "SSL_CERT_FILE",
                "SSL_CERT_DIR",
                // Trust stores and proxies, so package managers reach their
                // registries the way the host does.
                "NODE_EXTRA_CA_CERTS",
                "PIP_CERT",
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "CARGO_HTTP_CAINFO",
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "NO_PROXY",
                "http_proxy",
                "https_proxy",
                "no_proxy",
            ]
            .map(String::from)
            .to_vec(),
            env_set: default_env_set(),
            max_concurrent: 32,
        }
    }
}

/// `RUSTUP_HOME` and `RUSTUP_TOOLCHAIN` as the host sees them, so rustup's
/// proxies keep finding the toolchain when a process gets its own `HOME`.
fn default_env_set() -> BTreeMap<String, String> {
    let mut set = BTreeMap::new();
    let rustup_home = std::env::var("RUSTUP_HOME").ok().or_else(|| {
        let home = std::env::var("HOME").ok()?;
        let dir = Path::new(&home).join(".rustup");
        dir.is_dir().then(|| dir.display().to_string())
    });
    if let Some(dir) = rustup_home {
        set.insert("RUSTUP_HOME".to_string(), dir);
    }
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        set.insert("RUSTUP_TOOLCHAIN".to_string(), toolchain);
    }
    set
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
        }
    }
}

fn default_data_dir() -> PathBuf {
    dirs::data_local_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("berth")
}

impl Config {
    /// Read `path` if given, else `./berth.toml` if it exists, else the
    /// defaults; then apply `BERTH_*` environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new("berth.toml").is_file() => Self::from_file(Path::new("berth.toml"))?,
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_prefix_suffix_and_middle() {
        assert!(glob_match("run_*", "run_python"));
        assert!(glob_match("*_status", "pod_status"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXcYYb"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("*", "anything"));
    }

    #[test]
    fn filter_applies_allow_then_deny() {
        let filter = ToolFilter {
            allow: vec!["run_*".into()],
            deny: vec!["run_rust".into()],
        };
        assert!(filter.admits("run_python"));
        assert!(!filter.admits("run_rust"));
        assert!(!filter.admits("deploy"));
    }

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
