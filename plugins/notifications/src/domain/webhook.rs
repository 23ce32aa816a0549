//! Webhook endpoints: which URLs are accepted, which events an endpoint
//! receives, the secret it is given, and the signed request it is sent.
//!
//! Signing follows the widely used Stripe scheme so receivers can reuse their
//! verification code: `Mercato-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>`. The key is the secret exactly as shown
//! to the endpoint's creator, `whsec_` prefix included.
use super::is_subscribed;
use hmac::{Hmac, Mac};
use mercato_sdk::validate::Invalid;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// Longest accepted endpoint URL, in bytes (all of them ASCII).
pub const MAX_URL_LEN: usize = 2048;
/// The wildcard an endpoint lists to receive every subscribed event type.
pub const ALL_EVENTS: &str = "*";
/// Prefix of every endpoint secret, so a leaked one is recognisable.
pub const SECRET_PREFIX: &str = "whsec_";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Mercato-Signature";
/// The header carrying the delivery id (stable across retries).
pub const DELIVERY_ID_HEADER: &str = "Mercato-Delivery-Id";
/// The header carrying `source.EventType`.
pub const EVENT_TYPE_HEADER: &str = "Mercato-Event-Type";

fn invalid_url(message: impl Into<String>) -> Invalid {
    Invalid::new("invalid_url", message)
}

