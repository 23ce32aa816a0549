//! What clients send, checked before anything is read or written: request
//! bodies become validated commands. Refusals are [`Invalid`] (422).
use super::Status;
use super::label::CarrierKind;
use mercato_sdk::time::Instant;
use mercato_sdk::validate::Invalid;
use serde::Deserialize;

/// Longest carrier event id, in characters (all ASCII).
pub const MAX_CARRIER_EVENT_ID: usize = 100;
/// Longest location, in characters.
pub const MAX_LOCATION_CHARS: usize = 200;
/// Longest tracking number a carrier may report.
pub const MAX_TRACKING_NUMBER: usize = 64;
/// Longest carrier code.
pub const MAX_CARRIER_CODE: usize = 32;
/// Longest carrier name, in characters.
pub const MAX_CARRIER_NAME_CHARS: usize = 100;

/// `POST /shipments/{id}/events` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierEventBody {
    pub carrier_event_id: String,
    pub status: String,
    pub occurred_at: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
}

/// A carrier's report, checked. The status is any known one: which of them a
/// carrier may report is the decider's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierEvent {
    /// The carrier's id for the report: the idempotency key per shipment.
    pub carrier_event_id: String,
    pub status: Status,
    /// When it happened, normalised to the host clock's format.
    pub occurred_at: String,
    /// Trimmed; `None` when absent or blank.
    pub location: Option<String>,
    pub tracking_number: Option<String>,
}

impl CarrierEventBody {
    /// Checks every field; the refusal names the first one that is wrong.
    pub fn validated(self) -> Result<CarrierEvent, Invalid> {
        let id = &self.carrier_event_id;
        // Printable ASCII: the id is echoed in logs and compared byte for byte.
        if id.is_empty()
            || id.len() > MAX_CARRIER_EVENT_ID
            || !id.bytes().all(|b| (b' '..=b'~').contains(&b))
        {
            return Err(Invalid::new(
                "invalid_carrier_event_id",
                format!(
                    "carrier_event_id must be 1-{MAX_CARRIER_EVENT_ID} printable ASCII characters"
                ),
            ));
        }
        let status = Status::parse(&self.status).ok_or_else(|| {
            Invalid::new(
                "invalid_status",
                format!(
                    "status `{}` is not one of LABEL_CREATED, IN_TRANSIT, DELIVERED, RETURNED, LOST",
                    self.status
                ),
            )
        })?;
        let occurred_at = Instant::parse(&self.occurred_at)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_occurred_at",
                    "occurred_at must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
                )
            })?
            .to_string();
        let location = match self.location.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l)
                if l.chars().count() <= MAX_LOCATION_CHARS && !l.chars().any(char::is_control) =>
            {
                Some(l.to_owned())
            }
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_location",
                    format!(
                        "location must be at most {MAX_LOCATION_CHARS} characters without control characters"
                    ),
                ));
            }
        };
        let tracking_number = match self.tracking_number {
            None => None,
            Some(t) if is_tracking_number(&t) => Some(t),
            Some(_) => {
                return Err(Invalid::new(
                    "invalid_tracking_number",
                    format!(
                        "tracking_number must be 1-{MAX_TRACKING_NUMBER} letters, digits or '-'"
                    ),
                ));
            }
        };
        Ok(CarrierEvent {
            carrier_event_id: self.carrier_event_id,
            status,
            occurred_at,
            location,
            tracking_number,
        })
    }
}

fn is_tracking_number(raw: &str) -> bool {
    (1..=MAX_TRACKING_NUMBER).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `POST /carriers` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierBody {
    pub code: String,
    pub name: String,
    pub kind: String,
    /// `"default": true` makes the new carrier the one new shipments go with.
    #[serde(default, rename = "default")]
    pub is_default: bool,
}

/// A carrier to create, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCarrier {
    pub code: String,
    /// Trimmed.
    pub name: String,
    pub kind: CarrierKind,
    pub is_default: bool,
}

