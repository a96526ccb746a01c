//! Rebuilding a consuming service's view from the topic's history.
//!
//! The procedure is the one documented at the top of `messaging/src/service.rs`:
//! an empty database owned by the service's role, a second instance of the
//! service on it in a NEW consumer group that starts from the earliest offset,
//! and patience until it has caught up. This module holds the pieces
//! (`cargo xtask rebuild` runs them in order): the [`RebuildPlan`] (names and
//! URL), [`wait_caught_up`] and [`compare_views`].
//!
//! "Caught up" needs more than `inbox_consumer_lag` = 0: the gauge is sampled
//! every 5 s and reads 0 before the first sample, and before any partition is
//! assigned. So the wait also requires that the instance has handled at least
//! as many records as the topic held when the rebuild began (the sum of its
//! partitions' high minus low watermarks), and that its row count has not
//! changed for longer than one sampling interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use orderflow_client::ApiClient;

use crate::postgres::{create_owned_database, with_database};
use crate::stack::{Launch, Service, Stack, StackError};
use crate::{InfraError, Settings};
use platform::error::chain as error_chain;

/// The consumer lag gauge on a consuming service's `/metrics`.
pub const LAG_METRIC: &str = "inbox_consumer_lag";

/// The counters that, together, count every record a consumer has handled.
pub const HANDLED_METRICS: [&str; 4] = [
    "inbox_records_processed_total",
    "inbox_duplicates_skipped_total",
    "inbox_dead_lettered_total",
    "inbox_unknown_skipped_total",
];

/// How often the inbox samples its lag (`statistics.interval.ms`): a row count
/// unchanged for longer than this has seen a lag sample taken after its last change.
const LAG_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// How often the rebuild's progress is looked at.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The fields that are the rebuild's own, not part of the view: surrogate ids and commit times.
const OWN_FIELDS: [&str; 3] = ["id", "issued_at", "created_at"];

/// The names and URL of one rebuild of a consuming service's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildPlan {
    /// The consuming service rebuilt.
    pub service: Service,
    /// The new database, `<database>_rebuild_<timestamp>`.
    pub database: String,
    /// The new consumer group, `<group>-rebuild-<timestamp>`.
    pub group: String,
    /// The rebuild instance's name, `<binary>-rebuild-<timestamp>`.
    pub instance: String,
    /// The service role's URL of the new database.
    pub database_url: String,
}

impl RebuildPlan {
    /// The plan for rebuilding `service` at time `at`, from the stack's settings.
    pub fn new(stack: &Stack, service: Service, at: DateTime<Utc>) -> Result<Self, StackError> {
        let Some(group) = service.consumer_group else {
            return Err(StackError::config(format!(
                "{service} keeps the orders themselves, not a view of the topic; only \
                 invoicing and shipping can be rebuilt"
            )));
        };
        let stamp = at.format("%Y%m%d%H%M%S");
        let database = format!("{}_rebuild_{stamp}", service.database);
        Ok(RebuildPlan {
            service,
            database_url: with_database(&stack.database_url(service)?, &database),
            database,
            group: format!("{group}-rebuild-{stamp}"),
            instance: format!("{}-rebuild-{stamp}", service.name),
        })
    }

    /// Creates the empty database, owned by the service's role, closed to PUBLIC.
    pub async fn create_database(&self, settings: &Settings) -> Result<(), StackError> {
        create_owned_database(
            &settings.postgres_admin_url,
            &self.database,
            self.service.database,
        )
        .await?;
        Ok(())
    }

    /// The rebuild instance: the new database, the new group from the
    /// earliest offset, a free port. It runs as the administrative
    /// principal: the service's own ACLs name its group and dead-letter
    /// topic, not the rebuild's (a deployment provisions a principal for a
    /// rebuild instead).
    pub fn launch(&self) -> Launch {
        let mut env = vec![
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            ("KAFKA_GROUP_ID".to_owned(), self.group.clone()),
            ("KAFKA_AUTO_OFFSET_RESET".to_owned(), "earliest".to_owned()),
        ];
        env.extend(crate::kafka::access::admin_env());
        Launch {
            service: self.service,
            name: self.instance.clone(),
            port: None,
            env,
        }
    }
}

