//! Wall-clock helpers: RFC 3339 UTC text with millisecond precision.
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc3339, iso8601};

/// Now, as RFC 3339 UTC with milliseconds (`2026-11-21T23:43:24.123Z`).
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 UTC with milliseconds: always 24 characters for
/// years 0 to 9999 (the format fails, and this is "", outside them), so text
/// order is time order (the idempotency pruner compares `created_at` as text).
pub fn rfc3339(t: OffsetDateTime) -> String {
    const FORMAT: iso8601::EncodedConfig = iso8601::Config::DEFAULT
        .set_time_precision(iso8601::TimePrecision::Second {
            decimal_digits: std::num::NonZeroU8::new(3),
        })
        .encode();
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Iso8601::<FORMAT>)
        .unwrap_or_else(|_| t.format(&Rfc3339).unwrap_or_default())
}

/// `ms` since the Unix epoch as [`rfc3339`] text.
pub fn rfc3339_millis(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(rfc3339)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Parses RFC 3339 into milliseconds since the epoch.
pub fn parse_millis(text: &str) -> Option<u64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds_and_parses_back() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_000_000).unwrap();
        let text = rfc3339(t);
        assert_eq!(text, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_millis(&text), Some(1_700_000_000_123));
    }

    #[test]
    fn the_text_is_fixed_width_so_text_order_is_time_order() {
        let millis = [
            -62_000_000_000_000, // year 0005
            0,
            1_000,
            9_000,
            1_700_000_000_000,
            1_700_000_000_009,
            1_700_000_000_010,
            1_700_000_000_100,
            253_402_300_799_999, // the last millisecond of 9999
        ];
        let texts: Vec<String> = millis
            .iter()
            .map(|ms| rfc3339(OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap()))
            .collect();
        assert!(texts.iter().all(|t| t.len() == 24), "{texts:?}");
        assert!(texts.is_sorted(), "{texts:?}");
        // Offsets are normalised to UTC first.
        let paris = OffsetDateTime::from_unix_timestamp(0)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(1, 0, 0).unwrap());
        assert_eq!(rfc3339(paris), "1970-01-01T00:00:00.000Z");
    }
}
