//! 13. acks=1 against acks=all on leader failure.
//!
//! `acks` is the producer's choice of who must have a record before the
//! producer is told it is written: the leader alone (`acks=1`) or every
//! replica in the ISR (`acks=all`, the clients' default). The difference
//! only shows when the leader dies before its followers have fetched: its
//! acknowledged records die with it, because the follower that takes over
//! never had them (and the old leader, back, truncates its log to the new
//! leader's).
//!
//! On the lab's three brokers, once per setting and with the same workload:
//! a topic with one partition on brokers 2 (leader) and 3 (follower),
//! `min.insync.replicas=1` and unclean leader election off, written at a
//! steady rate. The follower is frozen (SIGSTOP), so it stays in the ISR
//! but fetches nothing, until the leader has acknowledged a few records
//! written since, or for at most 2 s (the controller fences a silent broker
//! after 4); then the leader is killed (SIGKILL) and the follower thawed. The
//! controller fences the dead leader and elects the follower, the writer
//! goes on, the old leader restarts, and a reader compares what is on the
//! topic with what was acknowledged. Brokers 2 and 3, not 1: node 1 also
//! runs the controller quorum (see [`crate::infra`]), and a frozen or dead
//! controller would change nothing but the time everything takes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devinfra::process::{self, Signal};
use rdkafka::producer::FutureRecord;

use crate::error::Step;
use crate::infra::FENCE_AFTER_MS;
use crate::kafka::{self, Inspector, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

/// The partition's preferred leader, killed.
const LEADER: i32 = 2;
/// Its only follower, frozen and then elected.
const FOLLOWER: i32 = 3;
/// The leader is killed once it has acknowledged this many records written
/// after the follower froze. The frozen follower fetches none of them, but
/// a fetch it sent just before freezing is answered with the leader's first
/// append after it, which waits in the follower's socket and is read on
/// thawing: so not one record, but enough to span several appends...
const UNREPLICATED: usize = 25;
/// ...or once the follower has been frozen this long, well under
/// [`FENCE_AFTER_MS`], so that the controller still counts the follower
/// alive and in the ISR when the leader dies (a broker heartbeats every
/// 500 ms). With acks=all no such acknowledgement can come: the kill
/// always waits this long.
const FREEZE_AT_MOST: Duration = Duration::from_secs(2);

/// The writer's phases, in order.
const PHASES: [&str; 4] = [
    "all up",
    "follower frozen",
    "leader killed, no new leader yet",
    "follower leads",
];
const FROZEN: usize = 1;
const KILLED: usize = 2;
const NEW_LEADER: usize = 3;

/// One of the two producer settings the scenario compares.
#[derive(Debug, Clone, Copy)]
enum Acks {
    One,
    All,
}

impl Acks {
    fn setting(self) -> &'static str {
        match self {
            Acks::One => "1",
            Acks::All => "all",
        }
    }

    fn topic(self) -> &'static str {
        match self {
            Acks::One => "acks.one",
            Acks::All => "acks.all",
        }
    }
}

/// One record the writer sent.
#[derive(Debug, Clone)]
struct Sent {
    phase: usize,
    sent_at: Instant,
    acknowledged: Option<Instant>,
    failed: Option<String>,
}

