//! 7. Exactly-once inside Kafka: transactions.
//!
//! A consume-transform-produce step reads numbered inputs and writes one
//! output per input, in transactions of up to 50: `begin_transaction`, the
//! outputs, `send_offsets_to_transaction` (the inputs' offsets, committed
//! with the outputs or not at all), `commit_transaction`. It crashes in the
//! middle of a transaction: half of the batch's outputs are on the broker
//! (flushed), then the producer and the consumer are dropped without a
//! commit or an abort, as a killed process would leave them. The next
//! incarnation uses the same `transactional.id`; its `init_transactions`
//! fences the dead one and aborts its open transaction, and it resumes from
//! the inputs' committed offsets. A `read_committed` reader and a
//! `read_uncommitted` reader then count the outputs.
//!
//! Transactions came with Kafka 0.11 (KIP-98, "Exactly Once Delivery and
//! Transactional Messaging", 2017), not with 4.0.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::error::{Refutes, Step};
use crate::kafka::{self, Next, TopicPlan};
use crate::progress::{self, Ticker};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const INPUT: &str = "transactions.input";
const OUTPUT: &str = "transactions.output";
const PARTITIONS: i32 = 3;
const BATCH: usize = 50;
const GROUP: &str = "transactions-step";
const TRANSACTIONAL_ID: &str = "lab-transform-step";
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let inputs = lab.pick(300, 2_000);
    let crashes = lab.pick(1, 3);
    let bootstrap = lab.infra.single()?.bootstrap();
    for topic in [INPUT, OUTPUT] {
        kafka::create_topic(&bootstrap, &TopicPlan::new(topic, PARTITIONS)).await?;
    }
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    super::write_all(
        &producer,
        INPUT,
        (0..inputs).map(|i| (format!("order-{i}"), i.to_string())),
    )
    .await?;

    let mut aborted_by_crash = 0;
    for _ in 0..crashes {
        aborted_by_crash += step(&bootstrap, Some(2)).await?;
    }
    // The incarnation after the crashes must get through every input: one
    // that never does refutes the claim (the run goes on).
    step(&bootstrap, None)
        .await
        .refutes("transactions.exactly-once")?;

    let committed = kafka::read_all(&bootstrap, OUTPUT, true).await?;
    let uncommitted = kafka::read_all(&bootstrap, OUTPUT, false).await?;
    let count = |records: &[kafka::Record]| {
        let distinct: BTreeSet<&str> = records.iter().filter_map(|r| r.value.as_deref()).collect();
        let duplicates = records.len() - distinct.len();
        let gaps = (0..inputs)
            .filter(|i| !distinct.contains(format!("out-{i}").as_str()))
            .count();
        (records.len(), duplicates, gaps)
    };
    let (c_records, c_duplicates, c_gaps) = count(&committed);
    let (u_records, u_duplicates, u_gaps) = count(&uncommitted);
    let mut table = Table::new(&["reader", "inputs", "outputs read", "duplicates", "gaps"]);
    table.row(vec![
        "isolation.level=read_committed".into(),
        inputs.to_string(),
        c_records.to_string(),
        c_duplicates.to_string(),
        c_gaps.to_string(),
    ]);
    table.row(vec![
        "isolation.level=read_uncommitted".into(),
        inputs.to_string(),
        u_records.to_string(),
        u_duplicates.to_string(),
        u_gaps.to_string(),
    ]);
    let verdict = if c_records == inputs
        && c_duplicates == 0
        && c_gaps == 0
        && u_duplicates == aborted_by_crash
        && aborted_by_crash > 0
    {
        Verdict::HoldsWithNuance(format!(
            "for read_committed readers and inside Kafka only (the read_uncommitted reader saw the \
             {aborted_by_crash} records of the aborted transaction(s); a database effect still needs its own \
             dedup, scenario 4)"
        ))
    } else {
        Verdict::DoesNotHold(format!(
            "read_committed: {c_records} outputs, {c_duplicates} duplicates, {c_gaps} gaps; \
             read_uncommitted: {u_duplicates} duplicates for {aborted_by_crash} records written by crashed transactions"
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topics `{INPUT}` and `{OUTPUT}` ({PARTITIONS} partitions each); {inputs} inputs; the step \
             (group `{GROUP}`, transactional.id `{TRANSACTIONAL_ID}`) writes `out-<n>` for input n in \
             transactions of up to {BATCH}, with the inputs' offsets sent to each transaction; it crashes \
             {crashes} time(s) in its 2nd transaction after writing half of it, and a new incarnation finishes."
        ),
        tables: vec![table],
        notes: vec![
            "The transaction's records are on the broker from the moment they are written; what \
             read_committed readers wait for is the commit marker, and the aborted ones are skipped."
                .into(),
            "Source: KIP-98, Exactly Once Delivery and Transactional Messaging, released in Apache Kafka 0.11.0 \
             (June 2017); KIP-447 (Kafka 2.5) made it scale to many input partitions per producer."
                .into(),
        ],
        verdicts: vec![("transactions.exactly-once", verdict)],
        chart: None,
    })
}

