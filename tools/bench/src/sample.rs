//! What the bench watches while load runs: the two queues of the flow and the
//! services' memory.
//!
//! - **Outbox backlog**: rows in the order-service's `outbox` table (committed
//!   orders whose event the relay has not yet published), counted in SQL.
//! - **Consumer lag** of each group: the topic's end offsets minus the group's
//!   committed offsets, summed over partitions, asked of the broker the way
//!   `kafka-consumer-groups --describe` does. Offsets are committed every
//!   `KAFKA_AUTO_COMMIT_INTERVAL_MS` (1 s), so the lag reads up to about one
//!   second of records high even for a consumer that keeps up.
//! - **RSS** of each service: `VmRSS` of `/proc/<pid>/status`, through procfs.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rdkafka::consumer::BaseConsumer;
use sqlx::PgPool;
use tokio::sync::watch;

use super::BenchError;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use shared_events::topics::ORDERS as ORDERS_TOPIC;

/// How long one broker request of a probe may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a committed-offsets request is repeated while the coordinator moves.
const COORDINATOR_RETRIES: u32 = 30;

/// One observation of the queues and the services' memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// When it was taken.
    pub(crate) at: SystemTime,
    /// Outbox rows not yet published.
    pub(crate) outbox: i64,
    /// Records the invoicing group has not committed yet.
    pub(crate) invoicing_lag: i64,
    /// Records the shipping group has not committed yet.
    pub(crate) shipping_lag: i64,
    /// RSS of each service in KiB (0 if unreadable), in the registry's order.
    pub(crate) rss_kib: Vec<u64>,
}

/// Asks PostgreSQL and Kafka for the queue lengths.
pub(crate) struct Probe {
    orders: PgPool,
    groups: Arc<Vec<BaseConsumer>>,
    pids: Vec<u32>,
}

impl Probe {
    /// A probe of the outbox in `orders` and of both consumer groups on `bootstrap`,
    /// reading the memory of the processes `pids` (in the order of [`services::ALL`]).
    pub(crate) fn new(orders: PgPool, bootstrap: &str, pids: Vec<u32>) -> Result<Self, BenchError> {
        let groups = [INVOICING_SERVICE, SHIPPING_SERVICE]
            .into_iter()
            .filter_map(|s| s.consumer_group)
            .map(|group| {
                // A consumer that never subscribes does not join the group; it
                // only reads the group's committed offsets.
                devinfra::kafka::access::admin_client_config(bootstrap)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .create::<BaseConsumer>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Probe {
            orders,
            groups: Arc::new(groups),
            pids,
        })
    }

    /// One sample.
    pub(crate) async fn sample(&self) -> Result<Sample, BenchError> {
        let at = SystemTime::now();
        let outbox = outbox_backlog(&self.orders).await?;
        let groups = self.groups.clone();
        let lags = tokio::task::spawn_blocking(move || {
            groups
                .iter()
                .map(group_lag)
                .collect::<Result<Vec<i64>, BenchError>>()
        })
        .await
        .map_err(|e| BenchError::Run(format!("the lag probe failed: {e}")))??;
        Ok(Sample {
            at,
            outbox,
            invoicing_lag: lags.first().copied().unwrap_or(0),
            shipping_lag: lags.get(1).copied().unwrap_or(0),
            rss_kib: self.pids.iter().map(|&pid| rss_kib(pid)).collect(),
        })
    }

    /// Samples every `interval` until `stop` turns true; returns the samples.
    pub(crate) async fn sample_until(
        &self,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Vec<Sample>, BenchError> {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => samples.push(self.sample().await?),
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(samples);
                    }
                }
            }
        }
    }
}

/// Rows in the outbox.
pub(crate) async fn outbox_backlog(orders: &PgPool) -> Result<i64, BenchError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(orders)
        .await?)
}

/// The lag of `consumer`'s group on the orders topic, asked again for a
/// while when the coordinator is not ready to answer.
fn group_lag(consumer: &BaseConsumer) -> Result<i64, BenchError> {
    let mut attempts = 0;
    loop {
        match devinfra::kafka::group_lag(consumer, ORDERS_TOPIC, KAFKA_TIMEOUT) {
            Ok(lag) => return Ok(lag),
            Err(_) if attempts < COORDINATOR_RETRIES => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `VmRSS` of `pid` in KiB, 0 when it cannot be read (or there is no procfs).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    #[cfg(target_os = "linux")]
    {
        i32::try_from(pid)
            .ok()
            .and_then(|pid| procfs::process::Process::new(pid).ok())
            .and_then(|process| process.status().ok())
            .and_then(|status| status.vmrss)
            .unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_status_file() {
        assert!(rss_kib(std::process::id()) > 0, "our own RSS is readable");
        assert_eq!(rss_kib(u32::MAX), 0, "no such process");
    }
}
