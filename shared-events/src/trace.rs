//! W3C trace context (`traceparent`), carried from the HTTP request that
//! caused an event to every consumer that handles it.
//!
//! Only the header format lives here; the services record the trace id in
//! their tracing spans, so one order can be followed across services by
//! searching the logs for one id.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A parsed `traceparent` header: version 00, a trace id, a parent span id, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// Why a `traceparent` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent: {0}")]
pub struct TraceParentError(&'static str);

impl TraceParent {
    /// Starts a new sampled trace with random ids.
    pub fn new_root() -> Self {
        let trace_id = Uuid::new_v4().as_u128();
        TraceParent {
            trace_id,
            parent_id: Self::new_span_id(),
            flags: 0x01,
        }
    }

    /// The same trace, continued from a new span (the next hop's parent).
    pub fn child(&self) -> Self {
        TraceParent {
            parent_id: Self::new_span_id(),
            ..*self
        }
    }

    /// The trace id as 32 lower-case hex digits, as logged by every service.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    fn new_span_id() -> u64 {
        // The low half of a random UUID; never zero (zero is invalid in W3C).
        (Uuid::new_v4().as_u128() as u64).max(1)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError("expected four dash-separated fields"));
        };
        if version != "00" || parts.next().is_some() {
            return Err(TraceParentError("only version 00 is understood"));
        }
        let hex = |field: &str, len: usize| {
            field.len() == len
                && field
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
            return Err(TraceParentError(
                "fields must be lower-case hex of the right length",
            ));
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| TraceParentError("trace id"))?;
        let parent_id =
            u64::from_str_radix(parent, 16).map_err(|_| TraceParentError("parent id"))?;
        let flags = u8::from_str_radix(flags, 16).map_err(|_| TraceParentError("flags"))?;
        if trace_id == 0 || parent_id == 0 {
            return Err(TraceParentError("all-zero ids are invalid"));
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_header_form() {
        let tp = TraceParent::new_root();
        let parsed: TraceParent = tp.to_string().parse().unwrap();
        assert_eq!(parsed, tp);
        assert_eq!(tp.to_string().len(), 55);
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let tp = TraceParent::new_root();
        let child = tp.child();
        assert_eq!(child.trace_id(), tp.trace_id());
        assert_ne!(child.to_string(), tp.to_string());
    }

    #[test]
    fn parses_the_w3c_example_and_rejects_garbage() {
        let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "accepted {bad:?}");
        }
    }
}