/// One incarnation of the step; with `crash_in`, it crashes in that
/// transaction (1-based) after writing half of its outputs and returns how
/// many outputs the crashed transaction wrote.
async fn step(bootstrap: &str, crash_in: Option<usize>) -> Result<usize, LabError> {
    let consumer = kafka::consumer(bootstrap, GROUP, &[("isolation.level", "read_committed")])?;
    consumer.subscribe(&[INPUT]).step("subscribing the step")?;
    let producer = kafka::producer(
        bootstrap,
        &[
            ("transactional.id", TRANSACTIONAL_ID),
            ("enable.idempotence", "true"),
        ],
    )?;
    blocking(
        &producer,
        "initialising transactions (fencing the previous incarnation)",
        |p| p.init_transactions(TIMEOUT),
    )
    .await?;
    let mut ended = BTreeSet::new();
    let mut transactions = 0;
    let what = "the transactional step";
    let mut ticker = Ticker::new(what);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        progress::check_deadline(what, &ticker, deadline, || {
            format!("{transactions} transactions committed")
        })?;
        let batch = collect(&consumer, &mut ended).await?;
        if batch.is_empty() {
            if ended.len() >= PARTITIONS as usize {
                return Ok(0);
            }
            ticker.tick(|| format!("{transactions} transactions committed"));
            continue;
        }
        transactions += 1;
        producer
            .begin_transaction()
            .step("beginning a transaction")?;
        let crash_after = crash_in
            .filter(|&n| n == transactions)
            .map(|_| batch.len() / 2);
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        for (i, record) in batch.iter().enumerate() {
            if crash_after == Some(i) {
                // Put the half-transaction on the broker, then die without
                // committing or aborting: the consumer and producer are dropped.
                blocking(&producer, "flushing before the crash", |p| p.flush(TIMEOUT)).await?;
                return Ok(i);
            }
            let value = format!("out-{}", record.value.as_deref().unwrap_or_default());
            let key = record.key.clone().unwrap_or_default();
            producer
                .send_result(FutureRecord::to(OUTPUT).key(&key).payload(&value))
                .map_err(|(e, _)| e)
                .step("writing an output in the transaction")?;
            offsets.insert(record.partition, record.offset + 1);
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            list.add_partition_offset(INPUT, *partition, rdkafka::Offset::Offset(*offset))
                .step("listing the inputs' offsets")?;
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| LabError::Inconsistent {
                step: "sending the inputs' offsets to the transaction".into(),
                what: "the step's consumer has no group metadata".into(),
            })?;
        blocking(
            &producer,
            "sending the inputs' offsets to the transaction",
            move |p| p.send_offsets_to_transaction(&list, &group, TIMEOUT),
        )
        .await?;
        blocking(&producer, "committing the transaction", |p| {
            p.commit_transaction(TIMEOUT)
        })
        .await?;
    }
}

/// Up to [`BATCH`] input records that are there now.
async fn collect(
    consumer: &StreamConsumer,
    ended: &mut BTreeSet<i32>,
) -> Result<Vec<kafka::Record>, LabError> {
    let mut batch = Vec::new();
    while batch.len() < BATCH {
        match kafka::next(consumer, Duration::from_millis(500), "reading the inputs").await? {
            Next::Record(record) => {
                ended.remove(&record.partition);
                batch.push(record);
            }
            Next::Eof(partition) => {
                ended.insert(partition);
            }
            Next::Idle => break,
        }
    }
    Ok(batch)
}

/// Runs a blocking producer call on the blocking pool.
async fn blocking<T: Send + 'static>(
    producer: &FutureProducer,
    step: &str,
    call: impl FnOnce(&FutureProducer) -> rdkafka::error::KafkaResult<T> + Send + 'static,
) -> Result<T, LabError> {
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer))
        .await
        .step(step)?
        .step(step)
}
