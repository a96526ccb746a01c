//! 3. Key → partition → order.
//!
//! Six orders (keys A to F) each get E events, sent round-robin (A1 B1 C1 …
//! A2 B2 …) by one idempotent producer. A reader then reads the topic from
//! the start. Per key: which partitions its events landed in, and whether
//! they were read in the order written. Across keys: how many records were
//! read at another position than they were sent.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::{self, TopicPlan};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "key-order.orders";
const PARTITIONS: i32 = 3;
const KEYS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let events = lab.pick(10, 50);
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(&bootstrap, &TopicPlan::new(TOPIC, PARTITIONS)).await?;
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    // The send order: A1 B1 C1 D1 E1 F1 A2 B2 ...; the value is "<key><event>".
    let sent: Vec<(String, String)> = (1..=events)
        .flat_map(|e| {
            KEYS.iter()
                .map(move |k| (format!("order-{k}"), format!("{k}{e}")))
        })
        .collect();
    super::write_all(&producer, TOPIC, sent.clone()).await?;
    let read = kafka::read_all(&bootstrap, TOPIC, false).await?;

    let mut by_key: BTreeMap<&str, (BTreeSet<i32>, Vec<usize>)> = BTreeMap::new();
    for record in &read {
        let value = record.value.as_deref().unwrap_or_default();
        let (key, number) = value.split_at(1.min(value.len()));
        let entry = by_key
            .entry(KEYS.iter().find(|k| **k == key).copied().unwrap_or("?"))
            .or_default();
        entry.0.insert(record.partition);
        entry.1.push(number.parse().unwrap_or(0));
    }
    let mut table = Table::new(&["key", "partition", "events", "read in the order written"]);
    let mut per_key_ok = true;
    for (key, (partitions, numbers)) in &by_key {
        let in_order = numbers.windows(2).all(|w| w[0] < w[1]) && numbers.len() == events;
        per_key_ok &= partitions.len() == 1 && in_order;
        table.row(vec![
            (*key).to_owned(),
            partitions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            numbers.len().to_string(),
            if in_order { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    let sent_values: Vec<&str> = sent.iter().map(|(_, v)| v.as_str()).collect();
    let read_values: Vec<&str> = read.iter().filter_map(|r| r.value.as_deref()).collect();
    let moved = sent_values
        .iter()
        .zip(&read_values)
        .filter(|(s, r)| s != r)
        .count();
    let used: BTreeSet<i32> = read.iter().map(|r| r.partition).collect();
    let complete = read_values.len() == sent_values.len() && by_key.len() == KEYS.len();
    // Inside each partition: records read before one written earlier.
    let position: BTreeMap<&str, usize> = sent_values
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, i))
        .collect();
    let mut last_in_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let mut out_of_order = 0;
    for record in &read {
        let at = record
            .value
            .as_deref()
            .and_then(|v| position.get(v))
            .copied()
            .unwrap_or(0);
        if let Some(previous) = last_in_partition.insert(record.partition, at)
            && previous > at
        {
            out_of_order += 1;
        }
    }
    let per_partition = if complete && per_key_ok {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "{} of {} records read; every key in one partition and in order: {per_key_ok}",
            read_values.len(),
            sent_values.len()
        ))
    };
    let random = if !complete {
        Verdict::NotShown(format!(
            "{} of {} records read",
            read_values.len(),
            sent_values.len()
        ))
    } else if out_of_order == 0 {
        Verdict::DoesNotHold(format!(
            "inside each of the {} partitions used, all {} records were read in the order written (0 out of \
             order); the order is the partition's append order, not random",
            used.len(),
            sent_values.len()
        ))
    } else {
        Verdict::HoldsWithNuance(format!(
            "{out_of_order} records were read before one written earlier into the same partition"
        ))
    };
    let across = if moved > 0 {
        Verdict::Holds
    } else {
        Verdict::NotShown(format!(
            "this run read all {} records in the order sent, across {} partitions",
            sent_values.len(),
            used.len()
        ))
    };
    let first = |values: &[&str]| {
        values
            .iter()
            .take(18)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` ({PARTITIONS} partitions); {} keys × {events} events sent round-robin by one \
             idempotent producer (librdkafka's default partitioner); one reader from the start.",
            KEYS.len()
        ),
        tables: vec![table],
        notes: vec![
            format!("sent first: {} …", first(&sent_values)),
            format!("read first: {} …", first(&read_values)),
            format!(
                "Across partitions {moved} of {} records were read at another position than they were sent.",
                sent_values.len()
            ),
            "Background (not measured here; librdkafka's CONFIGURATION.md, `partitioner`): librdkafka's default \
             partitioner (consistent_random, CRC32) is not the Java client's (murmur2), so the same key can land \
             in another partition when producers of both write one topic; `partitioner=murmur2_random` makes \
             them agree. The partition is the key's hash modulo the partition count, so adding partitions \
             moves keys."
                .into(),
        ],
        verdicts: vec![
            ("key-order.per-partition", per_partition),
            ("key-order.random", random),
            ("key-order.across-partitions", across),
        ],
        chart: None,
    })
}
