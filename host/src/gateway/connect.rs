//! Opening one upstream connection: resolve the endpoint's secrets, start
//! the process or reach the URL, and run the MCP handshake within the
//! server's time limit. A connection that fails leaves nothing running.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use rmcp::RoleClient;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::client::Handler;
use super::config::{Endpoint, HttpTransport};
use super::sse::SseTransport;
use crate::runs::RunServices;
use crate::state::secrets::{Redactor, Secret, SecretStore};
use crate::sys::isolation::View;
use crate::sys::process::{ProcessConfig, base_env, resolve_program};

/// Largest message berth reads from an upstream. A result this large is
/// read and then refused with the output cap; beyond it the message is
/// dropped unread.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Lines of a local server's stderr kept to explain a failed start.
const STDERR_TAIL: usize = 20;

/// What connecting needs from the host.
pub struct Connector {
    /// The secrets store.
    pub secrets: SecretStore,
    /// Run services, for the isolation local servers run in.
    pub runs: Arc<RunServices>,
    /// The environment allow-list local servers start from.
    pub process: ProcessConfig,
    /// Where local servers get their home directories.
    pub servers_root: PathBuf,
}

/// A local server's process group, killed when the connection is dropped.
pub struct ProcessGuard {
    child: tokio::process::Child,
    /// The last lines the server wrote to stderr.
    pub stderr: Arc<Mutex<VecDeque<String>>>,
}

impl ProcessGuard {
    /// Its stderr's last lines, joined.
    pub fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            // The server may have started children of its own (npx starts
            // node); the whole group goes.
            // SAFETY: killpg has no memory effects; the group is the one
            // the child leads (process_group(0)).
            unsafe {
                libc::killpg(pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// A live connection to an upstream.
pub struct Connection {
    /// The MCP session.
    pub service: RunningService<RoleClient, Handler>,
    /// The local process, when the server is one.
    pub process: Option<ProcessGuard>,
}

/// An endpoint with its secrets resolved.
pub struct Resolved {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Redacts the secrets used.
    pub redactor: Arc<Redactor>,
}

impl Connector {
    /// `endpoint` with every `${secret:NAME}` replaced, or the error naming
    /// the first secret that is missing.
    pub fn resolve(&self, endpoint: &Endpoint) -> Result<Resolved, String> {
        let mut used: Vec<Secret> = Vec::new();
        let mut expand = |map: &std::collections::BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| {
                    let (value, secrets) = self.secrets.expand(v).map_err(|e| e.to_string())?;
                    used.extend(secrets);
                    Ok((k.clone(), value))
                })
                .collect::<Result<_, String>>()
        };
        let endpoint = match endpoint {
            Endpoint::Command {
                argv,
                env,
                network,
                read_only,
            } => Endpoint::Command {
                argv: argv.clone(),
                env: expand(env)?,
                network: *network,
                read_only: read_only.clone(),
            },
            Endpoint::Url {
                url,
                transport,
                headers,
            } => Endpoint::Url {
                url: url.clone(),
                transport: *transport,
                headers: expand(headers)?,
            },
        };
        Ok(Resolved {
            endpoint,
            redactor: Arc::new(Redactor::new(used)),
        })
    }

    /// Connect to server `name` at `resolved`, with `handler` as berth's
    /// client side; the handshake must finish within `init_timeout`.
    pub async fn connect(
        &self,
        name: &str,
        resolved: &Resolved,
        handler: Handler,
        init_timeout: Duration,
    ) -> Result<Connection, String> {
        // Either era: `server/discover` first, `initialize` for a server
        // that does not know it.
        let lifecycle = ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        };
        match &resolved.endpoint {
            Endpoint::Command {
                argv,
                env,
                network,
                read_only,
            } => {
                let view = View {
                    writable: Vec::new(),
                    read_only: read_only.clone(),
                    network: *network,
                    nested_namespaces: false,
                };
                let (process, stdout, stdin) = self
                    .spawn(name, argv, env, view, &resolved.redactor)
                    .map_err(|e| format!("{e:#}"))?;
                let transport = AsyncRwTransport::new_client(stdout, stdin)
                    .with_max_line_length(MAX_MESSAGE_BYTES);
                match tokio::time::timeout(
                    init_timeout,
                    handler.serve_with_lifecycle(transport, lifecycle),
                )
                .await
                {
                    Ok(Ok(service)) => Ok(Connection {
                        service,
                        process: Some(process),
                    }),
                    Ok(Err(err)) => Err(with_stderr(
                        format!("`{}` failed the MCP handshake: {err}", argv[0]),
                        &process,
                    )),
                    Err(_) => Err(with_stderr(
                        format!(
                            "`{}` did not answer the MCP handshake within {} s; it was stopped",
                            argv[0],
                            init_timeout.as_secs()
                        ),
                        &process,
                    )),
                }
            }
            Endpoint::Url {
                url,
                transport,
                headers,
            } => {
                let client = http_client().map_err(|e| format!("{e:#}"))?;
                let mut map = reqwest::header::HeaderMap::new();
                for (k, v) in headers {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header `{k}`: {e}"))?;
                    let mut value = reqwest::header::HeaderValue::from_str(v)
                        .map_err(|_| format!("the value of header `{k}` is not valid in HTTP"))?;
                    value.set_sensitive(true);
                    map.insert(name, value);
                }
                let handshake = async {
                    let outcome: Result<RunningService<RoleClient, Handler>, String> =
                        match transport {
                            HttpTransport::StreamableHttp => {
                                let custom: HashMap<_, _> =
                                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                                let config =
                                    StreamableHttpClientTransportConfig::with_uri(url.as_str())
                                        .custom_headers(custom)
                                        .max_sse_event_size(MAX_MESSAGE_BYTES);
                                let transport =
                                    StreamableHttpClientTransport::with_client(client, config);
                                handler
                                    .serve_with_lifecycle(transport, lifecycle)
                                    .await
                                    .map_err(|e| format!("{url} failed the MCP handshake: {e}"))
                            }
                            HttpTransport::Sse => {
                                let transport =
                                    SseTransport::connect(client, url, map, MAX_MESSAGE_BYTES)
                                        .await?;
                                // The legacy transport predates `server/discover`.
                                handler
                                    .serve_with_lifecycle(
                                        transport,
                                        ClientLifecycleMode::Initialize,
                                    )
                                    .await
                                    .map_err(|e| format!("{url} failed the MCP handshake: {e}"))
                            }
                        };
                    outcome
                };
                match tokio::time::timeout(init_timeout, handshake).await {
                    Ok(Ok(service)) => Ok(Connection {
                        service,
                        process: None,
                    }),
                    Ok(Err(err)) => Err(resolved.redactor.redact(&err)),
                    Err(_) => Err(format!(
                        "{url} did not answer the MCP handshake within {} s",
                        init_timeout.as_secs()
                    )),
                }
            }
        }
    }

