//! Time, from the host: guests have no other clock.
use crate::bindings::mercato::plugin::clock;
use crate::time::Instant;

/// Current UTC time, RFC 3339 with millisecond precision.
pub fn now() -> String {
    clock::now()
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    clock::now_millis()
}

/// Current time as an [`Instant`], for comparing and computing with; its
/// `to_string()` is the same text as [`now`].
pub fn instant() -> Instant {
    Instant::from_unix_millis(now_millis())
}
