//! The partitions the relay keeps out of its batches for a while.
//!
//! A record for a partition whose leader is away (its broker stopped or cut
//! off, no in-sync replica to take over) waits in librdkafka until
//! `message.timeout.ms`. If the relay waited for it, and claimed its row
//! again at the head of every oldest-first batch, that one partition would
//! set the pace of every order. So a partition is *benched*:
//!
//! - while records of it are still in flight after a wave's wait (they are
//!   *late*): librdkafka keeps retrying them, and sending more to the same
//!   partition would only pile up records that wait just as long;
//! - after a record of it failed, for a backoff that grows while it keeps
//!   failing (from [`FIRST_BENCH`] up to the relay's `max_backoff`). When
//!   the backoff is over its rows are claimed again: the next wave is the
//!   probe, and it costs the other partitions at most one wave's wait.
//!
//! A delivery to the partition takes it off the bench. The bench only
//! decides which rows are claimed; it never decides order, which holds
//! without it (see the relay's waves and its exclusion of keys in flight).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// The first bench after a failure; each failure in a row doubles it.
pub(super) const FIRST_BENCH: Duration = Duration::from_millis(500);

/// One benched partition.
#[derive(Debug)]
struct Benched {
    /// Since when the partition has not taken records.
    since: Instant,
    /// Records of it still in flight (not reported yet).
    late: usize,
    /// After a failure: benched at least until then.
    until: Option<Instant>,
    backoff: Backoff,
    /// The latest error, or why it is benched.
    reason: String,
}

/// The benched partitions of the relay's topic, by partition number.
#[derive(Debug)]
pub(super) struct Bench {
    max: Duration,
    partitions: BTreeMap<i32, Benched>,
    /// The latest failure, while no record was delivered after it.
    failing: Option<String>,
}

/// What a change did to a partition, for the relay to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// The partition was not benched before.
    Benched,
    /// It was benched already.
    Still,
    /// It is off the bench, after being on it for this long.
    Back(Duration),
    /// Nothing changed.
    None,
}

impl Bench {
    /// An empty bench whose backoff grows up to `max`.
    pub(super) fn new(max: Duration) -> Self {
        Bench {
            max: max.max(FIRST_BENCH),
            partitions: BTreeMap::new(),
            failing: None,
        }
    }

    fn entry(&mut self, partition: i32, now: Instant, reason: &str) -> (&mut Benched, Change) {
        let max = self.max;
        let mut change = Change::Still;
        let benched = self.partitions.entry(partition).or_insert_with(|| {
            change = Change::Benched;
            Benched {
                since: now,
                late: 0,
                until: None,
                backoff: Backoff::new(FIRST_BENCH, max),
                reason: reason.to_owned(),
            }
        });
        (benched, change)
    }

    /// A record for `partition` was sent and is not reported after a wave's wait.
    pub(super) fn late(&mut self, partition: Option<i32>, now: Instant) -> Change {
        let Some(partition) = partition else {
            return Change::None;
        };
        let (benched, change) = self.entry(partition, now, "records not acknowledged in time");
        benched.late += 1;
        change
    }

    /// A record for `partition` failed with `error` (after being late, or
    /// within its wave): benched for the next backoff, which is returned.
    pub(super) fn failed(
        &mut self,
        partition: Option<i32>,
        error: &str,
        was_late: bool,
        now: Instant,
    ) -> (Change, Duration) {
        self.failing = Some(error.to_owned());
        let Some(partition) = partition else {
            return (Change::None, Duration::ZERO);
        };
        let (benched, change) = self.entry(partition, now, error);
        if was_late {
            benched.late = benched.late.saturating_sub(1);
        }
        benched.reason = error.to_owned();
        // One backoff step per round of failures, not per record: the
        // records of one wave fail together.
        let delay = match benched.until {
            Some(until) if until > now => until - now,
            _ => {
                let delay = benched.backoff.next_delay();
                benched.until = Some(now + delay);
                delay
            }
        };
        (change, delay)
    }

    /// A record for `partition` was delivered: the partition takes records.
    pub(super) fn delivered(
        &mut self,
        partition: Option<i32>,
        was_late: bool,
        now: Instant,
    ) -> Change {
        self.failing = None;
        let Some(partition) = partition else {
            return Change::None;
        };
        let Some(benched) = self.partitions.get_mut(&partition) else {
            return Change::None;
        };
        if was_late {
            benched.late = benched.late.saturating_sub(1);
        }
        if benched.late > 0 {
            // Still waiting for some of its records; they may yet fail.
            benched.until = None;
            benched.backoff.reset();
            return Change::Still;
        }
        let since = benched.since;
        self.partitions.remove(&partition);
        Change::Back(now.saturating_duration_since(since))
    }

