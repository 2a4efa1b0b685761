//! What a process starts from: the `[process]` section of berth.toml, the
//! environment built from it, and where a program is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

/// Find `program` on `path_var` (a `PATH` value) unless it is absolute.
pub fn resolve_program(program: &str, path_var: Option<&str>) -> Option<PathBuf> {
    let is_executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return (path.is_absolute() && is_executable(&path)).then_some(path);
    }
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

/// Variables no plan, plugin or caller may set, because they make a
/// program load code or run a tool other than the one that was granted:
/// loaders, interpreter options and tool redirections. (Prefixes end in
/// `_` or `*`; see [`is_forbidden_env`].)
pub const FORBIDDEN_ENV: &[&str] = &[
    // Dynamic loaders and glibc's module loading.
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    // Where programs are found, and which cluster or engine is driven.
    "PATH",
    "KUBECONFIG",
    "CONTAINERS_*",
    "CONTAINER_HOST",
    "DOCKER_HOST",
    "MIRRORD_*",
    // Interpreter options that preload code.
    "NODE_OPTIONS",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    // Shell start-up files and hooks.
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    // Compiler and tool redirections.
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTDOC",
    "RUSTFLAGS",
    "CARGO_BUILD_*",
    "CARGO_ENCODED_RUSTFLAGS",
    "CC",
    "CXX",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "GIT_PROXY_COMMAND",
    "GIT_CONFIG_*",
];

/// Whether `name` may not be set in a process's environment: malformed
/// (empty, or with `=` or NUL), or on [`FORBIDDEN_ENV`]. `CARGO_TARGET_*`
/// is refused too (it names linkers and runners), except the target
/// directory itself.
pub fn is_forbidden_env(name: &str) -> bool {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return true;
    }
    if name.starts_with("CARGO_TARGET_") && name != "CARGO_TARGET_DIR" {
        return true;
    }
    FORBIDDEN_ENV
        .iter()
        .any(|rule| match rule.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *rule,
        })
}

/// The environment every process starts from: the allow-listed host
/// variables, the configured fixed ones, and `HOME` set to `home`.
pub fn base_env(config: &ProcessConfig, home: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = config
        .env_allow
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (name.clone(), value)))
        .collect();
    env.extend(config.env_set.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.push(("HOME".into(), home.display().to_string()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_interpreter_and_redirect_variables_cannot_be_set() {
        for name in [
            "LD_PRELOAD",
            "A=B",
            "PATH",
            "KUBECONFIG",
            "RUSTC_WRAPPER",
            "NODE_OPTIONS",
            "BASH_ENV",
            "CONTAINERS_CONF",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
            "GIT_CONFIG_GLOBAL",
        ] {
            assert!(is_forbidden_env(name), "{name}");
        }
        for name in [
            "PYTHONPATH",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "UV_CACHE_DIR",
            "npm_config_cache",
        ] {
            assert!(!is_forbidden_env(name), "{name}");
        }
    }

    #[test]
    fn programs_resolve_on_path_or_absolute_only() {
        assert!(resolve_program("sh", Some("/usr/bin:/bin")).is_some());
        assert!(resolve_program("definitely-not-a-program", Some("/usr/bin")).is_none());
        assert!(resolve_program("./sh", Some("/bin")).is_none());
    }
}