/// What one setting's run found.
#[derive(Debug)]
struct Run {
    acks: Acks,
    /// Records written after the follower froze and acknowledged before
    /// the leader was killed.
    unreplicated: usize,
    /// How long the follower was frozen.
    frozen_for: Duration,
    /// From the kill to the metadata naming the follower as leader; `None`
    /// if it never did within the wait.
    new_leader_after: Option<Duration>,
    /// The records' fates.
    counts: Counts,
}

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let rate = lab.pick(100, 200);
    let steady = Duration::from_secs(lab.pick(1, 3));
    let mut runs = Vec::new();
    for acks in [Acks::One, Acks::All] {
        runs.push(run_once(lab, acks, rate, steady).await?);
    }
    let mut phases = Table::new(&[
        "acks",
        "phase",
        "records written",
        "acknowledged",
        "acknowledged, then lost",
        "failed",
    ]);
    let mut summary = Table::new(&[
        "acks",
        "follower frozen for",
        "written after the freeze, acknowledged before the kill",
        "acknowledged, then lost",
        "new leader after the kill",
        "first acknowledgement after the kill",
        "longest gap between acknowledgements",
    ]);
    for run in &runs {
        for (name, counts) in PHASES.iter().zip(run.counts.phases) {
            let mut row = vec![run.acks.setting().to_owned(), (*name).to_owned()];
            row.extend(counts.iter().map(ToString::to_string));
            phases.row(row);
        }
        summary.row(vec![
            run.acks.setting().to_owned(),
            format!("{:.1} s", run.frozen_for.as_secs_f64()),
            run.unreplicated.to_string(),
            run.counts.lost.to_string(),
            seconds(run.new_leader_after),
            seconds(run.counts.after_kill),
            format!("{:.1} s", run.counts.longest_gap.as_secs_f64()),
        ]);
    }
    let (one, all) = match runs.as_slice() {
        [one, all] => (one, all),
        _ => {
            return Err(LabError::Inconsistent {
                step: "comparing the two acks settings".into(),
                what: format!("{} runs instead of 2", runs.len()),
            });
        }
    };
    let acknowledged = |run: &Run| run.counts.phases.iter().map(|p| p[1]).sum::<usize>();
    let copy_before_ack = if one.counts.lost > 0 {
        Verdict::DoesNotHold(format!(
            "the producer decides: with acks=1 the leader acknowledged {} records its follower never had (gone \
             once the follower led); acks=all (the clients' default) acknowledged {} of the {} records written \
             while its follower was frozen before the kill, and lost none",
            one.counts.lost, all.unreplicated, all.counts.phases[FROZEN][0]
        ))
    } else {
        Verdict::NotShown(format!(
            "with acks=1 every acknowledged record was still there after the failover ({} written after the \
             freeze were acknowledged before the kill)",
            one.unreplicated
        ))
    };
    let stalls = format!(
        "neither escapes the stall: the first acknowledgement after the kill came {} later with acks=1 and {} \
         with acks=all (whose acknowledgements had stopped when the follower froze: {:.1} s without one), \
         while the controller fenced the dead leader (after {} s of silence) and elected another{}",
        seconds(one.counts.after_kill),
        seconds(all.counts.after_kill),
        all.counts.longest_gap.as_secs_f64(),
        FENCE_AFTER_MS / 1000,
        unled(&runs)
    );
    let lost = if all.counts.lost > 0 {
        Verdict::DoesNotHold(format!(
            "acks=all lost {} of {} acknowledged records",
            all.counts.lost,
            acknowledged(all)
        ))
    } else if one.counts.lost == 0 {
        Verdict::NotShown(format!(
            "acks=1 lost none of {} acknowledged records: the follower {} when the leader died",
            acknowledged(one),
            if one.new_leader_after.is_some() {
                "had them"
            } else {
                "was no longer in the ISR, so nobody took over until the leader came back"
            }
        ))
    } else {
        Verdict::HoldsWithNuance(format!(
            "acks=1 lost {} of {} acknowledged records, acks=all 0 of {}; but {stalls}",
            one.counts.lost,
            acknowledged(one),
            acknowledged(all)
        ))
    };
    Ok(Outcome {
        setup: format!(
            "three brokers (the controller quorum on node 1 alone; a silent broker is fenced after \
             {FENCE_AFTER_MS} ms); per setting, topic `acks.one` or `acks.all`: 1 partition on brokers \
             {LEADER} (leader) and {FOLLOWER}, min.insync.replicas=1, unclean.leader.election.enable=false; a \
             producer (enable.idempotence=false, the only difference between the two runs being acks) writes \
             {rate} records/s for {} s; broker {FOLLOWER} is frozen (SIGSTOP); once the leader has acknowledged \
             {UNREPLICATED} records written since, or after {} s frozen, broker {LEADER} is SIGKILLed and \
             broker {FOLLOWER} thawed; writing goes on for {} s once broker {FOLLOWER} leads, broker {LEADER} \
             restarts, and every acknowledged record is looked for on the topic",
            steady.as_secs(),
            FREEZE_AT_MOST.as_secs(),
            steady.as_secs()
        ),
        tables: vec![summary, phases],
        notes: lagged(one).into_iter().chain([
            format!(
                "With acks=all, of the {} records written while the follower was frozen, {} were acknowledged \
                 before the kill; the others waited, and the producer's retries wrote them to the new leader: \
                 late, not lost.",
                all.counts.phases[FROZEN][0], all.unreplicated
            ),
            "min.insync.replicas=1 keeps acks the only variable. With it, acks=all is answered by the leader \
             alone once the ISR has shrunk to the leader, which is why production topics set \
             min.insync.replicas=2 (scenario 8). Background, not measured by this run."
                .into(),
        ])
        .collect(),
        verdicts: vec![("acks.copy-before-ack", copy_before_ack), ("acks.lost", lost)],
        chart: None,
    })
}