impl CarrierBody {
    /// Checks every field; the refusal names the first one that is wrong.
    pub fn validated(self) -> Result<NewCarrier, Invalid> {
        let code_ok = (1..=MAX_CARRIER_CODE).contains(&self.code.len())
            && self
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !code_ok {
            return Err(Invalid::new(
                "invalid_carrier_code",
                format!("code must be 1-{MAX_CARRIER_CODE} of a-z, 0-9 and '-'"),
            ));
        }
        let name = self.name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_CARRIER_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(Invalid::new(
                "invalid_carrier_name",
                format!(
                    "name must be 1-{MAX_CARRIER_NAME_CHARS} characters without control characters"
                ),
            ));
        }
        let kind = CarrierKind::parse(&self.kind).ok_or_else(|| {
            let kinds = CarrierKind::ALL.map(CarrierKind::as_str).join(", ");
            Invalid::new(
                "invalid_carrier_kind",
                format!("kind `{}` is not one of: {kinds}", self.kind),
            )
        })?;
        Ok(NewCarrier {
            code: self.code,
            name: name.to_owned(),
            kind,
            is_default: self.is_default,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event_body(patch: Value) -> Result<CarrierEvent, Invalid> {
        let mut body = json!({
            "carrier_event_id": "evt-1",
            "status": "IN_TRANSIT",
            "occurred_at": "2026-12-01T10:00:00+01:00",
        });
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value::<CarrierEventBody>(body)
            .expect("well-formed JSON")
            .validated()
    }

    fn code(result: Result<impl std::fmt::Debug, Invalid>) -> &'static str {
        result.expect_err("refused").code
    }

    #[test]
    fn a_valid_update_is_normalised() {
        let event = event_body(json!({ "location": "  Hamburg Hub  " })).unwrap();
        assert_eq!(
            event,
            CarrierEvent {
                carrier_event_id: "evt-1".into(),
                status: Status::InTransit,
                occurred_at: "2026-12-01T09:00:00.000Z".into(),
                location: Some("Hamburg Hub".into()),
                tracking_number: None,
            }
        );
        assert_eq!(
            event_body(json!({ "location": "   " })).unwrap().location,
            None
        );
        assert_eq!(
            event_body(json!({ "location": null })).unwrap().location,
            None
        );
        let max_id = "~".repeat(MAX_CARRIER_EVENT_ID);
        assert!(event_body(json!({ "carrier_event_id": max_id })).is_ok());
        assert!(event_body(json!({ "carrier_event_id": "with space !" })).is_ok());
        assert!(event_body(json!({ "location": "ü".repeat(MAX_LOCATION_CHARS) })).is_ok());
        let tracked = event_body(json!({ "tracking_number": "1Z-999AA1" })).unwrap();
        assert_eq!(tracked.tracking_number.as_deref(), Some("1Z-999AA1"));
    }

    #[test]
    fn every_status_name_parses_and_others_are_refused() {
        // PENDING and CANCELLED parse here; the decider refuses them.
        for status in Status::ALL {
            assert_eq!(
                event_body(json!({ "status": status.as_str() }))
                    .unwrap()
                    .status,
                status
            );
        }
        for bad in ["", "delivered", "SHIPPED", "IN TRANSIT"] {
            assert_eq!(
                code(event_body(json!({ "status": bad }))),
                "invalid_status",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn each_bad_field_of_an_update_is_refused_with_its_code() {
        let cases = [
            (
                json!({ "carrier_event_id": "" }),
                "invalid_carrier_event_id",
            ),
            (
                json!({ "carrier_event_id": "x".repeat(MAX_CARRIER_EVENT_ID + 1) }),
                "invalid_carrier_event_id",
            ),
            (
                json!({ "carrier_event_id": "tab\there" }),
                "invalid_carrier_event_id",
            ),
            (
                json!({ "carrier_event_id": "é" }),
                "invalid_carrier_event_id",
            ),
            (
                json!({ "occurred_at": "2026-12-01" }),
                "invalid_occurred_at",
            ),
            (
                json!({ "occurred_at": "2026-02-30T00:00:00Z" }),
                "invalid_occurred_at",
            ),
            (json!({ "occurred_at": "yesterday" }), "invalid_occurred_at"),
            (
                json!({ "location": "x".repeat(MAX_LOCATION_CHARS + 1) }),
                "invalid_location",
            ),
            (json!({ "location": "a\nb" }), "invalid_location"),
            (json!({ "tracking_number": "" }), "invalid_tracking_number"),
            (
                json!({ "tracking_number": "1Z 999" }),
                "invalid_tracking_number",
            ),
            (
                json!({ "tracking_number": "X".repeat(MAX_TRACKING_NUMBER + 1) }),
                "invalid_tracking_number",
            ),
        ];
        for (patch, expected) in cases {
            assert_eq!(code(event_body(patch.clone())), expected, "{patch}");
        }
    }

    #[test]
    fn malformed_update_bodies_do_not_parse() {
        for body in [
            json!({ "status": "IN_TRANSIT", "occurred_at": "2026-12-01T10:00:00Z" }),
            json!({ "carrier_event_id": "e", "status": "IN_TRANSIT" }),
            json!({ "carrier_event_id": "e", "status": 3, "occurred_at": "2026-12-01T10:00:00Z" }),
            json!({ "carrier_event_id": "e", "status": "IN_TRANSIT",
                    "occurred_at": "2026-12-01T10:00:00Z", "extra": 1 }),
        ] {
            assert!(
                serde_json::from_value::<CarrierEventBody>(body.clone()).is_err(),
                "{body}"
            );
        }
    }

    fn carrier(body: Value) -> Result<NewCarrier, Invalid> {
        serde_json::from_value::<CarrierBody>(body)
            .expect("well-formed JSON")
            .validated()
    }

    #[test]
    fn carriers_are_checked_and_default_is_optional() {
        assert_eq!(
            carrier(json!({ "code": "dhl-2", "name": "  DHL Express ", "kind": "manual" })),
            Ok(NewCarrier {
                code: "dhl-2".into(),
                name: "DHL Express".into(),
                kind: CarrierKind::Manual,
                is_default: false,
            })
        );
        let default = carrier(json!({ "code": "t", "name": "T", "kind": "test", "default": true }));
        assert!(default.unwrap().is_default);
        let cases = [
            (
                json!({ "code": "", "name": "n", "kind": "test" }),
                "invalid_carrier_code",
            ),
            (
                json!({ "code": "DHL", "name": "n", "kind": "test" }),
                "invalid_carrier_code",
            ),
            (
                json!({ "code": "a_b", "name": "n", "kind": "test" }),
                "invalid_carrier_code",
            ),
            (
                json!({ "code": "a".repeat(MAX_CARRIER_CODE + 1), "name": "n", "kind": "test" }),
                "invalid_carrier_code",
            ),
            (
                json!({ "code": "c", "name": "  ", "kind": "test" }),
                "invalid_carrier_name",
            ),
            (
                json!({ "code": "c", "name": "n".repeat(MAX_CARRIER_NAME_CHARS + 1), "kind": "test" }),
                "invalid_carrier_name",
            ),
            (
                json!({ "code": "c", "name": "n", "kind": "ups" }),
                "invalid_carrier_kind",
            ),
            (
                json!({ "code": "c", "name": "n", "kind": "Test" }),
                "invalid_carrier_kind",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(code(carrier(body.clone())), expected, "{body}");
        }
        assert!(
            carrier(json!({ "code": "a".repeat(MAX_CARRIER_CODE), "name": "n", "kind": "test" }))
                .is_ok()
        );
        let unknown = json!({ "code": "c", "name": "n", "kind": "test", "api_key": "x" });
        assert!(serde_json::from_value::<CarrierBody>(unknown).is_err());
    }
}
