//! Opening one upstream connection: resolve the endpoint's secrets, start
//! the process, attach to the workload or reach the URL, and run the MCP
//! handshake within the server's time limit. A connection that fails
//! leaves nothing running.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use rmcp::RoleClient;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransport, StreamableHttpClientTransportConfig,
};

use super::client::Handler;
use super::config::{Endpoint, HttpTransport, WorkloadTransport};
use super::process::{self, Launch, ProcessGuard, Started};
use super::sse::SseTransport;
use crate::contract::bindings::shared::berth::plugin::workload_types::StdioLink;
use crate::contract::error::CallError;
use crate::contract::sink::Unattended;
use crate::runs::RunServices;
use crate::runtime::registry::Registry;
use crate::state::secrets::{Redactor, Secret, SecretStore};
use crate::sys::isolation::View;
use crate::sys::process::ProcessConfig;

/// Largest message berth reads from an upstream. A result this large is
/// read and then refused with the output cap; beyond it the message is
/// dropped unread.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The current registry, from the host above this layer; `None` once the
/// host is gone.
pub type RegistrySource = Box<dyn Fn() -> Option<Arc<Registry>> + Send + Sync>;

/// What connecting needs from the host.
pub struct Connector {
    /// The secrets store.
    pub secrets: SecretStore,
    /// Run services, for the isolation local servers run in.
    pub runs: Arc<RunServices>,
    /// The environment allow-list processes start from.
    pub process: ProcessConfig,
    /// Where servers' processes get their home directories.
    pub servers_root: PathBuf,
    /// Where backends are found, for workload upstreams.
    pub registry: OnceLock<RegistrySource>,
}

/// A live connection to an upstream.
pub struct Connection {
    /// The MCP session.
    pub service: RunningService<RoleClient, Handler>,
    /// The process berth runs for it (the server, or the attach command).
    pub process: Option<ProcessGuard>,
}

/// An endpoint with its secrets resolved.
pub struct Resolved {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Redacts the secrets used.
    pub redactor: Arc<Redactor>,
}

/// Either protocol era: `server/discover` first, `initialize` for a server
/// that does not know it.
fn either_era() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    }
}

impl Connector {
    /// `endpoint` with every `${secret:NAME}` replaced, or the error naming
    /// the first secret that is missing.
    pub fn resolve(&self, endpoint: &Endpoint) -> Result<Resolved, String> {
        let mut used: Vec<Secret> = Vec::new();
        let mut lookup = self.secrets.lookup();
        let mut expand = |map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, v)| {
                    let (value, secrets) = lookup.expand(v).map_err(|e| e.to_string())?;
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
            Endpoint::Workload { redact, .. } => {
                // A secret removed since the deploy has nothing to redact.
                used.extend(redact.iter().filter_map(|name| lookup.get(name).ok()));
                endpoint.clone()
            }
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
        let redactor = &resolved.redactor;
        match &resolved.endpoint {
            Endpoint::Command {
                argv,
                env,
                network,
                read_only,
            } => {
                let isolation = self
                    .runs
                    .isolation(&self.process)
                    .map_err(|e| CallError::Plugin(e).message())?;
                let view = View {
                    writable: Vec::new(),
                    read_only: read_only.clone(),
                    network: *network,
                    nested_namespaces: false,
                };
                let started = process::start(Launch {
                    server: name,
                    argv,
                    env,
                    home: self.servers_root.join(name),
                    process: &self.process,
                    confine: isolation.map(|i| (i, view)),
                    redactor: redactor.clone(),
                })
                .map_err(|e| format!("{e:#}"))?;
                over_stdio(&format!("`{}`", argv[0]), started, handler, init_timeout).await
            }
            Endpoint::Url {
                url,
                transport,
                headers,
            } => over_http(url, *transport, headers, handler, init_timeout)
                .await
                .map_err(|e| redactor.redact(&e)),
            Endpoint::Workload {
                backend,
                workload,
                transport,
                ..
            } => {
                let registry = self
                    .registry
                    .get()
                    .and_then(|source| source())
                    .ok_or("berth is shutting down")?;
                let backend = registry
                    .backend(backend)
                    .map_err(|e| CallError::Plugin(e).message())?;
                let what = format!("workload `{workload}` on {}", backend.name());
                match transport {
                    WorkloadTransport::Http => {
                        let status = backend
                            .workload_status(workload, Arc::new(Unattended))
                            .await
                            .map_err(|e| e.message())?;
                        let endpoint = status
                            .endpoints
                            .first()
                            .filter(|_| status.phase == "running")
                            .ok_or_else(|| {
                                format!("{what} is {} with no endpoint", status.phase)
                            })?;
                        let url = format!("http://{endpoint}/mcp");
                        over_http(
                            &url,
                            HttpTransport::StreamableHttp,
                            &BTreeMap::new(),
                            handler,
                            init_timeout,
                        )
                        .await
                    }
                    WorkloadTransport::Stdio => {
                        let link = backend
                            .workload_attach(workload, Arc::new(Unattended))
                            .await
                            .map_err(|e| e.message())?;
                        let StdioLink::Command(command) = link;
                        if !backend.allows_program(&command.program) {
                            return Err(format!(
                                "backend `{}` asked berth to run `{}` to attach, which its policy does not grant",
                                backend.name(),
                                command.program
                            ));
                        }
                        let argv: Vec<String> = std::iter::once(command.program.clone())
                            .chain(command.args)
                            .collect();
                        let env: BTreeMap<String, String> = command.env.into_iter().collect();
                        // The attach command reaches the backend's platform
                        // (podman's socket, a cluster), as the backend's own
                        // commands do: it is not confined.
                        let started = process::start(Launch {
                            server: name,
                            argv: &argv,
                            env: &env,
                            home: self.servers_root.join(name),
                            process: &self.process,
                            confine: None,
                            redactor: redactor.clone(),
                        })
                        .map_err(|e| format!("{e:#}"))?;
                        over_stdio(&what, started, handler, init_timeout).await
                    }
                }
            }
        }
    }
}