/// With acks=1, records written before the freeze and lost anyway: they
/// had reached the leader, not yet the follower.
fn lagged(one: &Run) -> Option<String> {
    let lost = one.counts.phases[0][2];
    (lost > 0).then(|| {
        format!(
            "{lost} of the records acks=1 lost were written before the follower froze: they had reached the \
             leader, not yet the follower."
        )
    })
}

/// Which runs saw no new leader within the wait, as the end of a sentence.
fn unled(runs: &[Run]) -> String {
    runs.iter()
        .filter(|run| run.new_leader_after.is_none())
        .map(|run| {
            format!(
                " (with acks={}: none within the wait, until the old leader was back)",
                run.acks.setting()
            )
        })
        .collect()
}

/// One setting's run, from a new topic to the records read back.
async fn run_once(lab: &mut Lab, acks: Acks, rate: u64, steady: Duration) -> Result<Run, LabError> {
    let cluster = lab.infra.three()?;
    let bootstrap = cluster.bootstrap_servers();
    let topic = acks.topic();
    kafka::create_topic(
        &bootstrap,
        &TopicPlan::new(topic, 1)
            .assignment(&[&[LEADER, FOLLOWER]])
            .config("min.insync.replicas", 1)
            .config("unclean.leader.election.enable", false),
    )
    .await?;
    let inspector = Inspector::new(&bootstrap)?;
    wait_for_partition(&inspector, topic, Some(LEADER), &[LEADER, FOLLOWER]).await?;

    let started = Instant::now();
    let writer = Writer::start(&bootstrap, topic, acks, rate)?;
    // A new producer first connects and authenticates; its first records
    // wait for that, and must not still be waiting when the follower freezes.
    acknowledged(&writer, started, 1, Duration::from_secs(60)).await?;
    // Deliberate: the writer runs with both replicas up for this long.
    tokio::time::sleep(steady).await;
    let follower = Frozen::freeze(pid(lab, FOLLOWER)?)?;
    writer.phase(FROZEN);
    let frozen_at = Instant::now();
    let unreplicated = acknowledged(&writer, frozen_at, UNREPLICATED, FREEZE_AT_MOST).await;
    match unreplicated {
        // acks=all: no acknowledgement while the follower in the ISR is frozen.
        Ok(()) | Err(LabError::Timeout { .. }) => {}
        Err(e) => return Err(e),
    }
    super::replication::kill(lab.infra.three()?, LEADER.unsigned_abs())?;
    let killed_at = Instant::now();
    let unreplicated = writer.acknowledged_since(frozen_at);
    writer.phase(KILLED);
    follower.thaw()?;
    let new_leader_after =
        match wait_for_partition(&inspector, topic, Some(FOLLOWER), &[FOLLOWER]).await {
            Ok(()) => Some(killed_at.elapsed()),
            // Unclean election is off: with the follower out of the ISR, nobody
            // leads until the old leader is back. The counts say what that did.
            Err(LabError::Timeout { .. }) => None,
            Err(e) => return Err(e),
        };
    writer.phase(NEW_LEADER);
    // Deliberate: the writer goes on with the new leader for this long.
    tokio::time::sleep(steady).await;
    lab.infra.three()?.start().await?;
    let sent = writer.finish().await?;
    wait_for_partition(&inspector, topic, None, &[LEADER, FOLLOWER]).await?;
    let on_topic: BTreeSet<usize> = kafka::read_all(&bootstrap, topic, false)
        .await?
        .iter()
        .filter_map(|r| r.value.as_deref()?.parse().ok())
        .collect();

    Ok(Run {
        acks,
        unreplicated,
        frozen_for: killed_at - frozen_at,
        new_leader_after,
        counts: count(&sent, &on_topic, killed_at),
    })
}

/// What the records sent say, against the ids found on the topic.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    /// Per phase: written, acknowledged, acknowledged but not on the topic, failed.
    phases: [[usize; 4]; 4],
    /// Acknowledged records not on the topic, in all.
    lost: usize,
    /// The longest time between two acknowledgements.
    longest_gap: Duration,
    /// From the kill to the first acknowledgement after it.
    after_kill: Option<Duration>,
}

