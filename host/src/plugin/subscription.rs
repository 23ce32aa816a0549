//! Subscriptions (`source.EventType`, `source.*`) and the plugin names they use.
use crate::outbox::valid_event_type;

/// A subscription: `source.EventType` or `source.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Source plugin.
    pub source: String,
    /// Event type, or `None` for every type.
    pub event_type: Option<String>,
}

impl Pattern {
    /// Parses `source.Type` / `source.*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (source, ty) = text.split_once('.').ok_or_else(|| {
            format!("subscription `{text}` must look like `source.EventType` or `source.*`")
        })?;
        if !valid_name(source) || ty.is_empty() || (ty != "*" && !valid_event_type(ty)) {
            return Err(format!(
                "subscription `{text}` must look like `source.EventType` or `source.*`"
            ));
        }
        Ok(Pattern {
            source: source.to_owned(),
            event_type: (ty != "*").then(|| ty.to_owned()),
        })
    }

    /// True when the pattern selects `event_type` from `source`.
    pub fn matches(&self, source: &str, event_type: &str) -> bool {
        self.source == source && self.event_type.as_deref().is_none_or(|t| t == event_type)
    }
}

/// Plugin names: lower-case letters, digits and `-`, starting with a letter.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        // `--` names a rebuilt copy of a plugin's database (`search--r2`).
        && !name.contains("--")
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_by_source_and_type() {
        let all = Pattern::parse("orders.*").unwrap();
        let one = Pattern::parse("orders.OrderPlaced").unwrap();
        assert!(all.matches("orders", "OrderPaid"));
        assert!(one.matches("orders", "OrderPlaced"));
        assert!(!one.matches("orders", "OrderPaid"));
        assert!(!all.matches("payments", "OrderPlaced"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "orders",
            ".X",
            "orders.",
            "Orders.*",
            "orders.Order-Placed",
            "a.b.c",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