/// The MCP handshake over a started process's stdio; on failure the
/// process is killed and its stderr quoted.
async fn over_stdio(
    what: &str,
    started: Started,
    handler: Handler,
    init_timeout: Duration,
) -> Result<Connection, String> {
    let Started {
        guard,
        stdout,
        stdin,
    } = started;
    let transport =
        AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MAX_MESSAGE_BYTES);
    match tokio::time::timeout(
        init_timeout,
        handler.serve_with_lifecycle(transport, either_era()),
    )
    .await
    {
        Ok(Ok(service)) => Ok(Connection {
            service,
            process: Some(guard),
        }),
        Ok(Err(err)) => Err(process::with_stderr(
            format!("{what} failed the MCP handshake: {err}"),
            &guard,
        )),
        Err(_) => Err(process::with_stderr(
            format!(
                "{what} did not answer the MCP handshake within {} s; it was stopped",
                init_timeout.as_secs()
            ),
            &guard,
        )),
    }
}

/// The MCP handshake with a server at `url`.
async fn over_http(
    url: &str,
    transport: HttpTransport,
    headers: &BTreeMap<String, String>,
    handler: Handler,
    init_timeout: Duration,
) -> Result<Connection, String> {
    // No redirects: the headers may hold secrets, and a redirect could
    // send them to another origin.
    let client = http_builder()
        .and_then(|b| {
            b.redirect(reqwest::redirect::Policy::none())
                .build()
                .context("building the HTTP client")
        })
        .map_err(|e| format!("{e:#}"))?;
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
        let outcome: Result<RunningService<RoleClient, Handler>, String> = match transport {
            HttpTransport::StreamableHttp => {
                let custom: HashMap<_, _> =
                    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let config = StreamableHttpClientTransportConfig::with_uri(url)
                    .custom_headers(custom)
                    .max_sse_event_size(MAX_MESSAGE_BYTES);
                let transport = StreamableHttpClientTransport::with_client(client, config);
                handler
                    .serve_with_lifecycle(transport, either_era())
                    .await
                    .map_err(|e| format!("{url} failed the MCP handshake: {e}"))
            }
            HttpTransport::Sse => {
                let transport = SseTransport::connect(client, url, map, MAX_MESSAGE_BYTES).await?;
                // The legacy transport predates `server/discover`.
                handler
                    .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize)
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
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!(
            "{url} did not answer the MCP handshake within {} s",
            init_timeout.as_secs()
        )),
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