/// Counts `sent` (a record's id is its index) against `on_topic`.
fn count(sent: &[Sent], on_topic: &BTreeSet<usize>, killed_at: Instant) -> Counts {
    let mut phases = [[0; 4]; 4];
    let mut acknowledged_at = Vec::new();
    let mut lost = 0;
    for (id, record) in sent.iter().enumerate() {
        let Some(counts) = phases.get_mut(record.phase) else {
            continue;
        };
        counts[0] += 1;
        if let Some(at) = record.acknowledged {
            acknowledged_at.push(at);
            counts[1] += 1;
            if !on_topic.contains(&id) {
                counts[2] += 1;
                lost += 1;
            }
        }
        if record.failed.is_some() {
            counts[3] += 1;
        }
    }
    acknowledged_at.sort_unstable();
    let after_kill = acknowledged_at
        .iter()
        .find(|at| **at >= killed_at)
        .map(|at| *at - killed_at);
    let longest_gap = acknowledged_at
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap_or_default();
    Counts {
        phases,
        lost,
        longest_gap,
        after_kill,
    }
}

/// Waits until `writer` has had `count` records written at or after
/// `since` acknowledged.
async fn acknowledged(
    writer: &Writer,
    since: Instant,
    count: usize,
    timeout: Duration,
) -> Result<(), LabError> {
    progress::until(
        &format!("the leader to acknowledge {count} records"),
        timeout,
        Duration::from_millis(20),
        || async {
            let acknowledged = writer.acknowledged_since(since);
            Ok(if acknowledged >= count {
                Seen::Ready(())
            } else {
                Seen::NotYet(format!("{acknowledged} acknowledged"))
            })
        },
    )
    .await
}

