//! Sending one queued request: the plugin's policy (allowlist, limits) and
//! its HTTP client. Every attempt runs outside any transaction, under the
//! destination's timeout, reads at most its response cap, follows no
//! redirect, uses no proxy, and resolves names through a resolver that drops
//! private addresses unless the allowlist names the host exactly.
use super::allow::{Allowlist, is_public};
use super::{AllowedHost, OutboundConfig, QueuedRequest, REPORT_BODY_BYTES};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a plugin may reach and how: its configuration, parsed, and its client.
pub struct Policy {
    config: OutboundConfig,
    allow: Allowlist,
    client: reqwest::Client,
}

/// Where a URL may go: the allowlist entry it matched and that entry's limits.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The matching `allowed_hosts` pattern: a bounded metrics label.
    pub label: String,
    /// Time for one attempt.
    pub timeout: Duration,
    /// Cap on the answer's body.
    pub max_response_bytes: usize,
}

/// The result of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// The answer's status, if one came.
    pub status: Option<u16>,
    /// Why the attempt failed; `None` for a 2xx answer read in full.
    pub error: Option<String>,
    /// The start of the answer's body.
    pub body: Vec<u8>,
    /// How long the attempt took.
    pub elapsed: Duration,
    /// The allowlist entry the destination matched (`denied` if none).
    pub label: String,
}

impl AttemptResult {
    /// True for a 2xx answer read within the limits.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

impl Policy {
    /// The policy for `config` (validated by the configuration already).
    pub fn new(config: OutboundConfig) -> Result<Self, String> {
        let allow = Allowlist::parse(config.allowed_hosts.iter().map(AllowedHost::pattern))?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .dns_resolver(Arc::new(GuardedResolver {
                allow: allow.clone(),
            }))
            .user_agent(concat!("mercato/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Policy {
            config,
            allow,
            client,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Where `url` may go, or why it may not.
    pub fn destination(&self, url: &reqwest::Url) -> Result<Destination, String> {
        let (index, pattern) = self.allow.check(url)?;
        let (timeout_ms, max_response_bytes) = match &self.config.allowed_hosts[index] {
            AllowedHost::Pattern(_) => (None, None),
            AllowedHost::Destination {
                timeout_ms,
                max_response_bytes,
                ..
            } => (*timeout_ms, *max_response_bytes),
        };
        Ok(Destination {
            label: pattern.text.clone(),
            timeout: Duration::from_millis(timeout_ms.unwrap_or(self.config.timeout_ms)),
            max_response_bytes: max_response_bytes.unwrap_or(self.config.max_response_bytes),
        })
    }

    /// Sends `request` once. The allowlist is checked again: the configuration
    /// may have changed since the request was queued.
    pub async fn attempt(&self, request: &QueuedRequest) -> AttemptResult {
        let started = Instant::now();
        let failed = |label: &str, error: String| AttemptResult {
            status: None,
            error: Some(error),
            body: Vec::new(),
            elapsed: started.elapsed(),
            label: label.to_owned(),
        };
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return failed("denied", format!("invalid URL: {e}")),
        };
        let destination = match self.destination(&url) {
            Ok(d) => d,
            Err(e) => return failed("denied", format!("denied: {e}")),
        };
        let Ok(method) = reqwest::Method::from_bytes(request.method.as_bytes()) else {
            return failed(&destination.label, "invalid method".into());
        };
        let mut builder = self.client.request(method, url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let exchange = exchange(builder, destination.max_response_bytes);
        let (status, body, error) = match tokio::time::timeout(destination.timeout, exchange).await
        {
            Ok(outcome) => outcome,
            Err(_) => (
                None,
                Vec::new(),
                Some(format!(
                    "timed out after {} ms",
                    destination.timeout.as_millis()
                )),
            ),
        };
        AttemptResult {
            status,
            error,
            body,
            elapsed: started.elapsed(),
            label: destination.label,
        }
    }
}

/// Sends and reads the answer: its status, the start of its body, and the
/// error if it is not a 2xx answer of at most `cap` bytes.
async fn exchange(
    builder: reqwest::RequestBuilder,
    cap: usize,
) -> (Option<u16>, Vec<u8>, Option<String>) {
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return (None, Vec::new(), Some(describe(&e))),
    };
    let status = response.status().as_u16();
    let too_large = || format!("the answer's body exceeds {cap} bytes; it was cut off");
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return (Some(status), Vec::new(), Some(too_large()));
    }
    let mut kept = Vec::new();
    let mut total = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                total += chunk.len();
                let room = REPORT_BODY_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if total > cap {
                    return (Some(status), kept, Some(too_large()));
                }
            }
            Ok(None) => break,
            Err(e) => return (Some(status), kept, Some(describe(&e))),
        }
    }
    let error = (!(200..300).contains(&status)).then(|| format!("answered {status}"));
    (Some(status), kept, error)
}

/// The error and its causes: the resolver's refusal is a cause.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names, keeping only addresses the allowlist lets this name reach.
struct GuardedResolver {
    allow: Allowlist,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let explicit = self.allow.explicit(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| explicit || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address (a loopback or private address needs an allowed_hosts entry naming the host)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}
