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
    let what = format!("{} reading {}", setup.label, setup.topic);
    let mut log = KafkaLog {
        consumer,
        topic: setup.topic,
        ended: BTreeSet::new(),
        what: what.clone(),
    };
    consume(
        &mut log,
        &mut Postgres(setup),
        setup.commit,
        setup.batch,
        crash,
        &what,
    )
    .await
}

/// What an incarnation reads and commits its offsets to: the topic in a
/// run, a list of records in the tests.
pub(crate) trait Log {
    /// The next `size` records, fewer at the end of the log; `None` once
    /// the end has been reached and nothing more came.
    async fn next_batch(&mut self, size: usize) -> Result<Option<Vec<Record>>, LabError>;
    /// Commits `offsets` (per partition, the next one to read); returns
    /// once the group coordinator has acknowledged them.
    async fn commit(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<(), LabError>;
}

/// Where an incarnation applies each record's effect.
pub(crate) trait Effects {
    /// Applies the record's effect; false when the dedup found it applied before.
    async fn apply(&mut self, record: &Record) -> Result<bool, LabError>;
}

/// The loop of one incarnation: batches of `size` records from `log`, each
/// applied to `effects` and committed when `commit` says, until the log
/// ends or `crash` stops it. Every commit counted is one `log` acknowledged
/// (counted as it happens, never worked out from the records handled).
pub(crate) async fn consume(
    log: &mut impl Log,
    effects: &mut impl Effects,
    commit: Commit,
    size: usize,
    crash: Option<Crash>,
    what: &str,
) -> Result<Incarnation, LabError> {
    let mut done = Incarnation::default();
    let mut first_record: Option<Instant> = None;
    let mut batches = 0;
    let mut ticker = Ticker::new(what);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        progress::check_deadline(what, &ticker, deadline, || {
            format!("{} handled", done.handled)
        })?;
        let Some(batch) = log.next_batch(size).await? else {
            break;
        };
        if batch.is_empty() {
            ticker.tick(|| format!("{} handled, waiting for records", done.handled));
            continue;
        }
        first_record.get_or_insert_with(Instant::now);
        batches += 1;
        let crash_after = crash.filter(|c| c.batch == batches).map(|c| c.after);
        let offsets = next_offsets(&batch);
        if commit == Commit::BeforeProcessing {
            log.commit(&offsets).await?;
            done.commits += 1;
        }
        for (i, record) in batch.iter().enumerate() {
            if crash_after == Some(i) {
                // The crash: stop here and drop the consumer without a commit.
                done.busy = first_record.map(|t| t.elapsed()).unwrap_or_default();
                done.crashed = true;
                return Ok(done);
            }
            if !effects.apply(record).await? {
                done.skipped += 1;
            }
            done.handled += 1;
        }
        if commit != Commit::BeforeProcessing {
            log.commit(&offsets).await?;
            done.commits += 1;
        }
        done.busy = first_record.map(|t| t.elapsed()).unwrap_or_default();
        ticker.tick(|| format!("{} handled", done.handled));
    }
    Ok(done)
}

/// The topic, read and committed by one consumer of the group.
struct KafkaLog<'a> {
    consumer: Arc<StreamConsumer>,
    topic: &'a str,
    /// Partitions whose end the consumer has reached.
    ended: BTreeSet<i32>,
    what: String,
}

impl Log for KafkaLog<'_> {
    async fn next_batch(&mut self, size: usize) -> Result<Option<Vec<Record>>, LabError> {
        let batch = collect(&self.consumer, size, &mut self.ended, &self.what).await?;
        Ok(if batch.is_empty() && !self.ended.is_empty() {
            None
        } else {
            Some(batch)
        })
    }

    async fn commit(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<(), LabError> {
        kafka::commit(&self.consumer, offsets, self.topic).await
    }
}

/// The effects table in PostgreSQL, with the setup's dedup rule.
struct Postgres<'a, 'b>(&'a Setup<'b>);

