//! MCP sessions over HTTP, capped in number: opening one past the cap ends
//! the least recently used, so a client that opens sessions in a loop costs
//! bounded memory instead of ~55 KB per session forever.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{EventStore, ServerSseMessage};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use crate::app::metrics::Metrics;

/// rmcp's in-memory sessions with a cap and least-recently-used eviction.
pub struct CappedSessions {
    inner: LocalSessionManager,
    cap: usize,
    order: std::sync::Mutex<UseOrder>,
    /// One creation at a time, so concurrent opens cannot overshoot the cap.
    creating: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

/// Sessions by last use: a tick per session and the sessions by tick.
#[derive(Default)]
struct UseOrder {
    tick: u64,
    by_session: HashMap<SessionId, u64>,
    by_tick: BTreeMap<u64, SessionId>,
}

impl UseOrder {
    fn touch(&mut self, id: &SessionId) {
        let Some(old) = self.by_session.get(id).copied() else {
            return;
        };
        self.by_tick.remove(&old);
        self.tick += 1;
        self.by_session.insert(id.clone(), self.tick);
        self.by_tick.insert(self.tick, id.clone());
    }

    fn insert(&mut self, id: SessionId) {
        self.tick += 1;
        self.by_session.insert(id.clone(), self.tick);
        self.by_tick.insert(self.tick, id);
    }

    fn remove(&mut self, id: &SessionId) {
        if let Some(tick) = self.by_session.remove(id) {
            self.by_tick.remove(&tick);
        }
    }

    fn pop_oldest(&mut self) -> Option<SessionId> {
        let (_, id) = self.by_tick.pop_first()?;
        self.by_session.remove(&id);
        Some(id)
    }

    fn len(&self) -> usize {
        self.by_session.len()
    }
}

impl CappedSessions {
    /// At most `cap` sessions (at least one), evictions counted in `metrics`.
    pub fn new(cap: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            inner: LocalSessionManager::default(),
            cap: cap.max(1),
            order: Default::default(),
            creating: Default::default(),
            metrics,
        }
    }

    fn touch(&self, id: &SessionId) {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .touch(id);
    }

    /// Sessions currently counted against the cap.
    pub fn count(&self) -> usize {
        self.order.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl SessionManager for CappedSessions {
    type Error = LocalSessionManagerError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let _one_at_a_time = self.creating.lock().await;
        let victims: Vec<SessionId> = {
            let mut order = self.order.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| {
                (order.len() >= self.cap)
                    .then(|| order.pop_oldest())
                    .flatten()
            })
            .collect()
        };
        for victim in victims {
            tracing::info!(session = %victim, cap = self.cap, "HTTP session cap reached: ending the least recently used session");
            self.metrics.record_session_evicted();
            if let Err(err) = self.inner.close_session(&victim).await {
                tracing::debug!(session = %victim, "evicted session did not close cleanly: {err}");
            }
        }
        let (id, transport) = self.inner.create_session().await?;
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.order
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_session_goes_first() {
        let mut order = UseOrder::default();
        let (a, b, c): (SessionId, SessionId, SessionId) = ("a".into(), "b".into(), "c".into());
        order.insert(a.clone());
        order.insert(b.clone());
        order.insert(c.clone());
        order.touch(&a);
        assert_eq!(order.pop_oldest(), Some(b));
        order.remove(&c);
        assert_eq!(order.pop_oldest(), Some(a));
        assert_eq!(order.pop_oldest(), None);
        assert_eq!(order.len(), 0);
    }

    #[tokio::test]
    async fn opening_past_the_cap_ends_the_oldest_session() {
        let metrics = Arc::new(Metrics::default());
        let sessions = CappedSessions::new(2, metrics.clone());
        let (first, _t1) = sessions.create_session().await.unwrap();
        let (second, _t2) = sessions.create_session().await.unwrap();
        sessions.touch(&first);
        let (third, _t3) = sessions.create_session().await.unwrap();
        assert_eq!(sessions.count(), 2);
        assert!(sessions.has_session(&first).await.unwrap());
        assert!(!sessions.has_session(&second).await.unwrap());
        assert!(sessions.has_session(&third).await.unwrap());
        assert!(
            metrics
                .render()
                .contains("berth_http_sessions_evicted_total 1")
        );
    }
}
