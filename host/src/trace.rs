//! W3C trace context (`traceparent`), carried by every call and every event.
//!
//! A request continues the `traceparent` its client sent, or starts a trace;
//! each plugin call is a span of its own, and the events a call emits are
//! stored with the call's `traceparent` (`outbox_events.traceparent`), so
//! the handler of each continues it: one order's saga across every context
//! is one trace. The ids exist whether or not spans are exported: they are
//! 24 random bytes per call, and they name each JSON log line's trace. When
//! OpenTelemetry export is on (`telemetry`), the ids are those of the
//! exported spans.
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once the OpenTelemetry layer is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Marks the OpenTelemetry layer as installed (`telemetry::init`).
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// True when spans are exported over OTLP.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// One span's place in one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The span (8 bytes, never all zero).
    pub span_id: [u8; 8],
    /// The `sampled` flag: whether the caller records this trace.
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn root() -> Self {
        TraceContext {
            trace_id: nonzero(),
            span_id: nonzero(),
            sampled: true,
        }
    }

    /// A new span of the same trace.
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero(),
            ..*self
        }
    }

    /// Reads a `traceparent` header: `00-<32 hex>-<16 hex>-<2 hex>`, or a
    /// later version's (whose first four fields read the same). `None` for
    /// anything else, all-zero ids and version `ff` included, as the W3C
    /// recommendation asks: a malformed header starts a new trace.
    pub fn parse(header: &str) -> Option<Self> {
        let bytes = header.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let version = header.get(0..2)?;
        if version == "ff" || (version == "00" && bytes.len() != 55) {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let (trace, span, flags) = (header.get(3..35)?, header.get(36..52)?, header.get(53..55)?);
        if !lower_hex(version) || !lower_hex(trace) || !lower_hex(span) || !lower_hex(flags) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    fn to_otel(self) -> opentelemetry::Context {
        let flags = if self.sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let remote = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(remote)
    }

    fn from_otel(span: &SpanContext) -> Option<Self> {
        span.is_valid().then(|| TraceContext {
            trace_id: span.trace_id().to_bytes(),
            span_id: span.span_id().to_bytes(),
            sampled: span.is_sampled(),
        })
    }
}

/// Makes `span` continue `parent` (a client's `traceparent`, the request's
/// context, or an event's) and records its `trace_id` field; returns the
/// span's own context, which the call's events carry. Without export the
/// ids are made here; with it they are the exported span's.
pub fn enter(span: &tracing::Span, parent: Option<TraceContext>) -> TraceContext {
    let made = || parent.map_or_else(TraceContext::root, |p| p.child());
    let context = if exporting() && !span.is_disabled() {
        if let Some(parent) = parent {
            let _ = span.set_parent(parent.to_otel());
        }
        TraceContext::from_otel(span.context().span().span_context()).unwrap_or_else(made)
    } else {
        made()
    };
    span.record("trace_id", context.trace_id_hex());
    context
}

/// Random bytes, never all zero (an all-zero id is invalid). From a fast
/// per-thread generator (seeded from the OS), not a syscall per id: ids must
/// be unique, not secret, and every plugin call makes one.
fn nonzero<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    while bytes == [0u8; N] {
        bytes.fill_with(|| fastrand::u8(..));
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = TraceContext::parse(header).expect("valid");
        assert!(context.sampled);
        assert_eq!(context.header(), header);
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let child = context.child();
        assert_eq!(child.trace_id, context.trace_id);
        assert_ne!(child.span_id, context.span_id);
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let header = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let context = TraceContext::parse(header).expect("valid");
        assert!(!context.sampled);
    }

    #[test]
    fn malformed_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_trace_has_valid_ids() {
        let root = TraceContext::root();
        assert_eq!(TraceContext::parse(&root.header()), Some(root));
    }
}
