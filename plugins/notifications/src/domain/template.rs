//! Notification templates: `{{field}}` placeholders filled from the event's
//! payload.
//!
//! The language is deliberately tiny: a placeholder names one top-level payload
//! field, `[a-z_]{1,64}`, with no spaces, filters, nesting or escapes. Strings
//! are inserted as they are, numbers as their digits, booleans as
//! `true`/`false`; null, a missing field, an object or a list become nothing.
//! Amounts are therefore shown in raw minor units: formatting money needs the
//! currency's exponent and a locale, and must never go through floats.
use mercato_sdk::validate::Invalid;
use serde_json::Value;

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;
/// Longest placeholder name.
pub const MAX_PLACEHOLDER_CHARS: usize = 64;

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

/// A piece of a parsed template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Text copied as it is.
    Text(&'a str),
    /// A placeholder: the payload field it names.
    Field(&'a str),
}

/// Why a template text does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{{` without a `}}` after it.
    Unclosed,
    /// `{{name}}` whose name is not `[a-z_]{1,64}`.
    BadName(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Unclosed => write!(f, "a `{{{{` is never closed by `}}}}`"),
            TemplateError::BadName(name) => write!(
                f,
                "placeholder `{{{{{name}}}}}` must name a field of 1-{MAX_PLACEHOLDER_CHARS} \
                 characters a-z or _"
            ),
        }
    }
}

/// True for a placeholder name: `[a-z_]{1,64}`.
pub fn is_placeholder_name(name: &str) -> bool {
    (1..=MAX_PLACEHOLDER_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// Splits `text` into literal text and placeholders. A `}}` outside a
/// placeholder is ordinary text; the first `}}` after a `{{` closes it.
pub fn parse(text: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            segments.push(Segment::Text(&rest[..start]));
        }
        let after_open = &rest[start + OPEN.len()..];
        let end = after_open.find(CLOSE).ok_or(TemplateError::Unclosed)?;
        let name = &after_open[..end];
        if !is_placeholder_name(name) {
            return Err(TemplateError::BadName(name.to_owned()));
        }
        segments.push(Segment::Field(name));
        rest = &after_open[end + CLOSE.len()..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Ok(segments)
}

/// Checks a template sent over HTTP: subject 1-200 and body 1-10000
/// characters, every placeholder well-formed. Refusals are `invalid_template`.
pub fn check(subject: &str, body: &str) -> Result<(), Invalid> {
    let refuse = |message: String| Invalid::new("invalid_template", message);
    let subject_chars = subject.chars().count();
    if !(1..=MAX_SUBJECT_CHARS).contains(&subject_chars) {
        return Err(refuse(format!(
            "subject must be 1-{MAX_SUBJECT_CHARS} characters, got {subject_chars}"
        )));
    }
    let body_chars = body.chars().count();
    if !(1..=MAX_BODY_CHARS).contains(&body_chars) {
        return Err(refuse(format!(
            "body must be 1-{MAX_BODY_CHARS} characters, got {body_chars}"
        )));
    }
    for (part, text) in [("subject", subject), ("body", body)] {
        parse(text).map_err(|e| refuse(format!("{part}: {e}")))?;
    }
    Ok(())
}

/// The text of a payload field as a placeholder shows it.
fn field_text(payload: &Value, name: &str) -> String {
    match payload.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Null | Value::Array(_) | Value::Object(_)) | None => String::new(),
    }
}

