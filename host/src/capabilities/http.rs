//! Outgoing `wasi:http`, filtered by the plugin's `http` grant: a request to
//! a host the plugin was not granted fails with `HTTP-request-denied` before
//! any connection is made.

use std::collections::BTreeSet;
use std::future::Future;

use wasmtime::component::Linker;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::unit;
use super::{Caller, HostState};

/// The `http` capability: which hosts a plugin may reach.
pub struct Http;

unit::name_list!(Http, "http");

/// Whether `granted` host patterns admit `host`. Patterns are exact host
/// names or `*.suffix` for any subdomain.
pub fn allows_host(granted: &BTreeSet<String>, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    granted.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => pattern == host,
        }
    })
}

/// The wasi:http hooks of one store: the grant check, then the default sender.
pub struct GrantedHttp {
    caller: Caller,
}

impl GrantedHttp {
    /// Hooks for `caller`.
    pub fn new(caller: Caller) -> Self {
        Self { caller }
    }

    /// Whether a request to `uri` may be sent.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        uri.host()
            .is_some_and(|host| self.caller.grants.allows_http_host(host))
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;
type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), wasmtime_wasi_http::Error>>
        + Send,
>;

impl WasiHttpHooks for GrantedHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        if !self.allows(request.uri()) {
            tracing::warn!(plugin = %self.caller.plugin, uri = %request.uri(), "outgoing HTTP denied: host not granted");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// Add `wasi:http/types` and `wasi:http/outgoing-handler` to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::capabilities::grants::Grants;

    #[test]
    fn only_granted_hosts_pass() {
        let grants = Grants {
            http: ["api.example.com".to_string()].into(),
            ..Default::default()
        };
        let hooks = GrantedHttp::new(Caller {
            plugin: "p".into(),
            grants: Arc::new(grants),
            config: "{}".into(),
        });
        assert!(hooks.allows(&"https://api.example.com/v1".parse().unwrap()));
        assert!(!hooks.allows(&"https://example.com/".parse().unwrap()));
        assert!(!hooks.allows(&"http://127.0.0.1:8080/".parse().unwrap()));
        assert!(!hooks.allows(&"/relative".parse().unwrap()));
    }
}
