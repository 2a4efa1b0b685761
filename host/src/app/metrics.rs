//! Counters for `/metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tool-call and plugin-load counters.
#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String), CallStats>>,
    plugins_loaded: AtomicU64,
    plugin_failures: AtomicU64,
    http_rejected: AtomicU64,
    http_connections_open: AtomicU64,
    http_connections_refused: AtomicU64,
    http_sessions_evicted: AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct CallStats {
    count: u64,
    seconds: f64,
}

impl Metrics {
    /// Count one finished call of `tool` with `outcome`.
    pub fn record_call(&self, tool: &str, outcome: &str, elapsed: Duration) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let stats = calls
            .entry((tool.to_string(), outcome.to_string()))
            .or_default();
        stats.count += 1;
        stats.seconds += elapsed.as_secs_f64();
    }

    /// Record the result of a (re)load.
    pub fn set_loaded(&self, plugins: usize, failures: usize) {
        self.plugins_loaded.store(plugins as u64, Ordering::Relaxed);
        self.plugin_failures
            .store(failures as u64, Ordering::Relaxed);
    }

    /// Count an HTTP request refused by authentication or Host/Origin checks.
    pub fn record_rejected(&self) {
        self.http_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a connection opened (`true`) or closed (`false`).
    pub fn record_connection(&self, opened: bool) {
        if opened {
            self.http_connections_open.fetch_add(1, Ordering::Relaxed);
        } else {
            self.http_connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Count a connection closed on accept because the cap was reached.
    pub fn record_connection_refused(&self) {
        self.http_connections_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Count an HTTP session ended to make room under the session cap.
    pub fn record_session_evicted(&self) {
        self.http_sessions_evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Render every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP berth_tool_calls_total Tool calls by tool and outcome.\n# TYPE berth_tool_calls_total counter\n");
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for ((tool, outcome), stats) in &calls {
            let _ = writeln!(
                out,
                "berth_tool_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {}",
                stats.count
            );
        }
        out.push_str(
            "# HELP berth_tool_call_seconds_total Time spent in tool calls.\n# TYPE berth_tool_call_seconds_total counter\n",
        );
        for ((tool, outcome), stats) in &calls {
            let _ = writeln!(
                out,
                "berth_tool_call_seconds_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {:.6}",
                stats.seconds
            );
        }
        for (name, kind, help, value) in [
            (
                "berth_plugins_loaded",
                "gauge",
                "Plugins currently loaded.",
                &self.plugins_loaded,
            ),
            (
                "berth_plugin_load_failures",
                "gauge",
                "Plugins that failed to load at the last (re)load.",
                &self.plugin_failures,
            ),
            (
                "berth_http_rejected_total",
                "counter",
                "HTTP requests refused by token, Host or Origin checks.",
                &self.http_rejected,
            ),
            (
                "berth_http_connections_open",
                "gauge",
                "HTTP connections open now.",
                &self.http_connections_open,
            ),
            (
                "berth_http_connections_refused_total",
                "counter",
                "HTTP connections closed on accept at the connection cap.",
                &self.http_connections_refused,
            ),
            (
                "berth_http_sessions_evicted_total",
                "counter",
                "HTTP sessions ended to stay under the session cap.",
                &self.http_sessions_evicted,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_per_tool_and_outcome() {
        let m = Metrics::default();
        m.record_call("echo", "ok", Duration::from_millis(5));
        m.record_call("echo", "ok", Duration::from_millis(5));
        m.record_call("echo", "timeout", Duration::from_secs(1));
        m.set_loaded(3, 1);
        let text = m.render();
        assert!(
            text.contains("berth_tool_calls_total{tool=\"echo\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(text.contains("berth_tool_calls_total{tool=\"echo\",outcome=\"timeout\"} 1"));
        assert!(text.contains("berth_plugins_loaded 3"));
        assert!(text.contains("berth_plugin_load_failures 1"));
    }
}
