//! How the inbox says it has stopped: not ready on `/health/ready`, with the
//! reason, and `inbox_stalled` 1, for each cause apart. A stall of one
//! cause (the database) ends without hiding another that still holds (a
//! partition out of range).

use platform::health::Readiness;
use prometheus_client::metrics::gauge::Gauge;

/// What stopped the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// The batch in hand cannot be finished: the database refuses or cannot
    /// take its effects, or the dead-letter topic cannot take a dead letter.
    Batch,
    /// A partition's next record is no longer in the log.
    Offsets,
    /// Kafka refuses this service's reads or its dead-letter writes (a
    /// missing ACL).
    KafkaAccess,
}

impl Cause {
    const ALL: [Cause; 3] = [Cause::Batch, Cause::Offsets, Cause::KafkaAccess];

    /// The name under which the cause reports on [`Readiness`].
    fn part(self) -> &'static str {
        match self {
            Cause::Batch => "inbox",
            Cause::Offsets => "inbox-offsets",
            Cause::KafkaAccess => "inbox: Kafka access",
        }
    }
}

/// Reports the inbox's stalls on readiness and on the `inbox_stalled` gauge.
#[derive(Debug, Clone)]
pub(super) struct Stall {
    readiness: Readiness,
    stalled: Gauge,
}

impl Stall {
    /// Reports on `readiness` and `stalled`.
    pub(super) fn new(readiness: Readiness, stalled: Gauge) -> Self {
        Stall { readiness, stalled }
    }

    /// The inbox is stopped by `cause`, for `reason`.
    pub(super) fn stop(&self, cause: Cause, reason: impl Into<String>) {
        self.readiness.not_ready(cause.part(), reason);
        self.stalled.set(1);
    }

    /// `cause` no longer stops the inbox.
    pub(super) fn resume(&self, cause: Cause) {
        self.readiness.ready(cause.part());
        let parts: Vec<&str> = Cause::ALL.iter().map(|c| c.part()).collect();
        let still = self
            .readiness
            .problems()
            .iter()
            .any(|(part, _)| parts.contains(part));
        self.stalled.set(i64::from(still));
    }
}