impl Effects for Postgres<'_, '_> {
    async fn apply(&mut self, record: &Record) -> Result<bool, LabError> {
        apply(self.0, record).await
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One partition of `len` records, and what the group coordinator keeps
    /// of it between incarnations: the committed offset, and how many
    /// commits it acknowledged.
    struct Partition {
        len: i64,
        committed: i64,
        acknowledged_commits: u64,
    }

    /// An incarnation's consumer: it reads from the committed offset on.
    struct Reader<'a> {
        partition: &'a mut Partition,
        next: i64,
    }

    impl Log for Reader<'_> {
        async fn next_batch(&mut self, size: usize) -> Result<Option<Vec<Record>>, LabError> {
            if self.next >= self.partition.len {
                return Ok(None);
            }
            let end = (self.next + size as i64).min(self.partition.len);
            let batch = (self.next..end)
                .map(|offset| Record {
                    partition: 0,
                    offset,
                    key: None,
                    value: Some(offset.to_string()),
                })
                .collect();
            self.next = end;
            Ok(Some(batch))
        }

        async fn commit(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<(), LabError> {
            self.partition.committed = offsets[&0];
            self.partition.acknowledged_commits += 1;
            Ok(())
        }
    }

    /// How many times each offset's effect was applied.
    #[derive(Default)]
    struct Applied(BTreeMap<i64, u32>);

    impl Effects for Applied {
        async fn apply(&mut self, record: &Record) -> Result<bool, LabError> {
            *self.0.entry(record.offset).or_default() += 1;
            Ok(true)
        }
    }

    /// A crashing incarnation, then one that reads to the end, both in
    /// batches of `size`; what each did.
    async fn crash_and_restart(
        partition: &mut Partition,
        applied: &mut Applied,
        commit: Commit,
        size: usize,
        crash: Crash,
    ) -> (Incarnation, Incarnation) {
        let mut runs = Vec::new();
        for crash in [Some(crash), None] {
            let next = partition.committed;
            let mut reader = Reader {
                partition: &mut *partition,
                next,
            };
            runs.push(
                consume(&mut reader, &mut *applied, commit, size, crash, "test")
                    .await
                    .expect("an in-memory incarnation cannot fail"),
            );
        }
        (runs[0], runs[1])
    }

    #[tokio::test]
    async fn offset_commits_are_the_ones_the_coordinator_acknowledged_not_records_over_k() {
        // Batch-commits' worst case, small: 40 records, K = 10, a crash in
        // the second batch one record before its commit.
        let mut partition = Partition {
            len: 40,
            committed: 0,
            acknowledged_commits: 0,
        };
        let mut applied = Applied::default();
        let crash = Crash { batch: 2, after: 9 };
        let (first, second) = crash_and_restart(
            &mut partition,
            &mut applied,
            Commit::AfterProcessing,
            10,
            crash,
        )
        .await;
        assert!(first.crashed && !second.crashed);
        assert_eq!((first.commits, second.commits), (1, 3));
        assert_eq!(
            first.commits + second.commits,
            partition.acknowledged_commits
        );
        // 19 + 30 records handled: ceil(49 / 10) would say 5 commits, one
        // the coordinator never saw.
        let handled = first.handled + second.handled;
        assert_eq!(handled, 49);
        assert_ne!(handled.div_ceil(10), partition.acknowledged_commits);
        // The 9 records of the uncommitted batch were applied twice (K − 1).
        let twice = applied.0.values().filter(|&&n| n == 2).count();
        assert_eq!((applied.0.len(), twice), (40, 9));
    }

    #[tokio::test]
    async fn committing_before_processing_loses_the_rest_of_the_crashed_batch() {
        let mut partition = Partition {
            len: 40,
            committed: 0,
            acknowledged_commits: 0,
        };
        let mut applied = Applied::default();
        let crash = Crash { batch: 2, after: 9 };
        let (first, second) = crash_and_restart(
            &mut partition,
            &mut applied,
            Commit::BeforeProcessing,
            10,
            crash,
        )
        .await;
        // The crashed batch was committed before it was applied.
        assert_eq!((first.commits, second.commits), (2, 2));
        assert_eq!(partition.acknowledged_commits, 4);
        assert_eq!(partition.committed, 40);
        // Record 19 was never applied; none twice.
        assert_eq!(applied.0.len(), 39);
        assert!(!applied.0.contains_key(&19));
        assert!(applied.0.values().all(|&n| n == 1));
    }
}
