//! Time, from the host: guests have no other clock.
use crate::bindings::mercato::plugin::clock;

/// Current UTC time, RFC 3339 with millisecond precision.
pub fn now() -> String {
    clock::now()
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    clock::now_millis()
}
