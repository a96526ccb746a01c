//! 8. Replication keeps acknowledged data.
//!
//! On three brokers (the controller quorum on node 1 alone, see
//! [`crate::infra`]): a topic with 3 partitions, replication factor 3 and
//! `min.insync.replicas=2`, written by an idempotent `acks=all` producer at
//! a steady rate. Broker 3 is killed (SIGKILL) mid-stream and writing goes
//! on; once the controller has fenced it, broker 2 is killed too and a
//! producer without retries tries to write; then both are restarted and
//! the ISR is watched until it is whole again. At the end every
//! acknowledged record is looked for on the topic. A second topic with
//! replication factor 2 shows where replicas live, and a third one with the
//! same factor and twice its partitions whether more partitions lower the
//! risk: with two brokers down, the partitions without a leader are counted
//! on all three.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

use crate::error::{Refutes, Step};
use crate::infra::FENCE_AFTER_MS;
use crate::kafka::{self, Inspector, PartitionInfo, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "replication.orders";
const SPREAD: &str = "replication.spread";
/// Replication factor 2 like `SPREAD`, with twice its partitions.
const WIDE: &str = "replication.spread-wide";
const PARTITIONS: i32 = 3;
const SPREAD_PARTITIONS: usize = 6;
const WIDE_PARTITIONS: usize = 12;

/// What became of the records written in one phase.
#[derive(Debug, Default, Clone)]
struct Tally {
    written: usize,
    acknowledged: BTreeSet<usize>,
    refused: BTreeMap<String, usize>,
}

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let rate = lab.pick(100, 200);
    let phase = Duration::from_secs(lab.pick(2, 5));
    let probes = lab.pick(30, 60);
    let after = lab.pick(100, 500);
    let cluster = lab.infra.three()?;
    let bootstrap = cluster.bootstrap_servers();
    kafka::create_topic(
        &bootstrap,
        &TopicPlan::new(TOPIC, PARTITIONS)
            .replication(3)
            .config("min.insync.replicas", 2),
    )
    .await?;
    for (topic, partitions) in [(SPREAD, SPREAD_PARTITIONS), (WIDE, WIDE_PARTITIONS)] {
        kafka::create_topic(
            &bootstrap,
            &TopicPlan::new(topic, partitions as i32)
                .replication(2)
                .config("min.insync.replicas", 1),
        )
        .await?;
    }
    let inspector = Inspector::new(&bootstrap)?;
    let (placement, most_held) = placement_table(&inspector).await?;

    let mut phases = Table::new(&[
        "phase",
        "brokers up",
        "ISR per partition",
        "records written",
        "acknowledged",
        "refused",
    ]);
    let mut tallies = Vec::new();

    // Phase 1 and 2: a steady writer; broker 3 dies half-way.
    let writer = Writer::start(&bootstrap, rate)?;
    // Deliberate: the writer runs with all three brokers up for this long.
    tokio::time::sleep(phase).await;
    let before = inspector.partitions(TOPIC).await?;
    let isr_before = isr_line(&before);
    writer.next_phase();
    kill(lab.infra.three()?, 3)?;
    let fenced = wait_for_isr(&inspector, &[1, 2], "broker 3 to be fenced").await;
    if fenced.is_err() {
        // The run goes on with the next scenario: stop this one's writer.
        writer.stop.cancel();
    }
    let (isr_one_down, one_down_leaders) = fenced.refutes("replication.one-down")?;
    // Deliberate: the writer goes on with one broker down for this long.
    tokio::time::sleep(phase).await;
    let written = writer.finish().await?;
    for (tally, (name, up, isr)) in written.iter().zip([
        ("all up", "1, 2, 3", &isr_before),
        ("broker 3 killed", "1, 2", &isr_one_down),
    ]) {
        phases.row(phase_row(name, up, isr, tally));
    }
    tallies.extend(written);

    // Phase 3: broker 2 dies too; a producer without retries shows the refusal.
    kill(lab.infra.three()?, 2)?;
    let (isr_two_down, two_down_leaders) =
        wait_for_isr(&inspector, &[1], "broker 2 to be fenced").await?;
    // Which partitions still have a leader, on both topics, with only broker 1 up.
    let offline = offline_partitions(&inspector).await?;
    let refused = probe(&bootstrap, probes).await?;
    phases.row(phase_row(
        "brokers 2 and 3 killed",
        "1",
        &isr_two_down,
        &refused,
    ));
    tallies.push(refused);

    // Phase 4: both come back; the ISR heals.
    let restarted = Instant::now();
    lab.infra.three()?.start().await?;
    let (isr_healed, _) = wait_for_isr(&inspector, &[1, 2, 3], "the ISR to heal")
        .await
        .refutes("replication.one-down")?;
    let healed_after = restarted.elapsed();
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    let first = 1_000_000;
    super::write_all(
        &producer,
        TOPIC,
        (first..first + after).map(|i| (format!("order-{i}"), i.to_string())),
    )
    .await?;
    let healed = Tally {
        written: after,
        acknowledged: (first..first + after).collect(),
        refused: BTreeMap::new(),
    };
    phases.row(phase_row(
        "2 and 3 restarted",
        "1, 2, 3",
        &isr_healed,
        &healed,
    ));
    tallies.push(healed);

    let on_topic: BTreeSet<usize> = kafka::read_all(&bootstrap, TOPIC, false)
        .await?
        .iter()
        .filter_map(|r| r.value.as_deref()?.parse().ok())
        .collect();
    let acknowledged: BTreeSet<usize> = tallies
        .iter()
        .flat_map(|t| t.acknowledged.iter().copied())
        .collect();
    let lost = acknowledged.difference(&on_topic).count();
    let empty = Tally::default();
    let phase_tally = |i: usize| tallies.get(i).unwrap_or(&empty);
    let (all_up, one_down, two_down) = (phase_tally(0), phase_tally(1), phase_tally(2));
    let writes_continued = all_up.acknowledged.len() == all_up.written
        && one_down.acknowledged.len() == one_down.written
        && one_down.written > 0;
    // The leader may still count broker 2 in the partition's ISR for a
    // moment after the metadata says otherwise: a write in that moment is
    // appended and then times out waiting for broker 2, unacknowledged.
    let refused_for_isr = two_down.acknowledged.is_empty()
        && two_down
            .refused
            .get(NOT_ENOUGH_REPLICAS)
            .is_some_and(|&n| n * 2 >= two_down.written);
    let no_loss = if lost == 0 && refused_for_isr {
        Verdict::HoldsWithNuance(format!(
            "0 of {} acknowledged records lost; but writes stop (NOT_ENOUGH_REPLICAS) once fewer than \
             min.insync.replicas copies remain",
            acknowledged.len()
        ))
    } else if lost == 0 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "lost {lost} of {} acknowledged; refused with two down: {:?}",
            acknowledged.len(),
            two_down.refused
        ))
    };
    let one_down = if writes_continued {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "with broker 3 down {} of {} writes were acknowledged",
            one_down.acknowledged.len(),
            one_down.written
        ))
    };
    let every_server = if most_held < SPREAD_PARTITIONS {
        Verdict::DoesNotHold(format!(
            "a broker holds only its replicas: with replication factor 2 on 3 brokers, no broker held more \
             than {most_held} of {SPREAD_PARTITIONS} partitions"
        ))
    } else {
        Verdict::Holds
    };
    let more_partitions = more_partitions_verdict(offline);
    let moved = leaders_moved(&before, &[(3, &one_down_leaders), (2, &two_down_leaders)]);
    let zookeeper = if moved > 0 {
        Verdict::DoesNotHold(format!(
            "{moved} leadership(s) moved off a killed broker to a live one, and this cluster runs no ZooKeeper: \
             the KRaft controller quorum fenced the broker and elected the new leaders (Kafka 4 has no \
             ZooKeeper mode, KIP-500)"
        ))
    } else {
        Verdict::NotShown("no killed broker led a partition, so no leader was elected".into())
    };
    let mut notes = vec![format!(
        "After the restart the ISR was whole again in {:.1} s.",
        healed_after.as_secs_f64()
    )];
    if let Some(timed_out) = two_down.refused.get("REQUEST_TIMED_OUT") {
        notes.push(format!(
            "{timed_out} write(s) with two brokers down raced the ISR change: the leader appended it while it \
             still counted broker 2 in sync, waited for broker 2, and answered REQUEST_TIMED_OUT: not \
             acknowledged, so not promised."
        ));
    }
    notes.push(
        "Why the controller runs apart here: with broker and controller in every node (as `cargo xtask \
         infra up --brokers 3` runs), killing two of three nodes also takes the controller quorum (a \
         majority of three), and every ISR change goes through the controller, so the ISR keeps naming the \
         dead brokers and an acks=all write can only wait and time out instead of being refused. Background \
         (not measured by this run; KIP-595, the KRaft quorum)."
            .into(),
    );
    Ok(Outcome {
        setup: format!(
            "three brokers (the controller quorum on node 1 alone; a silent broker is fenced after \
             {FENCE_AFTER_MS} ms); topic `{TOPIC}`: {PARTITIONS} partitions, replication factor 3, \
             min.insync.replicas=2; an idempotent acks=all producer writes {rate} records/s for {} s, \
             broker 3 is SIGKILLed and writing goes on for {} s; then broker 2 is SIGKILLed and a producer \
             without retries tries {probes} records; then both restart and {after} more records are written. \
             Topic `{SPREAD}` ({SPREAD_PARTITIONS} partitions, replication factor 2) shows where replicas \
             live; it and `{WIDE}` ({WIDE_PARTITIONS} partitions, replication factor 2) are counted for \
             partitions without a leader while only broker 1 is up.",
            phase.as_secs(),
            phase.as_secs()
        ),
        tables: vec![placement, phases, offline_table(offline)],
        notes,
        verdicts: vec![
            ("replication.no-loss", no_loss),
            ("replication.one-down", one_down),
            ("replication.every-server", every_server),
            ("replication.more-partitions", more_partitions),
            ("replication.zookeeper", zookeeper),
        ],
        chart: None,
    })
}