/// How many records `topic` holds now: the sum over its partitions of high minus low watermark.
pub async fn topic_records(bootstrap_servers: &str, topic: &str) -> Result<i64, StackError> {
    let bootstrap = bootstrap_servers.to_owned();
    let topic = topic.to_owned();
    let count = tokio::task::spawn_blocking(move || -> Result<i64, InfraError> {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer =
            crate::kafka::access::admin_client_config(&bootstrap).create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            .ok_or_else(|| InfraError::Config(format!("topic {topic} does not exist")))?;
        let mut records = 0;
        for partition in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
            records += (high - low).max(0);
        }
        Ok(records)
    })
    .await
    .map_err(InfraError::from)??;
    Ok(count)
}

/// What the last look at a rebuild showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The rebuild's `inbox_consumer_lag`.
    pub lag: i64,
    /// Records the rebuild has handled (applied, duplicate, dead-lettered, skipped).
    pub handled: u64,
    /// Rows in the rebuilt view.
    pub rows: usize,
    /// The live instance's `inbox_consumer_lag`.
    pub live_lag: i64,
}

/// Waits until the rebuild at `rebuild_url` has caught up: its lag and the live
/// instance's are 0, it has handled at least `records` records, and its row
/// count has stood still for longer than one lag sample. Progress goes to stderr.
pub async fn wait_caught_up(
    client: &ApiClient,
    service: Service,
    rebuild_url: &str,
    live_url: &str,
    records: i64,
    timeout: Duration,
) -> Result<CatchUp, StackError> {
    let records = u64::try_from(records).unwrap_or(0);
    let list_url = format!("{rebuild_url}{}", service.collection);
    let started = Instant::now();
    let mut rows_seen: Option<(usize, Instant)> = None;
    let mut last_report = started;
    loop {
        let now = Instant::now();
        let state = match look(client, rebuild_url, live_url, &list_url).await {
            Ok(catch_up) => {
                let stable_for = match rows_seen {
                    Some((rows, since)) if rows == catch_up.rows => now - since,
                    _ => {
                        rows_seen = Some((catch_up.rows, now));
                        Duration::ZERO
                    }
                };
                if catch_up.lag == 0
                    && catch_up.live_lag == 0
                    && catch_up.handled >= records
                    && stable_for > LAG_SAMPLE_INTERVAL
                {
                    return Ok(catch_up);
                }
                format!(
                    "lag {}, {}/{records} records handled, {} rows (unchanged for {}s), \
                     live lag {}",
                    catch_up.lag,
                    catch_up.handled,
                    catch_up.rows,
                    stable_for.as_secs(),
                    catch_up.live_lag
                )
            }
            Err(e) => error_chain(&e),
        };
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(InfraError::NotReady {
                what: format!("the rebuild of {service}"),
                waited,
                last_error: state,
                log: None,
            }
            .into());
        }
        if now - last_report >= LAG_SAMPLE_INTERVAL {
            eprintln!("xtask: rebuild: {state}");
            last_report = now;
        }
        tokio::time::sleep(POLL_INTERVAL.min(timeout - waited)).await;
    }
}

async fn look(
    client: &ApiClient,
    rebuild_url: &str,
    live_url: &str,
    list_url: &str,
) -> Result<CatchUp, StackError> {
    let mut handled = 0.0;
    for metric in HANDLED_METRICS {
        handled += client.metric(rebuild_url, metric).await?;
    }
    let lag = client.metric(rebuild_url, LAG_METRIC).await?;
    let live_lag = client.metric(live_url, LAG_METRIC).await?;
    let rows = client.list_all::<Value>(list_url).await?.len();
    // Metric samples are integral counts; the casts only drop a ".0".
    Ok(CatchUp {
        lag: lag as i64,
        handled: handled as u64,
        rows,
        live_lag: live_lag as i64,
    })
}

/// How a rebuilt view compares with the live one, per order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewComparison {
    /// Rows in the live view.
    pub live: usize,
    /// Rows in the rebuilt view.
    pub rebuilt: usize,
    /// Orders the live view has and the rebuild lacks.
    pub missing: Vec<String>,
    /// Orders only the rebuild has.
    pub extra: Vec<String>,
    /// Orders both have, with different content.
    pub differing: Vec<String>,
}

impl ViewComparison {
    /// Whether both views hold the same rows (ids and commit times aside).
    pub fn identical(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.differing.is_empty()
    }
}

