//! Outbound HTTP through the host's outbox: queued in the call's transaction,
//! sent by the host after commit, results reported back as `outbound` events.
use crate::Error;
use crate::bindings::mercato::plugin::outbound::{self, OutboundRequest};
use serde::Deserialize;

/// A request to queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Outgoing {
    /// A `POST` of `body` to `url` with `content-type: application/json`.
    pub fn post_json(url: &str, body: Vec<u8>) -> Self {
        Outgoing {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Queues `request` under `key`; it is sent only if the current call commits,
/// and a key queued before is not queued again.
pub fn send(request: Outgoing, key: &str) -> Result<(), Error> {
    outbound::send(
        &OutboundRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        },
        key,
    )
}

/// The source of the host's delivery reports.
pub const SOURCE: &str = "outbound";
/// The event type of a delivery report.
pub const ATTEMPTED: &str = "DeliveryAttempted";

/// One attempt's result, as reported by the host (event `outbound.DeliveryAttempted`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    /// The key the request was queued under.
    pub key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The destination.
    pub url: String,
    /// `delivered`, `retrying` or `dead`.
    pub outcome: String,
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// Why the attempt failed (timeout, refused, status, oversized answer).
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: u64,
    /// The start of the answer's body, lossy UTF-8.
    #[serde(default)]
    pub response_body: String,
    /// When the next attempt is due, if there is one.
    pub next_attempt_at: Option<String>,
}

/// The report carried by `event`, if it is one.
pub fn attempt(event: &crate::Event) -> Option<Result<Attempt, Error>> {
    (event.source == SOURCE && event.event_type == ATTEMPTED).then(|| crate::events::payload(event))
}