/// Fills `text`'s placeholders from `payload`'s top-level fields. Stored
/// templates were checked when written; one that does not parse anyway
/// (edited by hand in the database) is shown as it is rather than dropped,
/// so the recipient still hears about the event.
pub fn render(text: &str, payload: &Value) -> String {
    let Ok(segments) = parse(text) else {
        return text.to_owned();
    };
    segments
        .into_iter()
        .map(|segment| match segment {
            Segment::Text(literal) => literal.to_owned(),
            Segment::Field(name) => field_text(payload, name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The seeded defaults, checked like any template sent over HTTP.
    const SEED: &str =
        include_str!("../../../../migrations/notifications/0003_default_templates.sql");

    #[test]
    fn placeholders_are_lower_case_letters_and_underscores() {
        for name in ["order_id", "a", "_", &"x".repeat(64)] {
            assert!(is_placeholder_name(name), "{name}");
        }
        for name in [
            "",
            "Order",
            "order-id",
            "order id",
            "line2",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!is_placeholder_name(name), "{name}");
        }
    }

    #[test]
    fn a_template_splits_into_text_and_fields() {
        assert_eq!(
            parse("Order {{order_id}}: {{amount_minor}} {{currency}}!"),
            Ok(vec![
                Segment::Text("Order "),
                Segment::Field("order_id"),
                Segment::Text(": "),
                Segment::Field("amount_minor"),
                Segment::Text(" "),
                Segment::Field("currency"),
                Segment::Text("!"),
            ])
        );
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(
            parse("{{a}}{{b}}"),
            Ok(vec![Segment::Field("a"), Segment::Field("b")])
        );
        assert_eq!(
            parse("no fields }} here"),
            Ok(vec![Segment::Text("no fields }} here")])
        );
        assert_eq!(
            parse("{ {single} }"),
            Ok(vec![Segment::Text("{ {single} }")])
        );
    }

    #[test]
    fn malformed_placeholders_are_refused() {
        assert_eq!(parse("Hello {{name"), Err(TemplateError::Unclosed));
        assert_eq!(parse("{{}}"), Err(TemplateError::BadName(String::new())));
        assert_eq!(
            parse("{{ order_id }}"),
            Err(TemplateError::BadName(" order_id ".into()))
        );
        assert_eq!(
            parse("{{{order_id}}}"),
            Err(TemplateError::BadName("{order_id".into()))
        );
        assert_eq!(
            parse("{{order.id}}"),
            Err(TemplateError::BadName("order.id".into()))
        );
        assert_eq!(
            TemplateError::BadName("Order".into()).to_string(),
            "placeholder `{{Order}}` must name a field of 1-64 characters a-z or _"
        );
        assert_eq!(
            TemplateError::Unclosed.to_string(),
            "a `{{` is never closed by `}}`"
        );
    }

    #[test]
    fn fields_render_strings_as_is_and_numbers_as_digits() {
        let payload = json!({
            "order_id": "o-1",
            "amount_minor": 123_456,
            "negative": -5,
            "big": 9_007_199_254_740_993_i64,
            "paid": true,
            "coupon_code": null,
            "items": [{ "sku": "TEE" }],
            "address": { "city": "Lyon" },
            "note": "{{order_id}} stays literal",
        });
        let text = "{{order_id}}|{{amount_minor}}|{{negative}}|{{big}}|{{paid}}|\
                    {{coupon_code}}|{{items}}|{{address}}|{{missing}}|{{note}}";
        assert_eq!(
            render(text, &payload),
            "o-1|123456|-5|9007199254740993|true|||||{{order_id}} stays literal"
        );
    }

    #[test]
    fn amounts_render_as_raw_minor_units() {
        let payload = json!({ "amount_minor": 1999, "currency": "EUR" });
        assert_eq!(
            render("Paid {{amount_minor}} {{currency}} (minor units)", &payload),
            "Paid 1999 EUR (minor units)"
        );
    }

    #[test]
    fn a_payload_that_is_not_an_object_fills_nothing() {
        assert_eq!(render("[{{order_id}}]", &json!("o-1")), "[]");
        assert_eq!(render("[{{order_id}}]", &Value::Null), "[]");
    }

    #[test]
    fn a_stored_template_that_does_not_parse_is_shown_verbatim() {
        let payload = json!({ "order_id": "o-1" });
        assert_eq!(render("Order {{Order}}", &payload), "Order {{Order}}");
        assert_eq!(render("Order {{order_id", &payload), "Order {{order_id");
    }

    #[test]
    fn templates_sent_over_http_are_bounded_and_well_formed() {
        assert_eq!(check("Order {{order_id}}", "Body {{total_minor}}"), Ok(()));
        assert_eq!(check(&"é".repeat(200), &"é".repeat(10_000)), Ok(()));
        let code_and_message = |subject: &str, body: &str| {
            let refusal = check(subject, body).unwrap_err();
            (refusal.code, refusal.message)
        };
        let cases = [
            ("", "b", "subject must be 1-200 characters, got 0"),
            (
                &"s".repeat(201),
                "b",
                "subject must be 1-200 characters, got 201",
            ),
            ("s", "", "body must be 1-10000 characters, got 0"),
            (
                "s",
                &"b".repeat(10_001),
                "body must be 1-10000 characters, got 10001",
            ),
            ("{{Bad}}", "b", "subject: placeholder `{{Bad}}`"),
            ("s", "x {{open", "body: a `{{` is never closed"),
        ];
        for (subject, body, message) in cases {
            let (code, actual) = code_and_message(subject, body);
            assert_eq!(code, "invalid_template");
            assert!(actual.starts_with(message), "{actual}");
        }
    }

    #[test]
    fn every_subscribed_type_has_a_well_formed_default_template() {
        for event_type in super::super::SUBSCRIBED_EVENT_TYPES {
            assert!(
                SEED.contains(&format!("('{event_type}',")),
                "no default template for {event_type}"
            );
        }
        assert!(parse(SEED).is_ok(), "{:?}", parse(SEED));
        assert!(SEED.contains("{{order_id}}"));
    }
}
