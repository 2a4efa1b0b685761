//! Kubernetes through kube-rs: the clusters berth can reach, the
//! kubectl-equivalent actions behind the `kube` capability, and the
//! port-forwards it holds open. Nothing here shells out to kubectl.

pub mod actions;
pub mod config;
pub mod forward;
pub mod manifest;
pub mod names;
pub mod privileges;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::contract::bindings::types::Error as WitError;
use config::KubeConfig;

/// Longest wait for a TCP connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected cluster: a client and the namespace used when none is named.
#[derive(Clone)]
pub struct Cluster {
    /// The API client.
    pub client: Client,
    /// The kubeconfig context's namespace, or `default`.
    pub default_namespace: String,
    /// Kinds already found through discovery, by (apiVersion, kind), so
    /// that each is looked up once per cluster rather than once per action.
    pub kinds: Arc<Mutex<HashMap<(String, String), actions::Kind>>>,
}

/// Clients by kubeconfig context, built on first use.
pub struct Clusters {
    config: KubeConfig,
    clients: tokio::sync::Mutex<HashMap<Option<String>, Cluster>>,
    /// Port-forwards opened by plugins.
    pub forwards: forward::Forwards,
}

impl Clusters {
    /// Clusters as `config` describes them; nothing is read until first use.
    pub fn new(config: KubeConfig) -> Self {
        Self {
            config,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            forwards: forward::Forwards::default(),
        }
    }

    /// The cluster of `context` (the configured one when absent). Reading
    /// the kubeconfig sends no request; the first action does.
    pub async fn get(&self, context: Option<&str>) -> Result<Cluster, WitError> {
        let key = context.map(str::to_owned);
        let mut clients = self.clients.lock().await;
        if let Some(cluster) = clients.get(&key) {
            return Ok(cluster.clone());
        }
        let mut config = self.load(context).await?;
        let timeout = Duration::from_secs(self.config.request_timeout_secs.max(1));
        // A reachable API server accepts a connection in milliseconds; an
        // unreachable one (a stale kubeconfig) should fail fast, since the
        // reaper asks at every start.
        config.connect_timeout = Some(timeout.min(CONNECT_TIMEOUT));
        config.write_timeout = Some(timeout);
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config)
            .map_err(|e| WitError::Unavailable(format!("cannot build a Kubernetes client: {e}")))?;
        let cluster = Cluster {
            client,
            default_namespace,
            kinds: Arc::default(),
        };
        clients.insert(key, cluster.clone());
        Ok(cluster)
    }

    async fn load(&self, context: Option<&str>) -> Result<Config, WitError> {
        let options = KubeConfigOptions {
            context: context
                .map(str::to_owned)
                .or_else(|| self.config.context.clone()),
            ..KubeConfigOptions::default()
        };
        let unavailable = |what: String| {
            WitError::Unavailable(format!(
                "no Kubernetes cluster: {what}; set [kube] kubeconfig in berth.toml or KUBECONFIG, or run berth in a cluster"
            ))
        };
        if let Some(path) = &self.config.kubeconfig {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| unavailable(format!("reading {}: {e}", path.display())))?;
            return Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| unavailable(format!("{}: {e}", path.display())));
        }
        if options.context.is_some() {
            return Config::from_kubeconfig(&options)
                .await
                .map_err(|e| unavailable(e.to_string()));
        }
        Config::infer()
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

/// The WIT error for a failed API request, keeping the server's reason
/// and message.
pub fn api_error(what: &str, err: kube::Error) -> WitError {
    match err {
        kube::Error::Api(status) => {
            let text = format!(
                "{what}: {} ({}): {}",
                status.reason, status.code, status.message
            );
            match status.code {
                404 => WitError::NotFound(text),
                403 | 401 => WitError::Denied(text),
                400 | 409 | 422 => WitError::InvalidInput(text),
                504 => WitError::Timeout(text),
                _ => WitError::Failed(text),
            }
        }
        kube::Error::HyperError(e) => {
            WitError::Unavailable(format!("{what}: the API server is not reachable: {e}"))
        }
        kube::Error::Service(e) => {
            WitError::Unavailable(format!("{what}: the API server is not reachable: {e}"))
        }
        other => WitError::Failed(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the message", reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn api_errors_keep_the_server_reason_and_message() {
        match api_error("getting pod/x", status(404, "NotFound")) {
            WitError::NotFound(text) => {
                assert_eq!(text, "getting pod/x: NotFound (404): the message")
            }
            other => panic!("expected not-found, got {other:?}"),
        }
        assert!(matches!(
            api_error("a", status(403, "Forbidden")),
            WitError::Denied(t) if t.contains("Forbidden")
        ));
        assert!(matches!(
            api_error("a", status(409, "Conflict")),
            WitError::InvalidInput(t) if t.contains("Conflict")
        ));
        assert!(matches!(
            api_error("a", status(422, "Invalid")),
            WitError::InvalidInput(t) if t.contains("Invalid")
        ));
        assert!(matches!(
            api_error("a", status(500, "InternalError")),
            WitError::Failed(_)
        ));
    }
}
