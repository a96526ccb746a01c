//! Waiting by condition, with a line of progress while it takes long.
//!
//! Nothing in the lab waits a fixed time for something to happen: a
//! condition (the ISR shrank, the cleaner ran, a group is stable) is probed
//! until it holds or its deadline passes, and a wait longer than a few
//! seconds says on stderr what it waits for and what it saw last. The only
//! fixed pauses are the ones that *are* an experiment (a slow consumer's
//! processing time, records left to age), each named where it is taken.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::LabError;

/// How often a long wait reports.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// What one probe saw.
#[derive(Debug)]
pub(crate) enum Seen<T> {
    /// The condition holds.
    Ready(T),
    /// Not yet; what was seen instead.
    NotYet(String),
}

/// Probes every `interval` until `probe` sees the condition, or fails with
/// [`LabError::Timeout`] after `timeout`; reports progress on stderr.
pub(crate) async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T, LabError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Seen<T>, LabError>>,
{
    let mut ticker = Ticker::new(what);
    let deadline = Instant::now() + timeout;
    loop {
        let last_seen = match probe().await? {
            Seen::Ready(value) => return Ok(value),
            Seen::NotYet(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: what.to_owned(),
                waited_secs: ticker.elapsed().as_secs(),
                last_seen,
            });
        }
        ticker.tick(|| last_seen.clone());
        tokio::time::sleep(interval).await;
    }
}

/// Prints what a long loop is doing every few seconds.
#[derive(Debug)]
pub(crate) struct Ticker {
    what: String,
    started: Instant,
    last: Instant,
}

impl Ticker {
    /// A ticker for the loop doing `what`.
    pub(crate) fn new(what: &str) -> Self {
        let now = Instant::now();
        Ticker {
            what: what.to_owned(),
            started: now,
            last: now,
        }
    }

    /// Prints `status()` if the last line is older than a few seconds.
    pub(crate) fn tick(&mut self, status: impl FnOnce() -> String) {
        if self.last.elapsed() >= REPORT_EVERY {
            self.last = Instant::now();
            eprintln!(
                "lab:     {} ({} s): {}",
                self.what,
                self.started.elapsed().as_secs(),
                status()
            );
        }
    }

    /// Time since the loop started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Fails with [`LabError::Timeout`] once `deadline` has passed.
pub(crate) fn check_deadline(
    what: &str,
    ticker: &Ticker,
    deadline: Instant,
    last_seen: impl FnOnce() -> String,
) -> Result<(), LabError> {
    if Instant::now() >= deadline {
        return Err(LabError::Timeout {
            what: what.to_owned(),
            waited_secs: ticker.elapsed().as_secs(),
            last_seen: last_seen(),
        });
    }
    Ok(())
}