/// Bytes RFC 3986 allows in a URL (unreserved, reserved and `%`): no spaces,
/// quotes, angle brackets, backslashes or non-ASCII.
fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// Checks an endpoint URL: absolute `http://` or `https://` (lower-case
/// scheme, as the host's outbound interface expects), at most 2048 bytes, a
/// host name or bracketed IP literal with an optional port 1-65535, no
/// userinfo (credentials in URLs end up in logs; use the signature instead)
/// and no fragment (never sent over HTTP, so it can only mislead).
///
/// Which hosts may be called at all is the operator's decision
/// (`outbound.allowed_hosts`), enforced by the host when a request is queued.
pub fn check_url(url: &str) -> Result<(), Invalid> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid_url(format!(
            "url must be at most {MAX_URL_LEN} characters"
        )));
    }
    if let Some(bad) = url.bytes().find(|b| !is_url_byte(*b)) {
        return Err(invalid_url(if bad.is_ascii() {
            format!(
                "url must not contain `{}`",
                char::from(bad).escape_default()
            )
        } else {
            "url must be ASCII (percent-encode anything else)".to_owned()
        }));
    }
    if url.contains('#') {
        return Err(invalid_url("url must not have a fragment (#…)"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid_url("url must be absolute and start with http:// or https://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(invalid_url("url must not contain credentials (user@host)"));
    }
    check_authority(authority)
}

/// `host[:port]`, where host is a DNS-style name or `[IP literal]`.
fn check_authority(authority: &str) -> Result<(), Invalid> {
    let (host, port) =
        if let Some(bracketed) = authority.strip_prefix('[') {
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid_url("url has an unclosed [ in its host"))?;
            let literal_ok = !literal.is_empty()
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            if !literal_ok {
                return Err(invalid_url("url host [..] must be an IP literal"));
            }
            match after {
                "" => (literal, None),
                _ => (
                    literal,
                    Some(after.strip_prefix(':').ok_or_else(|| {
                        invalid_url("url host [..] may only be followed by :port")
                    })?),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
    let name_ok = authority.starts_with('[')
        || (!host.is_empty()
            && !host.starts_with(['.', '-'])
            && !host.contains("..")
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    if !name_ok {
        return Err(invalid_url(
            "url must name a host of letters, digits, '-' and '.'",
        ));
    }
    if let Some(port) = port {
        let valid = (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !valid {
            return Err(invalid_url("url port must be a number from 1 to 65535"));
        }
    }
    Ok(())
}

/// What an endpoint asks for: a list of event types, or the bare wildcard
/// string as a shorthand for `["*"]`: "every event" reads naturally either way.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum EventTypesInput {
    /// `["orders.OrderPaid", …]` or `["*"]`.
    List(Vec<String>),
    /// `"*"`.
    One(String),
}

/// Checks and normalises an endpoint's event types: a non-empty list of
/// subscribed types or `"*"`; duplicates are dropped (first one kept) and a
/// list containing `"*"` is just `["*"]`. Refusals are `invalid_event_types`.
pub fn normalise_event_types(input: EventTypesInput) -> Result<Vec<String>, Invalid> {
    let refuse = |message: String| Invalid::new("invalid_event_types", message);
    let types = match input {
        EventTypesInput::List(types) => types,
        EventTypesInput::One(one) if one == ALL_EVENTS => vec![one],
        EventTypesInput::One(one) => {
            return Err(refuse(format!(
                "event_types must be a list (e.g. [\"{one}\"]) or \"*\""
            )));
        }
    };
    if types.is_empty() {
        return Err(refuse(
            "event_types must list at least one event type, or \"*\"".into(),
        ));
    }
    if let Some(unknown) = types.iter().find(|t| *t != ALL_EVENTS && !is_subscribed(t)) {
        return Err(refuse(format!(
            "`{unknown}` is not an event type notifications can send; use \"*\" or any of: {}",
            super::SUBSCRIBED_EVENT_TYPES.join(", ")
        )));
    }
    if types.iter().any(|t| t == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_owned()]);
    }
    let mut unique: Vec<String> = Vec::with_capacity(types.len());
    for event_type in types {
        if !unique.contains(&event_type) {
            unique.push(event_type);
        }
    }
    Ok(unique)
}

/// True when an endpoint listing `event_types` receives `event_type`
/// (`source.EventType`). Whether it is still enabled is the caller's filter.
pub fn matches(event_types: &[String], event_type: &str) -> bool {
    event_types
        .iter()
        .any(|t| t == ALL_EVENTS || t == event_type)
}

/// A new secret from two fresh UUIDs: their 64 hex digits after `whsec_`.
/// The guest's randomness reaches us through `new_id()` (UUID v4, WASI
/// random); two of them carry 244 random bits, beyond guessing.
pub fn secret_from(first_uuid: &str, second_uuid: &str) -> String {
    let hex: String = first_uuid
        .chars()
        .chain(second_uuid.chars())
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{SECRET_PREFIX}{hex}")
}

/// Lower-case hex HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length (long ones are hashed first).
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The `Mercato-Signature` value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    let mut signed = format!("{unix_seconds}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={unix_seconds},v1={}",
        hmac_sha256_hex(secret.as_bytes(), &signed)
    )
}

/// The JSON document a webhook receives, fields in this order.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    created: &'a str,
    data: &'a Value,
}

/// The body of a webhook request: `{"id": event id, "type": "source.Type",
/// "created": occurred_at, "data": payload}`. The bytes are signed and stored
/// by the host, which retries them unchanged.
pub fn envelope(event_id: &str, event_type: &str, created: &str, data: &Value) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        id: event_id,
        event_type,
        created,
        data,
    })
    .expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hmac_sha256_matches_the_published_vector() {
        assert_eq!(
            hmac_sha256_hex(b"key", b"The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_exact_body() {
        let body = br#"{"id":"e-1"}"#;
        let header = signature("whsec_abc", 1_700_000_000, body);
        let expected = hmac_sha256_hex(b"whsec_abc", br#"1700000000.{"id":"e-1"}"#);
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
        assert_ne!(header, signature("whsec_abc", 1_700_000_001, body));
        assert_ne!(header, signature("whsec_abd", 1_700_000_000, body));
        assert_ne!(
            header,
            signature("whsec_abc", 1_700_000_000, br#"{"id":"e-2"}"#)
        );
        // A receiver recomputes from t and the raw body: same answer.
        let (t, v1) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap();
        let recomputed = hmac_sha256_hex(b"whsec_abc", &[t.as_bytes(), b".", body].concat());
        assert_eq!(v1, recomputed);
    }

    #[test]
    fn secrets_are_the_prefix_and_64_hex_digits() {
        let secret = secret_from(
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        );
        assert_eq!(
            secret,
            "whsec_0f8fad5bd9cb469fa16570867728950e7c9e6679742540de944be07fc1f90ae7"
        );
        assert_eq!(secret.len(), SECRET_PREFIX.len() + 64);
    }

    #[test]
    fn the_envelope_has_id_type_created_and_data_in_order() {
        let data = json!({ "order_id": "o-1", "amount_minor": 1999 });
        let body = envelope("e-1", "orders.OrderPaid", "2026-01-01T00:00:00.000Z", &data);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"id":"e-1","type":"orders.OrderPaid","created":"2026-01-01T00:00:00.000Z","data":{"amount_minor":1999,"order_id":"o-1"}}"#
        );
    }

    #[test]
    fn http_and_https_urls_with_hosts_ports_paths_and_queries_are_accepted() {
        for url in [
            "https://example.com",
            "https://example.com/",
            "http://localhost:8080/hooks?x=1&y=%20",
            "https://hooks.example.co.uk/a/b;c=d/e~f",
            "http://127.0.0.1:9/x",
            "http://[::1]:8080/x",
            "https://[2001:db8::1]/",
            "https://a-b.example.com:65535",
        ] {
            assert_eq!(check_url(url), Ok(()), "{url}");
        }
        let longest = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - 20));
        assert_eq!(longest.len(), MAX_URL_LEN);
        assert_eq!(check_url(&longest), Ok(()));
    }

    #[test]
    fn other_urls_are_refused_with_a_reason() {
        let cases = [
            ("", "url must be absolute"),
            ("example.com/hook", "url must be absolute"),
            ("/hooks", "url must be absolute"),
            ("ftp://example.com", "url must be absolute"),
            ("HTTPS://example.com", "url must be absolute"),
            ("https:/example.com", "url must be absolute"),
            ("https://", "url must name a host"),
            ("https:///path", "url must name a host"),
            (
                "https://user:pw@example.com/",
                "url must not contain credentials",
            ),
            (
                "https://user@example.com",
                "url must not contain credentials",
            ),
            ("https://example.com/#top", "url must not have a fragment"),
            ("https://example.com/a#", "url must not have a fragment"),
            ("https://exa mple.com", "url must not contain ` `"),
            ("https://example.com/\\x", "url must not contain `\\\\`"),
            ("https://example.com/\n", "url must not contain `\\n`"),
            ("https://exämple.com", "url must be ASCII"),
            ("https://example.com:0", "url port"),
            ("https://example.com:65536", "url port"),
            ("https://example.com:http", "url port"),
            ("https://example.com:", "url port"),
            ("https://.example.com", "url must name a host"),
            ("https://example..com", "url must name a host"),
            ("https://exa_mple.com", "url must name a host"),
            ("https://[::1", "unclosed ["),
            ("https://[]/", "IP literal"),
            ("https://[::1]x/", "followed by :port"),
            ("https://[::1]:99999/", "url port"),
        ];
        for (url, reason) in cases {
            let refusal = check_url(url).unwrap_err();
            assert_eq!(refusal.code, "invalid_url", "{url}");
            assert!(
                refusal.message.contains(reason),
                "{url}: {}",
                refusal.message
            );
        }
        let too_long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(
            check_url(&too_long)
                .unwrap_err()
                .message
                .contains("at most 2048")
        );
    }

    fn list(types: &[&str]) -> EventTypesInput {
        EventTypesInput::List(types.iter().map(|t| (*t).to_owned()).collect())
    }

    #[test]
    fn event_types_are_subscribed_types_or_the_wildcard() {
        assert_eq!(
            normalise_event_types(list(&["orders.OrderPaid", "shipping.ShipmentDelivered"])),
            Ok(vec![
                "orders.OrderPaid".to_owned(),
                "shipping.ShipmentDelivered".to_owned()
            ])
        );
        assert_eq!(
            normalise_event_types(list(&["orders.OrderPaid", "orders.OrderPaid"])),
            Ok(vec!["orders.OrderPaid".to_owned()])
        );
        assert_eq!(
            normalise_event_types(list(&["orders.OrderPaid", "*"])),
            Ok(vec!["*".to_owned()])
        );
        assert_eq!(
            normalise_event_types(EventTypesInput::One("*".into())),
            Ok(vec!["*".to_owned()])
        );
        for bad in [
            list(&[]),
            list(&["orders.RefundRequested"]),
            list(&["orders.*"]),
            list(&["OrderPaid"]),
            list(&["*", "nope"]),
            EventTypesInput::One("orders.OrderPaid".into()),
        ] {
            let refusal = normalise_event_types(bad.clone()).unwrap_err();
            assert_eq!(refusal.code, "invalid_event_types", "{bad:?}");
        }
        let single_type: Result<EventTypesInput, _> = serde_json::from_value(json!("*"));
        assert_eq!(single_type.unwrap(), EventTypesInput::One("*".into()));
        let not_strings: Result<EventTypesInput, _> = serde_json::from_value(json!([1]));
        assert!(not_strings.is_err());
    }

    #[test]
    fn an_endpoint_receives_what_it_lists() {
        let some = vec!["orders.OrderPaid".to_owned()];
        assert!(matches(&some, "orders.OrderPaid"));
        assert!(!matches(&some, "orders.OrderPlaced"));
        let all = vec![ALL_EVENTS.to_owned()];
        assert!(matches(&all, "shipping.ShipmentDelivered"));
        assert!(!matches(&[], "orders.OrderPaid"));
    }
}