    /// The partitions whose rows the claim leaves out now.
    pub(super) fn excluded(&self, now: Instant) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|(_, b)| b.late > 0 || b.until.is_some_and(|until| until > now))
            .map(|(&p, _)| p)
            .collect()
    }

    /// Whether `partition` takes no records in this batch.
    pub(super) fn is_excluded(&self, partition: Option<i32>, now: Instant) -> bool {
        partition
            .and_then(|p| self.partitions.get(&p))
            .is_some_and(|b| b.late > 0 || b.until.is_some_and(|until| until > now))
    }

    /// Every benched partition, with since when and why, for readiness and metrics.
    pub(super) fn benched(&self) -> impl Iterator<Item = (i32, Duration, &str)> {
        let now = Instant::now();
        self.partitions
            .iter()
            .map(move |(&p, b)| (p, now.saturating_duration_since(b.since), b.reason.as_str()))
    }

    /// The latest failure, if no record was delivered since: then the relay
    /// cannot publish at all, as far as it knows.
    pub(super) fn failing(&self) -> Option<&str> {
        self.failing.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_partition_is_excluded_until_its_records_are_reported() {
        let now = Instant::now();
        let mut bench = Bench::new(Duration::from_secs(5));
        assert_eq!(bench.late(Some(2), now), Change::Benched);
        assert_eq!(bench.late(Some(2), now), Change::Still);
        assert_eq!(bench.excluded(now), vec![2]);
        assert!(bench.is_excluded(Some(2), now));
        assert!(!bench.is_excluded(Some(1), now));
        assert_eq!(bench.delivered(Some(2), true, now), Change::Still);
        assert_eq!(bench.excluded(now), vec![2], "one record still in flight");
        let later = now + Duration::from_secs(3);
        assert_eq!(
            bench.delivered(Some(2), true, later),
            Change::Back(Duration::from_secs(3))
        );
        assert!(bench.excluded(later).is_empty());
        assert_eq!(bench.failing(), None);
    }

    #[test]
    fn a_failed_partition_is_benched_for_a_growing_backoff_then_probed() {
        let now = Instant::now();
        let mut bench = Bench::new(Duration::from_secs(5));
        let (change, first) = bench.failed(Some(4), "timed out", false, now);
        assert_eq!(change, Change::Benched);
        assert!(
            first >= FIRST_BENCH && first <= FIRST_BENCH * 2,
            "{first:?}"
        );
        // A second record of the same round does not double the backoff.
        let (_, same) = bench.failed(Some(4), "timed out", false, now);
        assert_eq!(same, first);
        assert_eq!(bench.failing(), Some("timed out"));
        assert_eq!(bench.excluded(now), vec![4]);
        // Once the backoff is over, its rows are claimed again: the probe.
        let probe = now + first;
        assert!(bench.excluded(probe).is_empty());
        let (change, second) = bench.failed(Some(4), "timed out", false, probe);
        assert_eq!(change, Change::Still);
        assert!(second > first, "{second:?} after {first:?}");
        assert_eq!(
            bench
                .benched()
                .map(|(p, _, why)| (p, why))
                .collect::<Vec<_>>(),
            vec![(4, "timed out")]
        );
        // A delivery to another partition means the relay can publish.
        assert_eq!(bench.delivered(Some(1), false, probe), Change::None);
        assert_eq!(bench.failing(), None);
        assert_eq!(bench.excluded(probe), vec![4]);
        assert!(matches!(
            bench.delivered(Some(4), false, probe),
            Change::Back(_)
        ));
        assert_eq!(bench.benched().count(), 0);
    }

    #[test]
    fn a_failure_of_unknown_partition_benches_nothing_but_counts_as_failing() {
        let now = Instant::now();
        let mut bench = Bench::new(Duration::from_secs(5));
        assert_eq!(
            bench.failed(None, "all brokers down", false, now).0,
            Change::None
        );
        assert!(bench.excluded(now).is_empty());
        assert_eq!(bench.failing(), Some("all brokers down"));
    }
}