/// Reads the whole list of `service` from both instances and compares them.
pub async fn compare_views(
    client: &ApiClient,
    service: Service,
    live_url: &str,
    rebuild_url: &str,
) -> Result<ViewComparison, StackError> {
    let live = client
        .list_all::<Value>(&format!("{live_url}{}", service.collection))
        .await?;
    let rebuilt = client
        .list_all::<Value>(&format!("{rebuild_url}{}", service.collection))
        .await?;
    Ok(compare(live, rebuilt))
}

/// Compares two lists of rows keyed by `order_id`, ignoring `id`, `issued_at` and `created_at`.
pub fn compare(live: Vec<Value>, rebuilt: Vec<Value>) -> ViewComparison {
    let (live_count, rebuilt_count) = (live.len(), rebuilt.len());
    let live = by_order(live);
    let rebuilt = by_order(rebuilt);
    let missing = live
        .keys()
        .filter(|k| !rebuilt.contains_key(*k))
        .cloned()
        .collect();
    let extra = rebuilt
        .keys()
        .filter(|k| !live.contains_key(*k))
        .cloned()
        .collect();
    let differing = live
        .iter()
        .filter(|(k, rows)| rebuilt.get(*k).is_some_and(|other| other != *rows))
        .map(|(k, _)| k.clone())
        .collect();
    ViewComparison {
        live: live_count,
        rebuilt: rebuilt_count,
        missing,
        extra,
        differing,
    }
}

/// Rows grouped by order id, without their own fields, in a stable order.
fn by_order(rows: Vec<Value>) -> BTreeMap<String, Vec<String>> {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mut row in rows {
        let key = row
            .get("order_id")
            .and_then(Value::as_str)
            .unwrap_or("(no order_id)")
            .to_owned();
        if let Some(fields) = row.as_object_mut() {
            for field in OWN_FIELDS {
                fields.remove(field);
            }
        }
        grouped.entry(key).or_default().push(row.to_string());
    }
    for rows in grouped.values_mut() {
        rows.sort();
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::services::{INVOICING_SERVICE, ORDER_SERVICE};
    use serde_json::json;

    #[test]
    fn views_compare_without_ids_and_commit_times() {
        let live = vec![
            json!({"id": "a", "order_id": "o1", "status": "open", "issued_at": "t1"}),
            json!({"id": "b", "order_id": "o2", "status": "cancelled", "issued_at": "t2"}),
        ];
        let rebuilt = vec![
            json!({"id": "y", "order_id": "o2", "status": "cancelled", "issued_at": "t4"}),
            json!({"id": "x", "order_id": "o1", "status": "open", "issued_at": "t3"}),
        ];
        let same = compare(live.clone(), rebuilt);
        assert!(same.identical(), "{same:?}");
        assert_eq!((same.live, same.rebuilt), (2, 2));

        let rebuilt = vec![
            json!({"id": "x", "order_id": "o1", "status": "cancelled", "issued_at": "t3"}),
            json!({"id": "z", "order_id": "o3", "status": "open", "issued_at": "t5"}),
        ];
        let diff = compare(live, rebuilt);
        assert!(!diff.identical());
        assert_eq!(diff.missing, vec!["o2"]);
        assert_eq!(diff.extra, vec!["o3"]);
        assert_eq!(diff.differing, vec!["o1"]);
    }

    #[test]
    fn a_plan_names_database_group_and_instance_after_the_time() {
        let infra = crate::DevInfra::new("/nonexistent/infra", 19092, 15432);
        let stack = Stack::new(&infra, &infra.settings(1).expect("settings")).expect("stack");
        let at = DateTime::parse_from_rfc3339("2026-11-21T17:25:01Z")
            .expect("time")
            .with_timezone(&Utc);
        let plan = RebuildPlan::new(&stack, INVOICING_SERVICE, at).expect("plan");
        assert_eq!(plan.database, "invoicing_rebuild_20261121172501");
        assert_eq!(plan.group, "invoicing-rebuild-20261121172501");
        assert_eq!(plan.instance, "invoicing-service-rebuild-20261121172501");
        assert_eq!(
            plan.database_url,
            "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing_rebuild_20261121172501"
        );
        assert_eq!(
            crate::stack::service_of_instance(&plan.instance),
            Some(INVOICING_SERVICE)
        );
        assert!(RebuildPlan::new(&stack, ORDER_SERVICE, at).is_err());
    }
}
