//! `[servers.NAME]` in berth.toml: an upstream MCP server berth connects
//! to, as a command it starts or a URL it reaches.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::runtime::filter::ToolFilter;
use crate::state::secrets::{self, SecretError};

/// Longest server name; its tools are served as `NAME__tool`.
pub const MAX_SERVER_NAME_LEN: usize = 24;

/// How berth speaks to a URL upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpTransport {
    /// Streamable HTTP (MCP 2025-03-26 and later, both protocol eras).
    #[default]
    StreamableHttp,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05): an event stream for
    /// answers and a separate endpoint for requests.
    Sse,
}

/// How a workload speaks MCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadTransport {
    /// Its main process's stdin and stdout, reached through the backend's
    /// attach command.
    Stdio,
    /// Streamable HTTP at `/mcp` on its first endpoint.
    Http,
}

/// When berth connects to a configured server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// When berth starts serving.
    #[default]
    Start,
    /// When an agent calls `attach_server` with its name.
    OnRequest,
}

/// One `[servers.NAME]` entry. Exactly one of `command` and `url`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Program and arguments of a local stdio server, as a list (no shell
    /// in between). It runs confined like a snippet (`[runs] isolate`),
    /// with a home of its own under the data directory.
    pub command: Vec<String>,
    /// Environment of the command, on top of `[process]`'s allow-list.
    /// Values may hold `${secret:NAME}`.
    pub env: BTreeMap<String, String>,
    /// Whether the command keeps the network (package runners such as `npx`
    /// and `uvx` need it to fetch the server).
    pub network: Option<bool>,
    /// Host directories the command may read besides the system's and the
    /// runtimes on `PATH` (the server's own code, a virtualenv).
    pub read_only: Vec<std::path::PathBuf>,
    /// URL of a remote server.
    pub url: Option<String>,
    /// Which HTTP transport `url` speaks.
    pub transport: HttpTransport,
    /// Headers sent with every request to `url`; values may hold
    /// `${secret:NAME}`.
    pub headers: BTreeMap<String, String>,
    /// Which of its tools are served (names as the upstream gives them).
    pub tools: ToolFilter,
    /// When to connect.
    pub attach: AttachMode,
    /// Seconds the server has to answer `initialize`.
    pub init_timeout_secs: Option<u64>,
}

/// Where a server is, with its secrets still unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A local process speaking MCP on stdio.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Extra environment (values may hold secret references).
        env: BTreeMap<String, String>,
        /// Whether it keeps the network.
        network: bool,
        /// Directories it may read.
        read_only: Vec<std::path::PathBuf>,
    },
    /// A workload a backend runs (deployed from a template).
    Workload {
        /// The backend plugin.
        backend: String,
        /// The workload's name.
        workload: String,
        /// How the workload speaks MCP.
        transport: WorkloadTransport,
        /// Secrets the workload was given, redacted from what it sends.
        redact: Vec<String>,
    },
    /// A remote server.
    Url {
        /// Its URL.
        url: String,
        /// The transport it speaks.
        transport: HttpTransport,
        /// Headers (values may hold secret references).
        headers: BTreeMap<String, String>,
    },
}

/// Why a `[servers.NAME]` entry is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    /// The name breaks the rule.
    #[error(
        "server name `{0}` is not valid: use 1-24 characters of a-z, 0-9 and '-', starting with a letter"
    )]
    Name(String),
    /// Neither or both of command and url.
    #[error("[servers.{0}] needs exactly one of `command` (a local stdio server) and `url`")]
    Endpoint(String),
    /// The URL is not http(s).
    #[error("[servers.{name}] url `{url}` is not an http:// or https:// URL")]
    Url {
        /// The server.
        name: String,
        /// The URL given.
        url: String,
    },
    /// A header or environment name is malformed or forbidden.
    #[error("[servers.{name}] {what} `{key}` cannot be set: {why}")]
    Key {
        /// The server.
        name: String,
        /// `env` or `headers`.
        what: &'static str,
        /// The name given.
        key: String,
        /// Why not.
        why: &'static str,
    },
    /// A secret reference is malformed.
    #[error("[servers.{name}]: {source}")]
    Secret {
        /// The server.
        name: String,
        /// The malformed reference.
        source: SecretError,
    },
}