/// "1.2 s", or "none" for a time the run never reached.
fn seconds(time: Option<Duration>) -> String {
    time.map_or_else(
        || "none".to_owned(),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}

/// Waits until the partition of `topic` is led by `leader` (by any broker
/// if `None`) with exactly `isr` in sync (in any order).
async fn wait_for_partition(
    inspector: &Inspector,
    topic: &str,
    leader: Option<i32>,
    isr: &[i32],
) -> Result<(), LabError> {
    let wanted: BTreeSet<i32> = isr.iter().copied().collect();
    let led_by = leader.map_or_else(|| "a broker".to_owned(), |b| format!("broker {b}"));
    progress::until(
        &format!("{topic} to be led by {led_by} with ISR {isr:?}"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            Ok(match inspector.partitions(topic).await {
                Ok(partitions) => match partitions.first() {
                    Some(p)
                        if leader.map_or(p.leader >= 0, |b| p.leader == b)
                            && p.isr.iter().copied().collect::<BTreeSet<_>>() == wanted =>
                    {
                        Seen::Ready(())
                    }
                    Some(p) => Seen::NotYet(format!("leader {}, ISR {:?}", p.leader, p.isr)),
                    None => Seen::NotYet("no partition".into()),
                },
                // A metadata request to the dead broker fails; the next one goes elsewhere.
                Err(e) => Seen::NotYet(platform::error::chain(&e)),
            })
        },
    )
    .await
}

/// The pid of the lab's broker `node`.
fn pid(lab: &mut Lab, node: i32) -> Result<u32, LabError> {
    lab.infra
        .three()?
        .broker_mut(node.unsigned_abs())
        .and_then(|broker| broker.pid())
        .ok_or_else(|| {
            LabError::Infra(devinfra::InfraError::Config(format!(
                "broker {node} of the lab's cluster is not running"
            )))
        })
}

/// A broker frozen with SIGSTOP; thawed when dropped, so that an error
/// half-way never leaves it frozen for the scenarios after this one.
struct Frozen {
    pid: Option<u32>,
}

impl Frozen {
    fn freeze(pid: u32) -> Result<Self, LabError> {
        eprintln!("lab:     SIGSTOP Kafka node {FOLLOWER}");
        process::send_signal(pid, Signal::Stop)?;
        Ok(Frozen { pid: Some(pid) })
    }

    fn thaw(mut self) -> Result<(), LabError> {
        eprintln!("lab:     SIGCONT Kafka node {FOLLOWER}");
        match self.pid.take() {
            Some(pid) => Ok(process::send_signal(pid, Signal::Cont)?),
            None => Ok(()),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take()
            && let Err(e) = process::send_signal(pid, Signal::Cont)
        {
            eprintln!("lab: thawing Kafka node {FOLLOWER}: {e}");
        }
    }
}

/// A producer with the setting's acks writing numbered records at a steady
/// rate, noting for each one its phase and when it was acknowledged.
struct Writer {
    sent: Arc<Mutex<(usize, Vec<Sent>)>>,
    /// Stops the writer when the scenario ends early (an error half-way).
    _stop: tokio_util::sync::DropGuard,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), LabError>>,
}

impl Writer {
    fn start(
        bootstrap: &str,
        topic: &'static str,
        acks: Acks,
        rate: u64,
    ) -> Result<Self, LabError> {
        let producer = kafka::producer(
            bootstrap,
            &[
                ("acks", acks.setting()),
                // acks=1 rules idempotence out; off for both, so that acks is the only difference.
                ("enable.idempotence", "false"),
                // Longer than any stall of the run: a record fails only if something is really wrong.
                ("message.timeout.ms", "60000"),
            ],
        )?;
        let sent = Arc::new(Mutex::new((0, Vec::new())));
        let stop = tokio_util::sync::CancellationToken::new();
        let shared = sent.clone();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1) as u32);
            let mut deliveries = Vec::new();
            while !stopped.is_cancelled() {
                ticks.tick().await;
                let id = {
                    let mut sent = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let phase = sent.0;
                    sent.1.push(Sent {
                        phase,
                        sent_at: Instant::now(),
                        acknowledged: None,
                        failed: None,
                    });
                    sent.1.len() - 1
                };
                let value = id.to_string();
                let delivery = producer
                    .send_result(FutureRecord::to(topic).key(&value).payload(&value))
                    .map_err(|(e, _)| e)
                    .step(format!("writing to {topic}"))?;
                let shared = shared.clone();
                deliveries.push(tokio::spawn(async move {
                    let result = delivery.await;
                    let mut sent = shared.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(record) = sent.1.get_mut(id) {
                        match result {
                            Ok(Ok(_)) => record.acknowledged = Some(Instant::now()),
                            Ok(Err((e, _))) => record.failed = Some(e.to_string()),
                            Err(_) => record.failed = Some("delivery report dropped".into()),
                        }
                    }
                }));
            }
            for delivery in deliveries {
                delivery.await.step("waiting for a delivery report")?;
            }
            Ok(())
        });
        Ok(Writer {
            sent,
            _stop: stop.clone().drop_guard(),
            stop,
            task,
        })
    }

    /// Records written at or after `since` and acknowledged by now.
    fn acknowledged_since(&self, since: Instant) -> usize {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.1
            .iter()
            .filter(|r| r.sent_at >= since && r.acknowledged.is_some())
            .count()
    }

    /// Counts the records written from now on in `phase`.
    fn phase(&self, phase: usize) {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).0 = phase;
    }

    /// Stops writing, waits for every delivery report, and returns every record sent.
    async fn finish(self) -> Result<Vec<Sent>, LabError> {
        self.stop.cancel();
        self.task.await.step("stopping the writer")??;
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sent.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(phase: usize, acknowledged: Option<Instant>) -> Sent {
        Sent {
            phase,
            sent_at: Instant::now(),
            acknowledged,
            failed: None,
        }
    }

    #[test]
    fn an_acknowledged_record_missing_from_the_topic_is_lost_and_the_stall_is_the_longest_gap() {
        let start = Instant::now();
        let at = |ms: u64| Some(start + Duration::from_millis(ms));
        let killed_at = start + Duration::from_millis(300);
        let records = [
            sent(0, at(10)),
            sent(FROZEN, at(200)),
            sent(FROZEN, None),
            sent(KILLED, at(4_500)),
            sent(NEW_LEADER, at(4_510)),
        ];
        // Record 1 was acknowledged and is gone; 2 was never acknowledged, so not promised.
        let on_topic = BTreeSet::from([0, 3, 4]);
        let counts = count(&records, &on_topic, killed_at);
        assert_eq!(
            counts.phases,
            [[1, 1, 0, 0], [2, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
        );
        assert_eq!(counts.lost, 1);
        assert_eq!(counts.longest_gap, Duration::from_millis(4_300));
        assert_eq!(counts.after_kill, Some(Duration::from_millis(4_200)));
    }
}
