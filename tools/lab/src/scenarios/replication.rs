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
//! replication factor 2 shows where replicas live.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

use crate::error::Step;
use crate::infra::FENCE_AFTER_MS;
use crate::kafka::{self, Inspector, PartitionInfo, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "replication.orders";
const SPREAD: &str = "replication.spread";
const PARTITIONS: i32 = 3;

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
    kafka::create_topic(
        &bootstrap,
        &TopicPlan::new(SPREAD, 6)
            .replication(2)
            .config("min.insync.replicas", 1),
    )
    .await?;
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
    let isr_before = isr_line(&inspector.partitions(TOPIC).await?);
    writer.next_phase();
    kill(lab.infra.three()?, 3)?;
    let isr_one_down = wait_for_isr(&inspector, &[1, 2], "broker 3 to be fenced").await?;
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
    let isr_two_down = wait_for_isr(&inspector, &[1], "broker 2 to be fenced").await?;
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
    let isr_healed = wait_for_isr(&inspector, &[1, 2, 3], "the ISR to heal").await?;
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
    let verdict = if lost == 0 && writes_continued && refused_for_isr && (1..6).contains(&most_held)
    {
        Verdict::HoldsWithNuance(format!(
            "0 of {} acknowledged records lost; but writes stop (NOT_ENOUGH_REPLICAS) once fewer than \
             min.insync.replicas copies remain, and a broker holds only its replicas: with replication \
             factor 2, no broker held more than {most_held} of 6 partitions",
            acknowledged.len()
        ))
    } else {
        Verdict::DoesNotHold(format!(
            "lost {lost} acknowledged; writes continued with one broker down: {writes_continued}; \
             refused with two down: {:?}; most partitions on one broker at RF 2: {most_held} of 6",
            two_down.refused
        ))
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
         infra up --brokers 3` runs), killing two of three nodes also takes the controller quorum, and \
         every ISR change goes through the controller. Tried by hand on such a cluster: 15 s after the \
         second kill every ISR still named the dead broker, and one partition still had it as leader, so \
         an acks=all write can only wait for it and time out; it is never refused."
            .into(),
    );
    Ok(Outcome {
        setup: format!(
            "three brokers (the controller quorum on node 1 alone; a silent broker is fenced after \
             {FENCE_AFTER_MS} ms); topic `{TOPIC}`: {PARTITIONS} partitions, replication factor 3, \
             min.insync.replicas=2; an idempotent acks=all producer writes {rate} records/s for {} s, \
             broker 3 is SIGKILLed and writing goes on for {} s; then broker 2 is SIGKILLed and a producer \
             without retries tries {probes} records; then both restart and {after} more records are written. \
             Topic `{SPREAD}` (6 partitions, replication factor 2) shows where replicas live.",
            phase.as_secs(),
            phase.as_secs()
        ),
        tables: vec![placement, phases],
        notes,
        verdict,
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
                if complete(&orders, PARTITIONS as usize, 3) && complete(&spread, 6, 2) {
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

fn kill(cluster: &mut devinfra::KafkaCluster, node: u32) -> Result<(), LabError> {
    eprintln!("lab:     SIGKILL Kafka node {node}");
    match cluster.broker_mut(node) {
        Some(broker) => Ok(broker.kill()?),
        None => Err(LabError::Infra(devinfra::InfraError::Config(format!(
            "the lab's cluster has no node {node}"
        )))),
    }
}

/// Waits until every partition's ISR is exactly `isr`; returns the ISR line.
async fn wait_for_isr(inspector: &Inspector, isr: &[i32], what: &str) -> Result<String, LabError> {
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
                    Seen::Ready(isr_line(&partitions))
                }
                Ok(partitions) => Seen::NotYet(isr_line(&partitions)),
                Err(e) => Seen::NotYet(devinfra::error_chain(&e)),
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