/// Whether `name` may name an upstream server.
pub fn is_valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ServerConfig {
    /// The endpoint of server `name`, with every key and secret reference
    /// checked (no secret is looked up yet).
    pub fn endpoint(&self, name: &str) -> Result<Endpoint, ServerConfigError> {
        if !is_valid_server_name(name) {
            return Err(ServerConfigError::Name(name.to_string()));
        }
        let secret = |source| ServerConfigError::Secret {
            name: name.to_string(),
            source,
        };
        match (&self.command[..], &self.url) {
            ([_, ..], None) => {
                for (key, value) in &self.env {
                    if crate::sys::process::is_forbidden_env(key) {
                        return Err(ServerConfigError::Key {
                            name: name.into(),
                            what: "env",
                            key: key.clone(),
                            why: "it is malformed or lets a process load other code",
                        });
                    }
                    secrets::references(value).map_err(secret)?;
                }
                Ok(Endpoint::Command {
                    argv: self.command.clone(),
                    env: self.env.clone(),
                    network: self.network.unwrap_or(true),
                    read_only: self.read_only.clone(),
                })
            }
            ([], Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ServerConfigError::Url {
                        name: name.into(),
                        url: url.clone(),
                    });
                }
                for (key, value) in &self.headers {
                    if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
                        return Err(ServerConfigError::Key {
                            name: name.into(),
                            what: "header",
                            key: key.clone(),
                            why: "it is not a valid HTTP header name",
                        });
                    }
                    secrets::references(value).map_err(secret)?;
                }
                Ok(Endpoint::Url {
                    url: url.clone(),
                    transport: self.transport,
                    headers: self.headers.clone(),
                })
            }
            _ => Err(ServerConfigError::Endpoint(name.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ServerConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_command_or_a_url_but_not_both() {
        let both = parse("command = ['x']\nurl = 'http://h/mcp'");
        assert!(matches!(
            both.endpoint("s"),
            Err(ServerConfigError::Endpoint(_))
        ));
        let none = ServerConfig::default();
        assert!(none.endpoint("s").is_err());
        let cmd = parse("command = ['uvx', 'mcp-server-time']\nenv = { TZ = 'UTC' }");
        assert!(matches!(
            cmd.endpoint("time"),
            Ok(Endpoint::Command { network: true, .. })
        ));
        let url = parse("url = 'https://h/sse'\ntransport = 'sse'");
        assert!(matches!(
            url.endpoint("remote"),
            Ok(Endpoint::Url {
                transport: HttpTransport::Sse,
                ..
            })
        ));
    }

    #[test]
    fn bad_names_keys_urls_and_references_are_named() {
        let ok = parse("command = ['x']");
        for bad in ["", "Upper", "9lives", "has_underscore", &"a".repeat(25)] {
            let err = ok.endpoint(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let env = parse("command = ['x']\nenv = { LD_PRELOAD = '/evil.so' }");
        assert!(
            env.endpoint("s")
                .unwrap_err()
                .to_string()
                .contains("LD_PRELOAD")
        );
        let url = parse("url = 'file:///etc/passwd'");
        assert!(
            url.endpoint("s")
                .unwrap_err()
                .to_string()
                .contains("file:///etc/passwd")
        );
        let header = parse("url = 'http://h'\nheaders = { 'bad header' = 'x' }");
        assert!(
            header
                .endpoint("s")
                .unwrap_err()
                .to_string()
                .contains("bad header")
        );
        let reference = parse("command = ['x']\nenv = { K = '${secret:a/b}' }");
        assert!(
            reference
                .endpoint("s")
                .unwrap_err()
                .to_string()
                .contains("a/b")
        );
        let unknown: Result<ServerConfig, _> = toml::from_str("comand = ['x']");
        assert!(unknown.unwrap_err().to_string().contains("comand"));
    }
}
