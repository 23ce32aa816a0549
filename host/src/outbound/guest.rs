//! The guest-facing `outbound` interface: validates a request and queues it
//! in the call's state; it is written at commit (`store::queue`).
use super::{
    MAX_HEADER_BYTES, MAX_HEADERS, MAX_KEY_LEN, MAX_REQUESTS_PER_CALL, MAX_URL_LEN, Policy,
    QueuedRequest,
};
use crate::bindings::GuestError;
use crate::bindings::mercato::plugin::outbound::{self, OutboundRequest};
use std::sync::Arc;

/// Headers the host sets itself or that would change how the request is framed.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

/// Methods a plugin may send.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The outbound capability's per-call state.
#[derive(Default)]
pub struct OutboundCall {
    /// Requests queued by the call, in order.
    pub requests: Vec<QueuedRequest>,
    /// Body bytes held in `requests`.
    bytes: usize,
    /// The plugin's policy; `None` while loading.
    policy: Option<Arc<Policy>>,
    /// A read-only call (GET) may not queue requests.
    read_only: bool,
}

impl OutboundCall {
    /// A call of a plugin governed by `policy`.
    pub fn new(policy: Arc<Policy>, read_only: bool) -> Self {
        OutboundCall {
            requests: Vec::new(),
            bytes: 0,
            policy: Some(policy),
            read_only,
        }
    }

    fn check(&self, request: OutboundRequest, key: String) -> Result<QueuedRequest, GuestError> {
        let Some(policy) = &self.policy else {
            return Err(GuestError::Denied(
                "outbound requests cannot be queued while loading".into(),
            ));
        };
        if self.read_only {
            return Err(GuestError::Denied(
                "outbound requests cannot be queued while serving a read-only (GET) request".into(),
            ));
        }
        if self.requests.len() >= MAX_REQUESTS_PER_CALL {
            return Err(GuestError::Invalid(format!(
                "one call may queue at most {MAX_REQUESTS_PER_CALL} outbound requests"
            )));
        }
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(GuestError::Invalid(format!(
                "the key must be 1-{MAX_KEY_LEN} printable ASCII characters without spaces"
            )));
        }
        let method = request.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(GuestError::Invalid(format!(
                "method `{}` is not one of {}",
                request.method,
                METHODS.join(", ")
            )));
        }
        if request.url.len() > MAX_URL_LEN {
            return Err(GuestError::Invalid(format!(
                "the URL is longer than {MAX_URL_LEN} bytes"
            )));
        }
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| GuestError::Invalid(format!("invalid URL `{}`: {e}", request.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(GuestError::Invalid(
                "the URL must be http:// or https://".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(GuestError::Invalid(
                "the URL must not carry a user or password; send credentials in a header".into(),
            ));
        }
        policy
            .destination(&url)
            .map_err(|e| GuestError::Denied(format!("outbound request denied: {e}")))?;
        check_headers(&request.headers)?;
        let max = policy.config().max_request_bytes;
        if request.body.len() > max {
            return Err(GuestError::Invalid(format!(
                "the request body is {} bytes; at most {max} may be sent",
                request.body.len()
            )));
        }
        // A call holds at most a few bodies' worth, whatever it queues.
        if self.bytes + request.body.len() > max.max(1 << 20) {
            return Err(GuestError::Invalid(format!(
                "the requests of one call may carry at most {} bytes of body",
                max.max(1 << 20)
            )));
        }
        Ok(QueuedRequest {
            key,
            method,
            url: url.to_string(),
            headers: request.headers,
            body: request.body,
        })
    }
}

fn check_headers(headers: &[(String, String)]) -> Result<(), GuestError> {
    if headers.len() > MAX_HEADERS {
        return Err(GuestError::Invalid(format!(
            "at most {MAX_HEADERS} headers may be sent"
        )));
    }
    let size: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if size > MAX_HEADER_BYTES {
        return Err(GuestError::Invalid(format!(
            "headers may hold at most {MAX_HEADER_BYTES} bytes"
        )));
    }
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(GuestError::Invalid(format!(
                "`{name}` is not a valid header name"
            )));
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(GuestError::Invalid(format!(
                "header `{name}` is set by the host"
            )));
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(GuestError::Invalid(format!(
                "the value of header `{name}` is not valid (control characters?)"
            )));
        }
    }
    Ok(())
}

impl outbound::Host for OutboundCall {
    fn send(
        &mut self,
        request: OutboundRequest,
        key: String,
    ) -> wasmtime::Result<Result<(), GuestError>> {
        Ok(self.check(request, key).map(|queued| {
            self.bytes += queued.body.len();
            self.requests.push(queued);
        }))
    }
}
