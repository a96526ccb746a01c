//! How the inbox consumes: its settings, each declared once, and the crash
//! points of fault-injection builds.

use shared_events::topics;
use std::time::Duration;

/// A deliberate crash point for the chaos run and the tests (only in builds
/// with the `fault-injection` feature).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Abort the process after the Nth committed batch, before its offsets
    /// are stored (`FAULT_ABORT_AFTER_COMMIT=N`; used by `cargo xtask chaos`).
    AbortProcessAfterCommit(u64),
    /// Stop the runtime the same way, without storing the offsets (in-process tests).
    StopAfterCommit(u64),
}

/// How the inbox consumes.
#[derive(Debug, Clone, clap::Args)]
pub struct InboxSettings {
    /// The consumer group (also the dedup namespace in processed_events).
    #[arg(
        id = "kafka_group_id",
        long = "kafka-group-id",
        env = "KAFKA_GROUP_ID",
        default_value = "inbox"
    )]
    pub group_id: String,
    /// Where a consumer group starts reading a partition it has no committed offset on (a new group); a committed offset that is out of range (below the log start: retention deleted records the group never read) is never reset, the inbox stops on it and says so
    #[arg(
        id = "kafka_auto_offset_reset",
        long = "kafka-auto-offset-reset",
        env = "KAFKA_AUTO_OFFSET_RESET",
        default_value = "earliest",
        value_parser = ["earliest", "latest"]
    )]
    pub auto_offset_reset: String,
    /// How often stored offsets are committed.
    #[arg(
        id = "kafka_auto_commit_interval",
        long = "kafka-auto-commit-interval-ms",
        env = "KAFKA_AUTO_COMMIT_INTERVAL_MS",
        default_value = "1000",
        value_parser = platform::config::millis
    )]
    pub auto_commit_interval: Duration,
    /// Longest the broker holds a fetch waiting for data.
    #[arg(
        id = "kafka_fetch_wait_max",
        long = "kafka-fetch-wait-max-ms",
        env = "KAFKA_FETCH_WAIT_MAX_MS",
        default_value = "100",
        value_parser = platform::config::millis
    )]
    pub fetch_wait_max: Duration,
    /// The broker answers a fetch once it has this many bytes for it (or after KAFKA_FETCH_WAIT_MAX_MS): above 1, fewer and larger fetches for up to that wait of latency
    #[arg(
        id = "kafka_fetch_min_bytes",
        long = "kafka-fetch-min-bytes",
        env = "KAFKA_FETCH_MIN_BYTES",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=100_000_000)
    )]
    pub fetch_min_bytes: u32,
    /// The consumer group protocol: `classic` (client-side assignment, stop-the-world rebalances) or `consumer` (KIP-848: the broker assigns, incrementally; session and heartbeat then come from the broker's group.consumer.* settings)
    #[arg(
        id = "kafka_group_protocol",
        long = "kafka-group-protocol",
        env = "KAFKA_GROUP_PROTOCOL",
        default_value = "classic",
        value_parser = ["classic", "consumer"]
    )]
    pub group_protocol: String,
    /// How long the group waits for a silent (crashed) member before reassigning its partitions (librdkafka's default is 45 s; only for the classic protocol)
    #[arg(
        id = "kafka_session_timeout",
        long = "kafka-session-timeout-ms",
        env = "KAFKA_SESSION_TIMEOUT_MS",
        default_value = "10000",
        value_parser = platform::config::millis
    )]
    pub session_timeout: Duration,
    /// Dedup records, and cancellation notes whose order has its effect, older than this are purged (keep it longer than any redelivery)
    #[arg(
        id = "processed_retention",
        long = "processed-retention-hours",
        env = "PROCESSED_RETENTION_HOURS",
        default_value = "168",
        value_parser = platform::config::hours_within(1, platform::config::MAX_RETENTION_HOURS)
    )]
    pub processed_retention: Duration,
    /// `retention.ms` of this consumer's retry topic (`<topic>.retry.<group>`, where `orderflow-admin dlq replay` writes) when the service creates it, in hours
    #[arg(
        id = "retry_topic_retention",
        long = "retry-topic-retention-hours",
        env = "RETRY_TOPIC_RETENTION_HOURS",
        default_value = "168",
        value_parser = crate::kafka::retention_hours
    )]
    pub retry_retention: Duration,
    /// `retention.ms` of this consumer's dead-letter topic (`<topic>.dlq.<group>`) when the service creates it, in hours: how long an operator has to look at a refused record and replay it
    #[arg(
        id = "dead_letter_topic_retention",
        long = "dead-letter-topic-retention-hours",
        env = "DEAD_LETTER_TOPIC_RETENTION_HOURS",
        default_value = "720",
        value_parser = crate::kafka::retention_hours
    )]
    pub dead_letter_retention: Duration,
    /// How often the purge runs.
    #[arg(
        id = "processed_purge_interval",
        long = "processed-purge-interval-secs",
        env = "PROCESSED_PURGE_INTERVAL_SECS",
        default_value = "3600",
        value_parser = platform::config::secs_within(1, platform::config::MAX_PURGE_INTERVAL_SECS)
    )]
    pub purge_interval: Duration,
    /// Most records applied in one database transaction: a batch takes what has already arrived, up to this, and never waits to fill
    #[arg(
        id = "inbox_batch_max",
        long = "inbox-batch-max",
        env = "INBOX_BATCH_MAX",
        default_value_t = 500,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub batch_max: u32,
    /// Cap of the retry delay while the database fails or refuses the effects.
    #[arg(
        id = "consumer_max_backoff",
        long = "consumer-max-backoff-ms",
        env = "CONSUMER_MAX_BACKOFF_MS",
        default_value = "5000",
        value_parser = platform::config::millis
    )]
    pub max_backoff: Duration,
    /// Fault injection: abort after the Nth batch commit, before its offsets are stored.
    #[cfg(feature = "fault-injection")]
    #[arg(
        id = "fault_abort_after_commit",
        long = "fault-abort-after-commit",
        env = "FAULT_ABORT_AFTER_COMMIT",
        hide = true
    )]
    pub abort_after_commit: Option<u64>,
    /// A crash point set by an in-process test.
    #[cfg(feature = "fault-injection")]
    #[arg(skip)]
    pub fault: Option<Fault>,
    /// Fault injection: apply every record, redeliveries included, as if the dedup table were empty.
    ///
    /// What the inbox guards against, switched on so that a test, or a chaos
    /// run (`--env FAULT_DEDUP_OFF=true`), can show that the audit of the
    /// running figures sees it. Compiled only into `fault-injection` builds;
    /// any other build does not know the variable and always deduplicates.
    #[cfg(feature = "fault-injection")]
    #[arg(
        id = "fault_dedup_off",
        long = "fault-dedup-off",
        env = "FAULT_DEDUP_OFF",
        hide = true
    )]
    pub dedup_off: bool,
}

