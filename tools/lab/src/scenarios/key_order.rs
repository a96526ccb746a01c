//! 3. Key → partition → order.
//!
//! Six orders (keys A to F) each get E events, sent round-robin (A1 B1 C1 …
//! A2 B2 …) by one idempotent producer. A reader then reads the topic from
//! the start. Per key: which partitions its events landed in, and whether
//! they were read in the order written. Over all pairs of records: how
//! many were read in the opposite order to the one they were sent in, for
//! pairs in one partition and pairs in different partitions.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::{self, TopicPlan};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "key-order.orders";
const PARTITIONS: i32 = 3;
const KEYS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

/// Pairs of records read in the opposite order to the one they were sent
/// in, as (inverted, pairs), for pairs in one partition and across two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Inversions {
    same_partition: (usize, usize),
    across_partitions: (usize, usize),
}

impl Inversions {
    /// Counts them for `read` (partition, value), in read order, against the
    /// values in the order `sent`; a value never sent is left out.
    fn count(sent: &[&str], read: &[(i32, &str)]) -> Self {
        let position: BTreeMap<&str, usize> =
            sent.iter().enumerate().map(|(i, v)| (*v, i)).collect();
        let order: Vec<(i32, usize)> = read
            .iter()
            .filter_map(|(partition, value)| Some((*partition, *position.get(value)?)))
            .collect();
        let mut counted = Inversions::default();
        for (i, (partition, sent_at)) in order.iter().enumerate() {
            for (other, other_sent_at) in &order[i + 1..] {
                let pair = if partition == other {
                    &mut counted.same_partition
                } else {
                    &mut counted.across_partitions
                };
                pair.1 += 1;
                if sent_at > other_sent_at {
                    pair.0 += 1;
                }
            }
        }
        counted
    }
}

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
    let used: BTreeSet<i32> = read.iter().map(|r| r.partition).collect();
    let complete = read_values.len() == sent_values.len() && by_key.len() == KEYS.len();
    let read_in_partitions: Vec<(i32, &str)> = read
        .iter()
        .filter_map(|r| Some((r.partition, r.value.as_deref()?)))
        .collect();
    let inverted = Inversions::count(&sent_values, &read_in_partitions);
    let mut pairs = Table::new(&[
        "pairs of records",
        "pairs",
        "read in the opposite order to the one sent",
    ]);
    for (name, (inverted, of)) in [
        ("in the same partition", inverted.same_partition),
        ("in different partitions", inverted.across_partitions),
    ] {
        pairs.row(vec![name.into(), of.to_string(), inverted.to_string()]);
    }
    let (out_of_order, same_pairs) = inverted.same_partition;
    let (crossed, across_pairs) = inverted.across_partitions;
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
            "inside each of the {} partitions used, 0 of the {same_pairs} pairs of records were read in the \
             opposite order to the one written; the order is the partition's append order, not random",
            used.len(),
        ))
    } else {
        Verdict::HoldsWithNuance(format!(
            "{out_of_order} of the {same_pairs} pairs of records in one partition were read in the opposite \
             order to the one written"
        ))
    };
    let across = if crossed > 0 {
        Verdict::Holds
    } else {
        Verdict::NotShown(format!(
            "0 of the {across_pairs} pairs of records in different partitions ({} partitions used) were read \
             in the opposite order to the one sent",
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
        tables: vec![table, pairs],
        notes: vec![
            format!("sent first: {} …", first(&sent_values)),
            format!("read first: {} …", first(&read_values)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversions_are_counted_per_pair_inside_and_across_partitions() {
        let sent = ["A1", "B1", "A2", "B2"];
        // Partition 0 holds A, partition 1 holds B; the reader took all of
        // partition 1 first: A1 and A2 come after B1 and B2.
        let read = [(1, "B1"), (1, "B2"), (0, "A1"), (0, "A2")];
        let counted = Inversions::count(&sent, &read);
        assert_eq!(counted.same_partition, (0, 2));
        // (B1, A1) and (B2, A2) and (B2, A1) inverted; (B1, A2) not.
        assert_eq!(counted.across_partitions, (3, 4));
        // Inside a partition read backwards, every pair is inverted.
        let backwards = [(0, "A2"), (0, "A1"), (1, "B1"), (1, "B2")];
        assert_eq!(Inversions::count(&sent, &backwards).same_partition, (1, 2));
        // Read as sent: nothing inverted.
        let as_sent: Vec<(i32, &str)> = [(0, "A1"), (1, "B1"), (0, "A2"), (1, "B2")].to_vec();
        assert_eq!(
            Inversions::count(&sent, &as_sent),
            Inversions {
                same_partition: (0, 2),
                across_partitions: (0, 4),
            }
        );
    }
}
