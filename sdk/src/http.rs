//! Outgoing HTTP through `wasi:http`. The host sends a request only when the
//! plugin's `http` grant allows the URL's host; otherwise it fails with
//! [`Error::Denied`](crate::Error::Denied).

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{Error, Result};

/// A response: status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// `GET url`.
///
/// ```no_run
/// let response = berth_sdk::http::get("https://example.com/")?;
/// assert_eq!(response.status, 200);
/// # Ok::<(), berth_sdk::Error>(())
/// ```
pub fn get(url: &str) -> Result<Response> {
    request("GET", url, &[], None)
}

/// Send a request with `method` (e.g. `POST`), headers and an optional body.
///
/// ```no_run
/// let response = berth_sdk::http::request(
///     "POST",
///     "https://api.example.com/items",
///     &[("content-type", "application/json")],
///     Some(br#"{"name":"x"}"#),
/// )?;
/// # Ok::<(), berth_sdk::Error>(())
/// ```
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let target = Target::parse(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|err| {
            Error::invalid_input(format!("header `{name}` is not allowed: {err:?}"))
        })?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let invalid = |part: &str| Error::invalid_input(format!("URL `{url}` has an invalid {part}"));
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("host"))?;
    request
        .set_path_with_query(Some(&target.path))
        .map_err(|()| invalid("path"))?;

    let outgoing = request
        .body()
        .map_err(|()| Error::failed("request body was already taken"))?;
    let pending = outgoing_handler::handle(request, None).map_err(map_http_error)?;
    write_body(outgoing, body.unwrap_or_default())?;

    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::failed("HTTP response did not arrive"))?
        .map_err(|()| Error::failed("HTTP response was already taken"))?
        .map_err(map_http_error)?;
    let headers = response.headers().entries();
    let status = response.status();
    let body = read_body(
        response
            .consume()
            .map_err(|()| Error::failed("response body was already taken"))?,
    )?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

struct Target {
    scheme: Scheme,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::invalid_input(format!(
                "URL `{url}` has no scheme; expected http:// or https://"
            ))
        })?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(Error::invalid_input(format!(
                    "URL `{url}` has scheme `{other}`; expected http or https"
                )));
            }
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(Error::invalid_input(format!("URL `{url}` has no host")));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Self {
            scheme,
            authority: authority.to_string(),
            path,
        })
    }
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<()> {
    {
        let stream = body
            .write()
            .map_err(|()| Error::failed("request body stream was already taken"))?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|err| {
                Error::failed(format!(
                    "sending the request body failed: {}",
                    stream_error(err)
                ))
            })?;
        }
    }
    OutgoingBody::finish(body, None).map_err(map_http_error)
}

fn read_body(body: IncomingBody) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| Error::failed("response body stream was already taken"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(err) => {
                    return Err(Error::failed(format!(
                        "reading the response failed: {}",
                        stream_error(err)
                    )));
                }
            }
        }
    }
    IncomingBody::finish(body);
    Ok(bytes)
}

fn stream_error(err: StreamError) -> String {
    match err {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

fn map_http_error(err: ErrorCode) -> Error {
    match err {
        ErrorCode::HttpRequestDenied => {
            Error::Denied("the host's policy does not allow this URL".to_string())
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => {
            Error::Timeout(format!("HTTP request timed out: {err:?}"))
        }
        ErrorCode::DnsError(_)
        | ErrorCode::ConnectionRefused
        | ErrorCode::DestinationUnavailable => {
            Error::Unavailable(format!("HTTP destination unreachable: {err:?}"))
        }
        other => Error::Failed(format!("HTTP request failed: {other:?}")),
    }
}