impl InboxSettings {
    /// The defaults, in consumer group `group_id` (for tests and tools).
    pub fn new(group_id: &str) -> Self {
        InboxSettings {
            group_id: group_id.to_owned(),
            auto_offset_reset: "earliest".to_owned(),
            auto_commit_interval: Duration::from_millis(1_000),
            fetch_wait_max: Duration::from_millis(100),
            fetch_min_bytes: 1,
            group_protocol: "classic".to_owned(),
            session_timeout: Duration::from_millis(10_000),
            processed_retention: Duration::from_secs(7 * 24 * 3600),
            retry_retention: Duration::from_secs(topics::RETRY_RETENTION_HOURS * 3600),
            dead_letter_retention: Duration::from_secs(topics::DEAD_LETTER_RETENTION_HOURS * 3600),
            purge_interval: Duration::from_secs(3600),
            batch_max: 500,
            max_backoff: Duration::from_secs(5),
            #[cfg(feature = "fault-injection")]
            abort_after_commit: None,
            #[cfg(feature = "fault-injection")]
            fault: None,
            #[cfg(feature = "fault-injection")]
            dedup_off: false,
        }
    }

    /// Whether a redelivered event is skipped: always, unless the dedup of a
    /// `fault-injection` build was switched off (`FAULT_DEDUP_OFF`).
    pub(super) fn deduplicates(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        let off = self.dedup_off;
        #[cfg(not(feature = "fault-injection"))]
        let off = false;
        !off
    }

    /// The crash point, if one is set.
    #[cfg(feature = "fault-injection")]
    pub(super) fn crash_point(&self) -> Option<Fault> {
        self.fault.or(self
            .abort_after_commit
            .filter(|n| *n > 0)
            .map(Fault::AbortProcessAfterCommit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        inbox: InboxSettings,
        #[command(flatten)]
        kafka: crate::kafka::KafkaSettings,
    }

    /// Provisioning (cargo xtask, compose's kafka-init, the chart) creates
    /// the topics with shared-events' retentions; the services' own defaults
    /// must be the same.
    #[test]
    fn retention_defaults_are_the_provisioned_ones() {
        let cli = Cli::try_parse_from(["service", "--kafka-group-id", "g"])
            .unwrap_or_else(|e| panic!("{e}"));
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(
            cli.inbox.retry_retention,
            hours(topics::RETRY_RETENTION_HOURS)
        );
        assert_eq!(
            cli.inbox.dead_letter_retention,
            hours(topics::DEAD_LETTER_RETENTION_HOURS)
        );
        assert_eq!(cli.kafka.retention, hours(topics::ORDERS_RETENTION_HOURS));
        let defaults = InboxSettings::new("g");
        assert_eq!(defaults.retry_retention, cli.inbox.retry_retention);
        assert_eq!(
            defaults.dead_letter_retention,
            cli.inbox.dead_letter_retention
        );
    }
}
