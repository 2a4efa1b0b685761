//! What every HTTP request passes before it reaches a route: the Host
//! check, the Origin check and CORS, the bearer token, and the body limits.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::app::metrics::Metrics;

/// Headers a browser-based MCP client sends (answered to a preflight).
const CORS_ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID";

/// Methods MCP's streamable HTTP uses.
const CORS_ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";

/// The one path answered without a token: liveness probes carry none.
const UNAUTHENTICATED_PATH: &str = "/healthz";

/// Who may talk to the HTTP endpoint, and how much they may send.
#[derive(Clone)]
pub struct Gate {
    /// The bearer token every request but `/healthz` must carry.
    pub token: Arc<str>,
    /// Host header names accepted (without port).
    pub hosts: Arc<[String]>,
    /// Origins accepted besides berth's own.
    pub origins: Arc<[String]>,
    /// The port berth listens on: berth's own origin is an allowed host on it.
    pub port: u16,
    /// Request bodies in memory at once, in KiB permits.
    pub body_budget: Arc<Semaphore>,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Time allowed to send a request body.
    pub body_timeout: Duration,
    /// Refusals are counted here.
    pub metrics: Arc<Metrics>,
}

impl Gate {
    /// Whether `value` (a Host header) names this server.
    fn host_allowed(&self, value: &str) -> bool {
        let name = match value.parse::<axum::http::uri::Authority>() {
            Ok(authority) => authority.host().to_string(),
            Err(_) => return false,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether a browser page at `origin` may call: one listed in
    /// `[http] allowed_origins`, or berth's own (`http`, an allowed host,
    /// berth's port). Scheme and port count: a page on another local port
    /// is another site.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let Ok(uri) = origin.parse::<axum::http::Uri>() else {
            return false;
        };
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return false;
        };
        scheme == "http"
            && authority.port_u16().unwrap_or(80) == self.port
            && self.host_allowed(authority.as_str())
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(presented.as_bytes(), self.token.as_bytes())
    }

    fn refuse(&self, status: StatusCode, message: String) -> Response {
        self.metrics.record_rejected();
        (status, message).into_response()
    }
}

/// Compare without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: refusals happen here, before any route runs.
pub async fn guard(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !gate.host_allowed(host) {
        return gate.refuse(
            StatusCode::FORBIDDEN,
            format!("Host `{host}` is not allowed (add it to [http] allowed_hosts)"),
        );
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(origin) = &origin
        && !gate.origin_allowed(origin)
    {
        return gate.refuse(
            StatusCode::FORBIDDEN,
            format!("Origin `{origin}` is not allowed (add it to [http] allowed_origins)"),
        );
    }
    if let Some(origin) = &origin
        && request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return preflight(origin);
    }
    if request.uri().path() != UNAUTHENTICATED_PATH && !gate.token_ok(headers) {
        let mut refused = gate.refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <token>)".into(),
        );
        refused
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refused;
    }
    let mut response = if request.method() == Method::POST {
        buffered(&gate, request, next).await
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        allow_origin(response.headers_mut(), value);
    }
    response
}

/// What every answer to an allowed origin carries: the origin itself, the
/// session header a browser script may read, and that it varies by origin.
fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Mcp-Session-Id"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a CORS preflight from an allowed origin.
fn preflight(origin: &str) -> Response {
    let Ok(origin) = HeaderValue::from_str(origin) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut response = (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(CORS_ALLOW_METHODS),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(CORS_ALLOW_HEADERS),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            ),
        ],
    )
        .into_response();
    allow_origin(response.headers_mut(), origin);
    response
}

/// Read a POST body within the size, memory and time limits, check that
/// it is JSON, and run the route while its memory is still counted: the
/// parsed request lives as long as its call.
async fn buffered(gate: &Gate, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = declared
        && length > gate.max_body
    {
        return too_large(gate.max_body);
    }
    let kib = declared.unwrap_or(gate.max_body).div_ceil(1024).max(1);
    let Ok(_budget) = gate
        .body_budget
        .clone()
        .acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX))
        .await
    else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let (parts, body) = request.into_parts();
    let bytes =
        match tokio::time::timeout(gate.body_timeout, axum::body::to_bytes(body, gate.max_body))
            .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return too_large(gate.max_body),
            Err(_) => {
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        gate.body_timeout.as_secs()
                    ),
                )
                    .into_response();
            }
        };
    if let Err(err) = crate::server::transport::check_json(&bytes) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            crate::server::transport::parse_error(&err),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

fn too_large(max: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than {max} bytes ([http] max_request_mib)"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate {
            token: "0123456789abcdef".into(),
            hosts: vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()].into(),
            origins: vec!["https://inspector.example".to_string()].into(),
            port: 8080,
            body_budget: Arc::new(Semaphore::new(16)),
            max_body: 1024,
            body_timeout: Duration::from_secs(1),
            metrics: Arc::default(),
        }
    }

    #[test]
    fn token_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn an_origin_must_match_scheme_host_and_port() {
        let gate = gate();
        assert!(gate.origin_allowed("http://localhost:8080"));
        assert!(gate.origin_allowed("http://[::1]:8080"));
        assert!(gate.origin_allowed("https://inspector.example"));
        assert!(!gate.origin_allowed("http://localhost:3000"));
        assert!(!gate.origin_allowed("https://localhost:8080"));
        assert!(!gate.origin_allowed("http://localhost"));
        assert!(!gate.origin_allowed("http://evil.example:8080"));
        assert!(!gate.origin_allowed("null"));
    }

    #[test]
    fn a_host_header_is_compared_without_its_port() {
        let gate = gate();
        assert!(gate.host_allowed("127.0.0.1:8080"));
        assert!(gate.host_allowed("LOCALHOST"));
        assert!(gate.host_allowed("[::1]:8080"));
        assert!(!gate.host_allowed("evil.example:8080"));
        assert!(!gate.host_allowed(""));
    }
}
