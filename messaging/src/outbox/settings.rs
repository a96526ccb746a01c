//! The relay's settings: how it batches, polls, wakes and backs off
//! (`RELAY_*`, declared once with clap so `--help` lists them).

use std::time::Duration;

use super::leadership::RELAY_LOCK_KEY;

/// How the relay batches, polls and backs off.
#[derive(Debug, Clone, clap::Args)]
pub struct RelaySettings {
    /// false holds the relay off: the outbox just fills up.
    #[arg(
        id = "relay_enabled",
        long = "relay-enabled",
        env = "RELAY_ENABLED",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,
    /// Outbox rows claimed per relay batch.
    #[arg(
        id = "relay_batch_size",
        long = "relay-batch-size",
        env = "RELAY_BATCH_SIZE",
        default_value_t = 2_000,
        value_parser = clap::value_parser!(i64).range(1..=10_000)
    )]
    pub batch_size: i64,
    /// How often the relay looks for rows when nothing woke it (at most 1000).
    #[arg(
        id = "relay_poll_interval",
        long = "relay-poll-interval-ms",
        env = "RELAY_POLL_INTERVAL_MS",
        default_value = "500",
        value_parser = poll_interval
    )]
    pub poll_interval: Duration,
    /// A commit wakes the relay at once (in-process; other instances by one coalesced NOTIFY per 5 ms, never inside an order's transaction); false: the relay only polls
    #[arg(
        id = "relay_notify",
        long = "relay-notify",
        env = "RELAY_NOTIFY",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub notify: bool,
    /// After a wake-up, how long the relay waits for more commits before it claims rows: fewer, larger batches (less CPU per order) for that much latency; 0 claims at once
    #[arg(
        id = "relay_linger",
        long = "relay-linger-ms",
        env = "RELAY_LINGER_MS",
        default_value = "0",
        value_parser = linger
    )]
    pub linger: Duration,
    /// Cap of the retry delay while Kafka or the database fails.
    #[arg(
        id = "relay_max_backoff",
        long = "relay-max-backoff-ms",
        env = "RELAY_MAX_BACKOFF_MS",
        default_value = "5000",
        value_parser = platform::config::millis
    )]
    pub max_backoff: Duration,
    /// Advisory lock key that elects the single active relay of one database.
    #[arg(skip = RELAY_LOCK_KEY)]
    pub lock_key: i64,
    /// Fault injection: makes the producer raise a fatal error before the
    /// next batch (in-process tests).
    #[cfg(feature = "fault-injection")]
    #[arg(skip)]
    pub fatal_error: Option<FatalErrorSwitch>,
}

/// A switch an in-process test flips to make the relay's producer raise a
/// fatal error (as a fenced idempotent producer does) before its next batch.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default)]
pub struct FatalErrorSwitch(std::sync::Arc<std::sync::atomic::AtomicBool>);

#[cfg(feature = "fault-injection")]
impl FatalErrorSwitch {
    /// The next batch starts with a fatal producer error.
    pub fn flip(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

fn poll_interval(value: &str) -> Result<Duration, String> {
    let interval = platform::config::millis(value)?;
    if interval.is_zero() || interval > Duration::from_secs(1) {
        return Err(format!("{value} ms is not between 1 and 1000"));
    }
    Ok(interval)
}

fn linger(value: &str) -> Result<Duration, String> {
    let linger = platform::config::millis(value)?;
    if linger > Duration::from_millis(100) {
        return Err(format!("{value} ms is more than 100"));
    }
    Ok(linger)
}

impl Default for RelaySettings {
    fn default() -> Self {
        RelaySettings {
            enabled: true,
            batch_size: 2_000,
            poll_interval: Duration::from_millis(500),
            notify: true,
            linger: Duration::ZERO,
            max_backoff: Duration::from_secs(5),
            lock_key: RELAY_LOCK_KEY,
            #[cfg(feature = "fault-injection")]
            fatal_error: None,
        }
    }
}