const NOT_ENOUGH_REPLICAS: &str = "NOT_ENOUGH_REPLICAS";

/// Which partitions each broker holds (and leads), for both topics, once
/// the metadata shows every partition of both with its replicas (a broker
/// learns a new topic from the controller a moment after another one did).
async fn placement_table(inspector: &Inspector) -> Result<(Table, usize), LabError> {
    let (orders, spread) = progress::until(
        "the metadata to show both topics' replicas",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let orders = inspector.partitions(TOPIC).await?;
            let spread = inspector.partitions(SPREAD).await?;
            let complete = |partitions: &[PartitionInfo], count: usize, factor: usize| {
                partitions.len() == count && partitions.iter().all(|p| p.replicas.len() == factor)
            };
            Ok(
                if complete(&orders, PARTITIONS as usize, 3)
                    && complete(&spread, SPREAD_PARTITIONS, 2)
                {
                    Seen::Ready((orders, spread))
                } else {
                    Seen::NotYet(format!(
                        "{} and {} partitions known",
                        orders.len(),
                        spread.len()
                    ))
                },
            )
        },
    )
    .await?;
    let held = |partitions: &[PartitionInfo], broker: i32| {
        let held: Vec<String> = partitions
            .iter()
            .filter(|p| p.replicas.contains(&broker))
            .map(|p| {
                if p.leader == broker {
                    format!("{}*", p.id)
                } else {
                    p.id.to_string()
                }
            })
            .collect();
        (
            held.len(),
            format!(
                "{} ({} of {})",
                held.join(" "),
                held.len(),
                partitions.len()
            ),
        )
    };
    let mut table = Table::new(&[
        "broker",
        "holds of replication.orders (RF 3), * leads",
        "holds of replication.spread (RF 2), * leads",
    ]);
    let mut most_held = 0;
    for broker in 1..=3 {
        let (count, spread_cell) = held(&spread, broker);
        most_held = most_held.max(count);
        table.row(vec![
            broker.to_string(),
            held(&orders, broker).1,
            spread_cell,
        ]);
    }
    Ok((table, most_held))
}

