//! The consumer of scenarios 4 and 5: it applies each record's effect in
//! PostgreSQL, commits its offsets when its setup says, and can crash at a
//! planned point.
//!
//! A crash is the consumer stopping in the middle of a batch and being
//! dropped without committing anything more (`enable.auto.commit` is off),
//! which is what a killed process leaves behind: the effects it committed
//! to PostgreSQL stay, the offsets it did not commit to Kafka are not there.
//! (A dropped client leaves its group at once; a killed process would be
//! noticed only after `session.timeout.ms`, which changes when the next
//! member starts, not where.) The next incarnation, in the same group,
//! starts from the group's committed offset.
//!
//! With dedup, the effect is our inbox's rule in its smallest form: the
//! event id goes into the inbox's own `processed_events` table (created by
//! `messaging::inbox::MIGRATOR`) with `ON CONFLICT DO NOTHING` in the same
//! transaction as the effect, and a conflict means "applied before: skip".

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Step;
use crate::kafka::{self, Next, Record, TopicPlan};
use crate::progress::{self, Ticker};
use crate::{Lab, LabError};

/// The effects table: one row per application, no constraint, so repeats count.
const EFFECTS_TABLE: &str = "CREATE TABLE effects (setup TEXT NOT NULL, event_id UUID NOT NULL)";

/// When the offset is committed relative to the effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Commit a batch's offsets, then apply its effects.
    BeforeProcessing,
    /// Apply a batch's effects, then commit its offsets.
    AfterProcessing,
    /// Apply each effect once (dedup by event id), then commit the offsets.
    AfterProcessingWithDedup,
}

/// One consumer setup.
pub(crate) struct Setup<'a> {
    /// Kafka.
    pub bootstrap: &'a str,
    /// The topic it reads (already written).
    pub topic: &'a str,
    /// Its consumer group.
    pub group: &'a str,
    /// Where the effects go.
    pub pool: &'a PgPool,
    /// The effects' `setup` column (and the dedup table's consumer).
    pub label: &'a str,
    /// When it commits.
    pub commit: Commit,
    /// Records per batch (per offset commit).
    pub batch: usize,
}

/// Where an incarnation crashes: in its `batch`-th batch (1-based), after
/// applying `after` of its records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crash {
    /// The batch, counted from 1 in this incarnation.
    pub batch: usize,
    /// Records of that batch applied before the crash.
    pub after: usize,
}

/// What one incarnation did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Incarnation {
    /// Records it took from Kafka and handled (applied or skipped as duplicates).
    pub handled: u64,
    /// Records the dedup skipped.
    pub skipped: u64,
    /// Offset commits it made (each one acknowledged by the coordinator).
    pub commits: u64,
    /// Time from its first record to its last one handled.
    pub busy: Duration,
    /// It crashed (rather than reaching the end of the topic).
    pub crashed: bool,
}

/// Runs one incarnation of `setup` until it crashes as planned or has read
/// its topic (one partition) to the end.
pub(crate) async fn incarnation(
    setup: &Setup<'_>,
    crash: Option<Crash>,
) -> Result<Incarnation, LabError> {
    let consumer = Arc::new(kafka::consumer(setup.bootstrap, setup.group, &[])?);
    consumer
        .subscribe(&[setup.topic])
        .step(format!("subscribing {}", setup.group))?;
    let mut done = Incarnation::default();
    let mut ended = BTreeSet::new();
    let mut first_record: Option<Instant> = None;
    let mut batches = 0;
    let what = format!("{} reading {}", setup.label, setup.topic);
    let mut ticker = Ticker::new(&what);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        progress::check_deadline(&what, &ticker, deadline, || {
            format!("{} handled", done.handled)
        })?;
        let batch = collect(&consumer, setup.batch, &mut ended, &what).await?;
        if batch.is_empty() {
            if !ended.is_empty() {
                break;
            }
            ticker.tick(|| format!("{} handled, waiting for records", done.handled));
            continue;
        }
        first_record.get_or_insert_with(Instant::now);
        batches += 1;
        let crash_after = crash.filter(|c| c.batch == batches).map(|c| c.after);
        let offsets = next_offsets(&batch);
        if setup.commit == Commit::BeforeProcessing {
            kafka::commit(&consumer, &offsets, setup.topic).await?;
            done.commits += 1;
        }
        for (i, record) in batch.iter().enumerate() {
            if crash_after == Some(i) {
                // The crash: stop here and drop the consumer without a commit.
                done.busy = first_record.map(|t| t.elapsed()).unwrap_or_default();
                done.crashed = true;
                return Ok(done);
            }
            if !apply(setup, record).await? {
                done.skipped += 1;
            }
            done.handled += 1;
        }
        if setup.commit != Commit::BeforeProcessing {
            kafka::commit(&consumer, &offsets, setup.topic).await?;
            done.commits += 1;
        }
        done.busy = first_record.map(|t| t.elapsed()).unwrap_or_default();
        ticker.tick(|| format!("{} handled", done.handled));
    }
    Ok(done)
}