    /// Start a local server in its own process group, confined like a
    /// snippet when this host can, with its home under the data directory.
    fn spawn(
        &self,
        name: &str,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        mut view: View,
        redactor: &Arc<Redactor>,
    ) -> anyhow::Result<(
        ProcessGuard,
        tokio::process::ChildStdout,
        tokio::process::ChildStdin,
    )> {
        let home = self.servers_root.join(name);
        std::fs::create_dir_all(&home)
            .with_context(|| format!("creating the server's home {}", home.display()))?;
        let mut vars = base_env(&self.process, &home);
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let path = vars
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        let program = resolve_program(&argv[0], path).with_context(|| {
            format!(
                "`{}` is not an absolute path or a program on PATH ({})",
                argv[0],
                path.unwrap_or("unset")
            )
        })?;
        let args = argv[1..].to_vec();
        let (program, args) =
            match self.runs.isolation(&self.process).map_err(|e| {
                anyhow::anyhow!("{}", crate::contract::error::describe_wit_error(&e).1)
            })? {
                Some(isolation) => {
                    view.writable.push(home.clone());
                    isolation.wrap(&program, &args, &home, &view, None)
                }
                None => (program, args),
            };
        let mut child = tokio::process::Command::new(&program)
            .args(&args)
            .env_clear()
            .envs(vars)
            .current_dir(&home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let tail = stderr.clone();
            let server = name.to_string();
            let redactor = redactor.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line = redactor.redact(&line);
                    tracing::info!(target: "berth::upstream", server = %server, "{line}");
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let stdout = child.stdout.take().context("the server's stdout")?;
        let stdin = child.stdin.take().context("the server's stdin")?;
        Ok((ProcessGuard { child, stderr }, stdout, stdin))
    }
}

fn with_stderr(message: String, process: &ProcessGuard) -> String {
    let tail = process.stderr_tail();
    if tail.is_empty() {
        message
    } else {
        format!("{message}; its stderr ended with:\n{tail}")
    }
}

/// An HTTP client for upstreams; see [`http_builder`].
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    http_builder()?.build().context("building the HTTP client")
}

/// An HTTP client builder with berth's TLS: rustls with ring and the
/// platform's trust store, chosen here rather than by a process-wide
/// default provider.
pub fn http_builder() -> anyhow::Result<reqwest::ClientBuilder> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_platform_verifier()
        .context("the platform's certificate verifier")?
        .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}