fn phase_row(phase: &str, up: &str, isr: &str, tally: &Tally) -> Vec<String> {
    let refused = if tally.refused.is_empty() {
        "0".to_owned()
    } else {
        tally
            .refused
            .iter()
            .map(|(code, n)| format!("{n} {code}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        phase.into(),
        up.into(),
        isr.into(),
        tally.written.to_string(),
        tally.acknowledged.len().to_string(),
        refused,
    ]
}

fn isr_line(partitions: &[PartitionInfo]) -> String {
    partitions
        .iter()
        .map(|p| {
            let isr: Vec<String> = p.isr.iter().map(ToString::to_string).collect();
            format!("p{}: {}", p.id, isr.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// SIGKILLs node `node` of the lab's cluster.
pub(super) fn kill(cluster: &mut devinfra::KafkaCluster, node: u32) -> Result<(), LabError> {
    eprintln!("lab:     SIGKILL Kafka node {node}");
    match cluster.broker_mut(node) {
        Some(broker) => Ok(broker.kill()?),
        None => Err(LabError::Infra(devinfra::InfraError::Config(format!(
            "the lab's cluster has no node {node}"
        )))),
    }
}

/// How many partitions changed leader away from a killed broker: per
/// `(killed, partitions after its fencing)`, the partitions it led before
/// (in `before`) that a live broker leads after.
fn leaders_moved(before: &[PartitionInfo], after: &[(i32, &[PartitionInfo])]) -> usize {
    after
        .iter()
        .map(|(killed, now)| {
            now.iter()
                .filter(|p| {
                    p.leader >= 0
                        && p.leader != *killed
                        && before.iter().any(|b| b.id == p.id && b.leader == *killed)
                })
                .count()
        })
        .sum()
}

/// Partitions without a leader per topic, with only broker 1 up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offline {
    /// Of `TOPIC`'s `PARTITIONS` (replication factor 3).
    orders: usize,
    /// Of `SPREAD`'s `SPREAD_PARTITIONS` (replication factor 2).
    spread: usize,
    /// Of `WIDE`'s `WIDE_PARTITIONS` (replication factor 2).
    wide: usize,
}

/// The counts of partitions without a leader, as a table.
fn offline_table(offline: Offline) -> Table {
    let mut table = Table::new(&[
        "topic (only broker 1 up)",
        "replication factor",
        "partitions",
        "without a leader",
    ]);
    for (topic, factor, partitions, without) in [
        (TOPIC, 3, PARTITIONS as usize, offline.orders),
        (SPREAD, 2, SPREAD_PARTITIONS, offline.spread),
        (WIDE, 2, WIDE_PARTITIONS, offline.wide),
    ] {
        table.row(vec![
            topic.to_owned(),
            factor.to_string(),
            partitions.to_string(),
            without.to_string(),
        ]);
    }
    table
}

/// "The more partitions, the lower the risk", from the partitions left
/// without a leader: at the same replication factor, twice the partitions
/// must leave fewer of them without a leader for the claim to hold.
fn more_partitions_verdict(offline: Offline) -> Verdict {
    let Offline {
        orders,
        spread,
        wide,
    } = offline;
    if spread == 0 && wide == 0 {
        return Verdict::NotShown(format!(
            "no partition at replication factor 2 lost its leader with two brokers down ({orders} of \
             {PARTITIONS} at factor 3)"
        ));
    }
    let share = |n: usize, of: usize| n as f64 / of as f64 * 100.0;
    let counted = format!(
        "with two brokers down, {wide} of the {WIDE_PARTITIONS} partitions of `{WIDE}` had no leader \
         ({:.0}%) against {spread} of the {SPREAD_PARTITIONS} of `{SPREAD}` ({:.0}%), both at replication \
         factor 2; at factor 3, {orders} of the {PARTITIONS} of `{TOPIC}`",
        share(wide, WIDE_PARTITIONS),
        share(spread, SPREAD_PARTITIONS),
    );
    if wide >= spread {
        Verdict::DoesNotHold(format!(
            "{counted}: more partitions left as many or more without a leader; replicas lower the risk, \
             partitions only spread it"
        ))
    } else {
        Verdict::HoldsWithNuance(counted)
    }
}

/// With only broker 1 up: how many partitions of each topic have no leader,
/// once no partition names a dead broker as leader.
async fn offline_partitions(inspector: &Inspector) -> Result<Offline, LabError> {
    let settled =
        |partitions: &[PartitionInfo]| partitions.iter().all(|p| p.leader == 1 || p.leader < 0);
    let offline = |partitions: &[PartitionInfo]| partitions.iter().filter(|p| p.leader < 0).count();
    progress::until(
        "the metadata to show who leads with only broker 1 up",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let orders = inspector.partitions(TOPIC).await?;
            let spread = inspector.partitions(SPREAD).await?;
            let wide = inspector.partitions(WIDE).await?;
            Ok(
                if settled(&orders)
                    && settled(&spread)
                    && settled(&wide)
                    && spread.len() == SPREAD_PARTITIONS
                    && wide.len() == WIDE_PARTITIONS
                {
                    Seen::Ready(Offline {
                        orders: offline(&orders),
                        spread: offline(&spread),
                        wide: offline(&wide),
                    })
                } else {
                    Seen::NotYet(format!(
                        "{}; spread: {}; wide: {}",
                        isr_line(&orders),
                        isr_line(&spread),
                        isr_line(&wide)
                    ))
                },
            )
        },
    )
    .await
}

/// Waits until every partition's ISR is exactly `isr`; returns the ISR line
/// and the partitions as seen then.
async fn wait_for_isr(
    inspector: &Inspector,
    isr: &[i32],
    what: &str,
) -> Result<(String, Vec<PartitionInfo>), LabError> {
    progress::until(
        what,
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            Ok(match inspector.partitions(TOPIC).await {
                Ok(partitions)
                    if partitions.len() == PARTITIONS as usize
                        && partitions.iter().all(|p| p.isr == isr && p.leader >= 0) =>
                {
                    Seen::Ready((isr_line(&partitions), partitions))
                }
                Ok(partitions) => Seen::NotYet(isr_line(&partitions)),
                Err(e) => Seen::NotYet(platform::error::chain(&e)),
            })
        },
    )
    .await
}

/// Sends `count` records one by one with `retries=0`, so each one's answer
/// is the broker's own (a write the broker holds for replicas that do not
/// come times out after 5 s).
async fn probe(bootstrap: &str, count: usize) -> Result<Tally, LabError> {
    let producer = kafka::producer(
        bootstrap,
        &[
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("request.timeout.ms", "5000"),
        ],
    )?;
    let mut tally = Tally {
        written: count,
        ..Tally::default()
    };
    let first = 500_000;
    for i in first..first + count {
        let result = kafka::send(&producer, TOPIC, &format!("order-{i}"), &i.to_string()).await;
        record(&mut tally, i, result.map(|_| ()));
    }
    Ok(tally)
}

fn record(tally: &mut Tally, id: usize, result: Result<(), KafkaError>) {
    match result {
        Ok(()) => {
            tally.acknowledged.insert(id);
        }
        Err(e) => {
            let code = match e {
                KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas) => {
                    NOT_ENOUGH_REPLICAS.to_owned()
                }
                KafkaError::MessageProduction(RDKafkaErrorCode::RequestTimedOut) => {
                    "REQUEST_TIMED_OUT".to_owned()
                }
                KafkaError::MessageProduction(code) => format!("{code:?}"),
                other => other.to_string(),
            };
            *tally.refused.entry(code).or_default() += 1;
        }
    }
}

/// An idempotent acks=all producer writing at a steady rate in the
/// background, tallying each record's outcome in the phase it was written.
struct Writer {
    tallies: Arc<Mutex<Vec<Tally>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), LabError>>,
}

impl Writer {
    fn start(bootstrap: &str, rate: u64) -> Result<Self, LabError> {
        let producer = kafka::producer(
            bootstrap,
            &[
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "20000"),
            ],
        )?;
        let tallies = Arc::new(Mutex::new(vec![Tally::default()]));
        let stop = tokio_util::sync::CancellationToken::new();
        let shared = tallies.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1) as u32);
            let mut deliveries = Vec::new();
            let mut id = 0;
            while !stopped.is_cancelled() {
                ticks.tick().await;
                let phase = {
                    let mut tallies = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let phase = tallies.len() - 1;
                    tallies[phase].written += 1;
                    phase
                };
                let (key, value) = (format!("order-{id}"), id.to_string());
                let delivery = producer
                    .send_result(FutureRecord::to(TOPIC).key(&key).payload(&value))
                    .map_err(|(e, _)| e)
                    .step("writing to the replicated topic")?;
                let shared = shared.clone();
                deliveries.push(tokio::spawn(async move {
                    let result = match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(KafkaError::Canceled),
                    };
                    let mut tallies = shared.lock().unwrap_or_else(|e| e.into_inner());
                    record(&mut tallies[phase], id, result);
                }));
                id += 1;
            }
            for delivery in deliveries {
                delivery.await.step("waiting for a delivery report")?;
            }
            Ok(())
        });
        Ok(Writer {
            tallies,
            stop,
            task,
        })
    }

    /// Counts the records written from now on in a new phase.
    fn next_phase(&self) {
        self.tallies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Tally::default());
    }

    /// Stops writing, waits for every delivery report, and returns each
    /// phase's tally.
    async fn finish(self) -> Result<Vec<Tally>, LabError> {
        self.stop.cancel();
        self.task.await.step("stopping the writer")??;
        let tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        Ok(tallies.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(id: i32, leader: i32) -> PartitionInfo {
        PartitionInfo {
            id,
            leader,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
        }
    }

    #[test]
    fn only_leaderships_taken_from_a_killed_broker_by_a_live_one_count() {
        let before = [led(0, 1), led(1, 2), led(2, 3)];
        // Broker 3 killed: partition 2 moves to 1. Broker 2 killed: partition 1
        // has no leader yet (-1), so it is not counted.
        let after_3 = [led(0, 1), led(1, 2), led(2, 1)];
        let after_2 = [led(0, 1), led(1, -1), led(2, 1)];
        assert_eq!(leaders_moved(&before, &[(3, &after_3), (2, &after_2)]), 1);
        assert_eq!(leaders_moved(&before, &[(3, &before)]), 0);
    }

    #[test]
    fn more_partitions_lower_the_risk_only_if_fewer_of_them_lose_their_leader() {
        let offline = |spread, wide| Offline {
            orders: 0,
            spread,
            wide,
        };
        // Twice the partitions, the same share without a leader.
        let same_share = more_partitions_verdict(offline(2, 4));
        assert_eq!(same_share.kind(), crate::VerdictKind::DoesNotHold);
        assert!(
            same_share.line().contains("4 of the 12 partitions"),
            "{}",
            same_share.line()
        );
        assert_eq!(
            more_partitions_verdict(offline(2, 2)).kind(),
            crate::VerdictKind::DoesNotHold
        );
        // Fewer partitions without a leader on the wider topic: the claim holds.
        assert_eq!(
            more_partitions_verdict(offline(2, 1)).kind(),
            crate::VerdictKind::HoldsWithNuance
        );
        // Nothing lost its leader: the run shows neither.
        assert_eq!(
            more_partitions_verdict(offline(0, 0)).kind(),
            crate::VerdictKind::NotShown
        );
    }
}