/// The next `size` records, fewer only at the end of the topic (a partition's
/// end, or nothing more within a second).
async fn collect(
    consumer: &StreamConsumer,
    size: usize,
    ended: &mut BTreeSet<i32>,
    step: &str,
) -> Result<Vec<Record>, LabError> {
    let mut batch = Vec::with_capacity(size.min(1024));
    while batch.len() < size {
        match kafka::next(consumer, Duration::from_millis(1000), step).await? {
            Next::Record(record) => {
                ended.remove(&record.partition);
                batch.push(record);
            }
            Next::Eof(partition) => {
                ended.insert(partition);
                if !batch.is_empty() {
                    break;
                }
            }
            Next::Idle => break,
        }
    }
    Ok(batch)
}

/// The offset to commit per partition: one past the batch's last record there.
fn next_offsets(batch: &[Record]) -> BTreeMap<i32, i64> {
    let mut offsets = BTreeMap::new();
    for record in batch {
        let next = offsets.entry(record.partition).or_insert(0);
        *next = (*next).max(record.offset + 1);
    }
    offsets
}

/// Applies the record's effect; false when the dedup found it applied before.
async fn apply(setup: &Setup<'_>, record: &Record) -> Result<bool, LabError> {
    let event_id = record
        .value
        .as_deref()
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_default();
    let step = || format!("applying event {event_id} ({})", setup.label);
    if setup.commit != Commit::AfterProcessingWithDedup {
        sqlx::query("INSERT INTO effects (setup, event_id) VALUES ($1, $2)")
            .bind(setup.label)
            .bind(event_id)
            .execute(setup.pool)
            .await
            .step(step())?;
        return Ok(true);
    }
    let mut tx = setup.pool.begin().await.step(step())?;
    let new: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(setup.label)
    .bind(event_id)
    .fetch_optional(&mut *tx)
    .await
    .step(step())?;
    if new.is_some() {
        sqlx::query("INSERT INTO effects (setup, event_id) VALUES ($1, $2)")
            .bind(setup.label)
            .bind(event_id)
            .execute(&mut *tx)
            .await
            .step(step())?;
    }
    tx.commit().await.step(step())?;
    Ok(new.is_some())
}

/// (effects applied, distinct events applied) for `label`.
pub(crate) async fn effects(pool: &PgPool, label: &str) -> Result<(i64, i64), LabError> {
    sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM effects WHERE setup = $1")
        .bind(label)
        .fetch_one(pool)
        .await
        .step(format!("counting the effects of {label}"))
}

/// A scenario's stage: the database `database` (with `settings`) holding the
/// effects table and, with `inbox`, the inbox's own tables; and the
/// one-partition `topic` holding `records` records, each valued with a new
/// event id. Returns Kafka's address and the database.
pub(crate) async fn prepare(
    lab: &Lab,
    database: &str,
    settings: &[(&str, &str)],
    inbox: bool,
    topic: &str,
    records: usize,
) -> Result<(String, PgPool), LabError> {
    let bootstrap = lab.infra.single()?.bootstrap();
    let pool = lab.infra.database(database, settings).await?;
    if inbox {
        messaging::inbox::MIGRATOR
            .run(&pool)
            .await
            .step("creating the inbox's tables")?;
    }
    sqlx::raw_sql(EFFECTS_TABLE)
        .execute(&pool)
        .await
        .step("creating the effects table")?;
    kafka::create_topic(&bootstrap, &TopicPlan::new(topic, 1)).await?;
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    super::write_all(
        &producer,
        topic,
        (0..records).map(|i| (format!("order-{i}"), Uuid::new_v4().to_string())),
    )
    .await?;
    Ok((bootstrap, pool))
}
