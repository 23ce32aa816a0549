//! Points in time as the host's clock gives them: UTC, millisecond precision,
//! written as RFC 3339 (`2026-01-31T23:59:59.000Z`).
//!
//! Guests have no time library (and need none): the proleptic Gregorian
//! calendar below is H. Hinnant's `days_from_civil` / `civil_from_days`. Pure
//! functions, unit-tested natively; [`crate::clock::instant`] reads the clock.
use std::fmt;

/// A point in time at millisecond precision (the host clock's), UTC.
///
/// Times are parsed into this rather than compared as text, so any RFC 3339
/// offset or precision a client sends compares correctly; they are stored and
/// shown in the host's format, which [`Display`](fmt::Display) writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(i64);

const MS_PER_DAY: i64 = 86_400_000;
/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range that
/// formats back to a four-digit year.
const EARLIEST: i64 = days_from_civil(0, 1, 1) * MS_PER_DAY;
const LATEST: i64 = days_from_civil(10_000, 1, 1) * MS_PER_DAY - 1;

impl Instant {
    /// Milliseconds since the Unix epoch.
    pub fn from_millis(millis: i64) -> Self {
        Instant(millis)
    }

    /// Milliseconds since the Unix epoch as the host clock counts them
    /// (unsigned); saturates far beyond any real clock.
    pub fn from_unix_millis(millis: u64) -> Self {
        Instant(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-01-31T23:59:59Z`, `…T12:00:00.5+02:00`).
    /// Digits after the millisecond are dropped. Leap seconds (`:60`) are
    /// refused: the host clock never produces them. So are times outside
    /// four-digit years once in UTC.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let digits = |from: usize, to: usize| -> Option<i64> {
            let s = b.get(from..to)?;
            s.iter()
                .all(u8::is_ascii_digit)
                .then(|| s.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
        if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":")) {
            return None;
        }
        let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
        let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
        let mut i = 19;
        let mut millis = 0;
        if at(i, b".") {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return None;
            }
            millis = b[start..i]
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(3)
                .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        }
        let offset_minutes = match &b[i..] {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (h, m) = (digits(i + 1, i + 3)?, digits(i + 4, i + 6)?);
                if h > 23 || m > 59 {
                    return None;
                }
                if *sign == b'-' {
                    -(h * 60 + m)
                } else {
                    h * 60 + m
                }
            }
            _ => return None,
        };
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let ms = days_from_civil(year, month, day) * MS_PER_DAY
            + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000
            + millis;
        (EARLIEST..=LATEST).contains(&ms).then_some(Instant(ms))
    }
}

/// The host clock's format, `YYYY-MM-DDTHH:MM:SS.mmmZ`: fixed width within
/// four-digit years, so stored times compare as text.
impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.0.div_euclid(MS_PER_DAY));
        let ms = self.0.rem_euclid(MS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm): eras of 400 years, each exactly 146,097 days, with the year
/// starting in March so the leap day comes last.
pub const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
pub const fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Instant {
        Instant::parse(text).expect("a valid time")
    }

    /// Each input parses and formats back as the expected host-clock text.
    fn formats(cases: &[(&str, &str)]) {
        for (input, shown) in cases {
            assert_eq!(at(input).to_string(), *shown, "{input}");
        }
    }

    #[test]
    fn the_calendar_round_trips_around_the_epoch_and_leap_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in [-719_468, -1, 0, 11_016, 11_017, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn utc_times_parse_to_epoch_milliseconds_and_format_back() {
        assert_eq!(at("1970-01-01T00:00:00Z"), Instant::from_millis(0));
        // The host clock's own example (host/src/clock.rs).
        let t = at("2023-11-14T22:13:20.123Z");
        assert_eq!(t, Instant::from_millis(1_700_000_000_123));
        assert_eq!(t.millis(), 1_700_000_000_123);
        assert_eq!(at("1969-12-31T23:59:59.999Z"), Instant::from_millis(-1));
        formats(&[
            ("2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123Z"),
            ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
        ]);
    }

    #[test]
    fn epoch_milliseconds_format_like_the_host_clock() {
        for (millis, shown) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(Instant::from_unix_millis(millis).to_string(), shown);
        }
        assert_eq!(
            Instant::from_unix_millis(u64::MAX),
            Instant::from_millis(i64::MAX)
        );
    }

    #[test]
    fn offsets_and_precision_are_normalised_to_utc_milliseconds() {
        formats(&[
            ("2026-01-01T02:30:00+02:30", "2026-01-01T00:00:00.000Z"),
            ("2025-12-31T23:00:00-01:00", "2026-01-01T00:00:00.000Z"),
            ("2026-01-01t00:00:00.5z", "2026-01-01T00:00:00.500Z"),
            ("2026-01-01T00:00:00.123999Z", "2026-01-01T00:00:00.123Z"),
        ]);
        assert_eq!(at("2026-01-01T00:00:00+00:00"), at("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn leap_days_exist_only_in_leap_years() {
        formats(&[
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"),
            ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
            ("2024-02-28T23:59:59.999Z", "2024-02-28T23:59:59.999Z"),
        ]);
        assert_eq!(Instant::parse("1900-02-29T00:00:00Z"), None);
        assert_eq!(Instant::parse("2026-02-29T00:00:00Z"), None);
        assert_eq!(
            Instant::from_millis(at("2024-02-28T23:59:59.999Z").millis() + 1).to_string(),
            "2024-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn malformed_times_are_refused() {
        for raw in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-1-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T23:59:60Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00Z ",
            "+2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00ZZ",
            "２０２６-01-01T00:00:00Z",
            "tomorrow",
        ] {
            assert_eq!(Instant::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn times_outside_four_digit_years_in_utc_are_refused() {
        assert_eq!(Instant::parse("0000-01-01T00:30:00+01:00"), None);
        assert_eq!(Instant::parse("9999-12-31T23:30:00-01:00"), None);
        formats(&[
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00.000Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ]);
    }

    #[test]
    fn times_order_chronologically_whatever_their_offset() {
        assert!(at("2026-01-01T00:30:00+01:00") < at("2026-01-01T00:00:00Z"));
        assert!(at("2026-01-01T00:00:00.001Z") > at("2026-01-01T00:00:00Z"));
    }
}
