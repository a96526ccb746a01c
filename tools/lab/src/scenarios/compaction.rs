//! 10. Log compaction keeps the last record per key.
//!
//! A compacted topic with tiny segments gets V versions of each customer's
//! record, keyed by customer id, then a tombstone (a record with no value)
//! for a few customers. The same data is also written keyed by a new event
//! id per record, to show what the key choice does. While the log cleaner
//! works, a background writer appends a record every 200 ms: the active
//! segment is never cleaned, so something has to keep rolling it. The topic
//! is read whole until the cleaner has run, then until the tombstones'
//! `delete.retention.ms` has passed and a later cleaning removed them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::FutureRecord;

use crate::error::{Refutes, Step};
use crate::kafka::{self, Record, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "compaction.customers";
const DELETE_RETENTION_MS: u64 = 3_000;
const FILLER: &str = "filler";

/// Per key: how many records, and the last value (`None` for a tombstone).
type Counts = BTreeMap<String, (usize, Option<String>)>;

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let customers = lab.pick(20, 50);
    let versions = lab.pick(10, 20);
    let tombstoned = lab.pick(3, 5);
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(
        &bootstrap,
        &TopicPlan::new(TOPIC, 1)
            .config("cleanup.policy", "compact")
            .config("segment.ms", 100)
            .config("min.cleanable.dirty.ratio", 0.01)
            .config("min.compaction.lag.ms", 0)
            .config("delete.retention.ms", DELETE_RETENTION_MS),
    )
    .await?;
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    let by_customer = (1..=versions).flat_map(|v| {
        (0..customers).map(move |c| (format!("customer-{c}"), format!("customer {c} version {v}")))
    });
    let by_event = (1..=versions).flat_map(|v| {
        (0..customers).map(move |c| {
            (
                format!("event-{}", uuid::Uuid::new_v4()),
                format!("customer {c} version {v}"),
            )
        })
    });
    super::write_all(&producer, TOPIC, by_customer.chain(by_event)).await?;
    for c in 0..tombstoned {
        let key = format!("customer-{c}");
        producer
            .send(
                FutureRecord::<str, str>::to(TOPIC).key(&key),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .step("writing a tombstone")?;
    }
    let written = customers * versions;

    // Keeps the active segment rolling (segment.ms=100) while the cleaner works.
    let filler = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(200));
            loop {
                ticks.tick().await;
                let _ = kafka::send(&producer, TOPIC, FILLER, "tick").await;
            }
        })
    };
    let cleaned = wait_for(
        &bootstrap,
        "the cleaner to keep one record per customer",
        |counts| {
            (0..customers).all(|c| {
                counts
                    .get(&format!("customer-{c}"))
                    .is_some_and(|(n, _)| *n == 1)
            })
        },
    )
    .await;
    let settled = match &cleaned {
        Ok(_) => {
            wait_for(
                &bootstrap,
                "a later cleaning to remove the tombstones",
                |counts| (0..tombstoned).all(|c| !counts.contains_key(&format!("customer-{c}"))),
            )
            .await
        }
        Err(_) => Ok(Counts::new()),
    };
    filler.abort();
    let claim = "compaction.last-per-key";
    let (cleaned, settled) = (cleaned.refutes(claim)?, settled.refutes(claim)?);

    let customer_records = |counts: &Counts| records_keyed(counts, "customer-");
    let event_records = |counts: &Counts| records_keyed(counts, "event-");
    let tombstones_after_cleaning = (0..tombstoned)
        .filter(|c| {
            cleaned
                .get(&format!("customer-{c}"))
                .is_some_and(|(n, value)| *n == 1 && value.is_none())
        })
        .count();
    let latest_kept = (tombstoned..customers).all(|c| {
        settled
            .get(&format!("customer-{c}"))
            .map(|(_, v)| v.as_deref())
            == Some(Some(format!("customer {c} version {versions}").as_str()))
    });
    let mut table = Table::new(&[
        "records keyed by",
        "keys",
        "records written",
        "after the cleaner ran",
        "after delete.retention.ms",
    ]);
    table.row(vec![
        "customer id".into(),
        customers.to_string(),
        format!("{written} + {tombstoned} tombstones"),
        format!(
            "{} ({} latest values, {tombstones_after_cleaning} tombstones)",
            customer_records(&cleaned),
            customer_records(&cleaned) - tombstones_after_cleaning
        ),
        customer_records(&settled).to_string(),
    ]);
    table.row(vec![
        "event id (unique)".into(),
        written.to_string(),
        written.to_string(),
        event_records(&cleaned).to_string(),
        event_records(&settled).to_string(),
    ]);
    let as_claimed = customer_records(&cleaned) == customers
        && tombstones_after_cleaning == tombstoned
        && customer_records(&settled) == customers - tombstoned
        && latest_kept
        && event_records(&cleaned) == written
        && event_records(&settled) == written;
    let verdict = if as_claimed {
        Verdict::HoldsWithNuance(format!(
            "eventually and per key: the {tombstoned} tombstones were still there after the cleaning that \
             kept one record per customer and gone only after a later one (delete.retention.ms={DELETE_RETENTION_MS}), \
             and with unique keys nothing is compacted ({written} of {written} kept)"
        ))
    } else {
        Verdict::DoesNotHold(format!(
            "customer records after cleaning {} (expected {customers}), after the tombstones' retention {} \
             (expected {}), latest versions kept: {latest_kept}, event-keyed records {} (expected {written})",
            customer_records(&cleaned),
            customer_records(&settled),
            customers - tombstoned,
            event_records(&settled)
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` (1 partition, cleanup.policy=compact, segment.ms=100, min.cleanable.dirty.ratio=0.01, \
             delete.retention.ms={DELETE_RETENTION_MS}); {customers} customers × {versions} versions keyed by \
             customer id, tombstones for {tombstoned} of them, and the same {written} records keyed by a new \
             event id each; the broker's cleaner looks for work every 500 ms here (Kafka: 15 s)."
        ),
        tables: vec![table],
        notes: vec![
            "The key decides what compaction keeps: keyed by customer, the topic is a table of customers; \
             keyed by event id, every record is its own key and nothing is ever removed. A topic of order \
             events keyed by order id keeps each order's last event only, which is a snapshot, not a history."
                .into(),
            "Background (not measured here; Kafka documentation, \"Log Compaction\"): the cleaner works on \
             closed segments only, never the active one, so until it has run every version of a key can be \
             read; that is why this topic rolls a segment every 100 ms."
                .into(),
        ],
        verdicts: vec![("compaction.last-per-key", verdict)],
        chart: None,
    })
}

/// Reads the topic whole until `done` holds for its per-key counts.
async fn wait_for(
    bootstrap: &str,
    what: &str,
    done: impl Fn(&Counts) -> bool,
) -> Result<Counts, LabError> {
    progress::until(
        what,
        Duration::from_secs(90),
        Duration::from_millis(300),
        || async {
            let counts = per_key(&kafka::read_all(bootstrap, TOPIC, false).await?);
            Ok(if done(&counts) {
                Seen::Ready(counts)
            } else {
                Seen::NotYet(format!(
                    "{} records of customers on the topic",
                    records_keyed(&counts, "customer-")
                ))
            })
        },
    )
    .await
}

/// Records whose key starts with `prefix`.
fn records_keyed(counts: &Counts, prefix: &str) -> usize {
    counts
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(_, (n, _))| n)
        .sum()
}

fn per_key(records: &[Record]) -> Counts {
    let mut counts = Counts::new();
    for record in records {
        let key = record.key.clone().unwrap_or_default();
        if key == FILLER {
            continue;
        }
        let entry = counts.entry(key).or_insert((0, None));
        entry.0 += 1;
        entry.1.clone_from(&record.value);
    }
    counts
}
