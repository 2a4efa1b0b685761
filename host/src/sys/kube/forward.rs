//! Port-forwards: a loopback listener on the host per forward, and a fresh
//! API-server port-forward stream for every connection it accepts.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Cluster, api_error};
use crate::contract::bindings::types::Error as WitError;

/// Most forwards one plugin may hold open.
pub const MAX_PER_OWNER: usize = 64;

struct Forward {
    owner: String,
    stop: CancellationToken,
}

/// The forwards open now, by local address.
#[derive(Default)]
pub struct Forwards {
    open: Mutex<HashMap<String, Forward>>,
}

impl Forwards {
    /// Forward a new loopback port to `port` of `pod`; returns its address.
    /// The pod is looked up first, so a missing one fails here rather than
    /// on the first connection.
    pub async fn open(
        &self,
        owner: &str,
        cluster: &Cluster,
        namespace: &str,
        pod: &str,
        port: u16,
    ) -> Result<String, WitError> {
        let held = self.lock().values().filter(|f| f.owner == owner).count();
        if held >= MAX_PER_OWNER {
            return Err(WitError::Unavailable(format!(
                "plugin `{owner}` already holds {held} port-forwards; stop one first"
            )));
        }
        let pods = Api::<Pod>::namespaced(cluster.client.clone(), namespace);
        pods.get(pod)
            .await
            .map_err(|e| api_error(&format!("port-forward to pod/{pod}"), e))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| WitError::Failed(format!("opening a loopback port: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| WitError::Failed(format!("opening a loopback port: {e}")))?
            .to_string();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, pods, pod.to_owned(), port, stop.clone()));
        tracing::info!(%address, pod, port, owner, "port-forward open");
        self.lock().insert(
            address.clone(),
            Forward {
                owner: owner.to_owned(),
                stop,
            },
        );
        Ok(address)
    }

    /// Stop the forward at `address` if `owner` opened it.
    pub fn close(&self, owner: &str, address: &str) -> bool {
        let mut open = self.lock();
        match open.get(address) {
            Some(forward) if forward.owner == owner => {
                forward.stop.cancel();
                open.remove(address);
                true
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Forward>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Forwards {
    fn drop(&mut self) {
        for forward in self.lock().values() {
            forward.stop.cancel();
        }
    }
}

async fn serve(
    listener: TcpListener,
    pods: Api<Pod>,
    pod: String,
    port: u16,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((connection, _)) = accepted else {
            continue;
        };
        let pods = pods.clone();
        let pod = pod.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                result = relay(connection, &pods, &pod, port) => {
                    if let Err(err) = result {
                        tracing::warn!(pod, port, "port-forward connection failed: {err:#}");
                    }
                }
            }
        });
    }
}

async fn relay(
    mut connection: TcpStream,
    pods: &Api<Pod>,
    pod: &str,
    port: u16,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut forwarder = pods
        .portforward(pod, &[port])
        .await
        .context("opening the port-forward stream")?;
    let mut upstream = forwarder
        .take_stream(port)
        .context("the API server gave no stream for the port")?;
    tokio::io::copy_bidirectional(&mut connection, &mut upstream)
        .await
        .context("relaying")?;
    drop(upstream);
    forwarder.join().await.context("closing the stream")?;
    Ok(())
}
