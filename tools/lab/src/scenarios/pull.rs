//! 11. Pull lets the consumer set its pace.
//!
//! A producer writes at a fixed rate. A consumer takes 10 ms per record
//! (a deliberate processing delay) until it "speeds up" to 2 ms per record
//! two thirds into the production. The group's lag (end offsets minus its
//! committed offsets, as any lag monitor sees it) is sampled four times a
//! second until it is back at zero. Whether the slow consumer held the
//! producer back is measured where it would show: the time from each send
//! to its acknowledgement, while the consumer is slow, against a baseline
//! of the same producer writing at the same rate to a topic nobody reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use crate::chart::{Chart, LagSeries};
use crate::error::{Refutes, Step};
use crate::kafka::{self, Inspector, Next, TopicPlan};
use crate::progress;
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "pull.orders";
/// The baseline's topic: the same rate, no consumer.
const BASELINE: &str = "pull.baseline";
const GROUP: &str = "pull-slow";
const PARTITIONS: i32 = 3;
/// The consumer's processing time per record, before and after it speeds up.
const SLOW: Duration = Duration::from_millis(10);
const FAST: Duration = Duration::from_millis(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How much slower than the baseline the median acknowledgement may be
/// while the consumer is slow for "the producer is unaffected" to hold:
/// `SLACK_FACTOR` times the baseline's median plus `SLACK` (a busy machine
/// varies; a producer held back by its consumer would wait for it, seconds
/// at this lag).
const SLACK_FACTOR: u32 = 5;
const SLACK: Duration = Duration::from_millis(20);

/// One record the producer sent: when (since it started) and how long its
/// acknowledgement took (`None`: not acknowledged).
type Sent = (Duration, Option<Duration>);

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let rate: u64 = 200;
    let seconds: u64 = lab.pick(6, 30);
    let planned = rate * seconds;
    let speed_up_at = Duration::from_secs(seconds * 2 / 3);
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(&bootstrap, &TopicPlan::new(TOPIC, PARTITIONS)).await?;
    kafka::create_topic(&bootstrap, &TopicPlan::new(BASELINE, PARTITIONS)).await?;
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;

    // The baseline: the same producer and rate, a topic nobody reads. A few
    // records first, so that the producer's connection and the topic's
    // metadata are not part of the measured acknowledgements.
    super::write_all(
        &producer,
        BASELINE,
        (0..10).map(|i| (format!("warm-up-{i}"), i.to_string())),
    )
    .await?;
    let baseline_records = rate * lab.pick(2, 5);
    let (_, baseline) = produce(producer.clone(), BASELINE, rate, baseline_records).await?;

    // The consumer: auto-commit of what it has processed, every 200 ms.
    let fast = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicU64::new(0));
    let consumer = kafka::consumer(
        &bootstrap,
        GROUP,
        &[
            ("enable.auto.commit", "true"),
            ("auto.commit.interval.ms", "200"),
        ],
    )?;
    consumer
        .subscribe(&[TOPIC])
        .step("subscribing the slow consumer")?;
    let consuming = {
        let (fast, processed) = (fast.clone(), processed.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(Next::Record(_)) =
                    kafka::next(&consumer, Duration::from_secs(1), "consuming").await
                {
                    // Deliberate: the consumer's processing time per record.
                    let pace = if fast.load(Ordering::SeqCst) {
                        FAST
                    } else {
                        SLOW
                    };
                    tokio::time::sleep(pace).await;
                    processed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    // Wait until the consumer has its partitions, so the first sample is at zero.
    let inspector = Inspector::for_group(&bootstrap, GROUP)?;
    let probe = Inspector::new(&bootstrap)?;
    probe.stable_group(GROUP, PARTITIONS as usize, None).await?;

    // The producer: one record every 1/rate s, acknowledged in the background.
    let started = Instant::now();
    let producing = tokio::spawn(produce(producer.clone(), TOPIC, rate, planned));

    let mut samples = Vec::new();
    let mut sped_up = false;
    let mut producer_done_at = None;
    let mut producing = Some(producing);
    let mut produced: (Duration, Vec<Sent>) = (Duration::ZERO, Vec::new());
    let mut max_lag = 0;
    let mut failed_samples = 0;
    let mut phase_ends = Vec::new();
    let deadline = started + Duration::from_secs(seconds * 4 + 60);
    let mut ticker = progress::Ticker::new("sampling the slow consumer's lag");
    loop {
        let now = started.elapsed();
        if !sped_up && now >= speed_up_at {
            fast.store(true, Ordering::SeqCst);
            sped_up = true;
            phase_ends.push((now, processed.load(Ordering::SeqCst)));
        }
        if let Some(task) = producing.take_if(|t| t.is_finished()) {
            produced = task.await.step("producing at a steady rate")??;
            producer_done_at = Some(started.elapsed());
        }
        // A failed sample stays a gap: no value stands in for one not seen.
        let lag = inspector.group_lag(TOPIC).await.ok();
        if let Some(lag) = lag {
            max_lag = max_lag.max(lag);
        } else {
            failed_samples += 1;
        }
        samples.push((now.as_secs_f64(), lag));
        if producer_done_at.is_some() && sped_up && lag == Some(0) {
            phase_ends.push((started.elapsed(), processed.load(Ordering::SeqCst)));
            break;
        }
        let seen = || lag.map_or_else(|| "lag not sampled".to_owned(), |lag| format!("lag {lag}"));
        if let Err(e) = progress::check_deadline("the lag to drain", &ticker, deadline, seen) {
            // The run goes on with the next scenario: stop this one's clients.
            consuming.abort();
            if let Some(task) = producing {
                task.abort();
            }
            return Err(e).refutes("pull.own-pace");
        }
        ticker.tick(|| format!("{} at {:.0} s", seen(), now.as_secs_f64()));
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    consuming.abort();
    let (sent_in, sent) = produced;
    let acknowledged = sent.iter().filter(|(_, ack)| ack.is_some()).count() as u64;
    let (while_slow, after): (Vec<Sent>, Vec<Sent>) =
        sent.iter().copied().partition(|(at, _)| *at < speed_up_at);
    let latencies = [
        (
            "baseline: the same rate, a topic nobody reads",
            Latency::of(&baseline),
        ),
        ("while the consumer was slow", Latency::of(&while_slow)),
        ("after it sped up", Latency::of(&after)),
    ];
    let mut acks = Table::new(&[
        "producer acknowledgements",
        "records",
        "acknowledged",
        "median",
        "p99",
        "longest",
    ]);
    for (name, latency) in &latencies {
        acks.row(vec![
            (*name).to_owned(),
            latency.records.to_string(),
            latency.acknowledged.to_string(),
            millis(latency.median),
            millis(latency.p99),
            millis(latency.longest),
        ]);
    }
    let (baseline_latency, slow_latency) = (latencies[0].1, latencies[1].1);
    let drained_at = phase_ends.last().map_or(Duration::ZERO, |p| p.0);
    let slow_processed = phase_ends.first().map_or(0, |p| p.1);
    let producer_rate = planned as f64 / sent_in.as_secs_f64().max(1e-6);
    let slow_rate = slow_processed as f64 / speed_up_at.as_secs_f64().max(1e-6);
    let drain_rate = (planned - slow_processed) as f64
        / (drained_at.saturating_sub(speed_up_at))
            .as_secs_f64()
            .max(1e-6);

    let mut table = Table::new(&["who", "records", "seconds", "records/s"]);
    table.row(vec![
        "producer (planned: 200/s)".into(),
        acknowledged.to_string(),
        format!("{:.1}", sent_in.as_secs_f64()),
        format!("{producer_rate:.0}"),
    ]);
    table.row(vec![
        "consumer while slow (10 ms per record)".into(),
        slow_processed.to_string(),
        format!("{:.1}", speed_up_at.as_secs_f64()),
        format!("{slow_rate:.0}"),
    ]);
    table.row(vec![
        format!(
            "consumer after speeding up ({} ms per record), to lag 0",
            FAST.as_millis()
        ),
        (planned - slow_processed).to_string(),
        format!(
            "{:.1}",
            drained_at.saturating_sub(speed_up_at).as_secs_f64()
        ),
        format!("{drain_rate:.0}"),
    ]);
    table.row(vec![
        "largest lag".into(),
        max_lag.to_string(),
        String::new(),
        String::new(),
    ]);
    let producer_unaffected = acknowledged == planned
        && sent_in.as_secs_f64() <= seconds as f64 * 1.1 + 0.5
        && slow_latency.unaffected_against(&baseline_latency);
    let verdict = if producer_unaffected && max_lag as f64 >= planned as f64 * 0.15 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "producer wrote {acknowledged} of {planned} in {:.1} s (planned {seconds} s), median \
             acknowledgement {} while the consumer was slow against {} in the baseline; largest lag {max_lag}",
            sent_in.as_secs_f64(),
            millis(slow_latency.median),
            millis(baseline_latency.median),
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` ({PARTITIONS} partitions); a producer writes {planned} records at {rate}/s; one \
             consumer (group `{GROUP}`, offsets auto-committed every 200 ms) takes {} ms per record for the \
             first {} s, then {} ms; the group's lag is sampled every {} ms until it is 0. Before it, the same \
             producer writes {baseline_records} records at {rate}/s to `{BASELINE}`, which nobody reads: the \
             baseline of its acknowledgement times. The producer is unaffected when its median \
             acknowledgement while the consumer is slow is at most {SLACK_FACTOR} times the baseline's plus {} \
             ms.",
            SLOW.as_millis(),
            speed_up_at.as_secs(),
            FAST.as_millis(),
            SAMPLE_EVERY.as_millis(),
            SLACK.as_millis()
        ),
        tables: vec![table, acks],
        notes: vec![
            format!(
                "{} lag samples, {failed_samples} of them failed (gaps in the chart).",
                samples.len()
            ),
            "The broker keeps the records whatever the consumer does (as long as retention allows, scenario 9); \
             the consumer asks for the next ones when it is ready. Back-pressure, if wanted, is the \
             application's choice (pause, rate limits), not Kafka's."
                .to_owned(),
        ],
        verdicts: vec![("pull.own-pace", verdict)],
        chart: Some(Chart::Lag(LagSeries {
            samples,
            speed_up_at: speed_up_at.as_secs_f64(),
            producer_done_at: producer_done_at.map_or(0.0, |d| d.as_secs_f64()),
        })),
    })
}

/// Writes `count` records to `topic` at `rate` per second (one every
/// 1/rate s, not waiting for acknowledgements); returns how long the sends
/// took and, per record, when it was sent and how long its acknowledgement took.
async fn produce(
    producer: rdkafka::producer::FutureProducer,
    topic: &'static str,
    rate: u64,
    count: u64,
) -> Result<(Duration, Vec<Sent>), LabError> {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate as u32);
    let mut deliveries = Vec::with_capacity(count as usize);
    for i in 0..count {
        ticks.tick().await;
        let (key, value) = (format!("order-{i}"), i.to_string());
        let sent_at = Instant::now();
        let delivery = producer
            .send_result(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(&key)
                    .payload(&value),
            )
            .map_err(|(e, _)| e);
        // Each acknowledgement is timed as it comes, not when it is collected.
        deliveries.push(tokio::spawn(async move {
            let acknowledged = match delivery {
                Ok(delivery) => matches!(delivery.await, Ok(Ok(_))),
                Err(_) => false,
            };
            (sent_at - started, acknowledged.then(|| sent_at.elapsed()))
        }));
    }
    let sent_in = started.elapsed();
    let mut sent = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        sent.push(delivery.await.step("waiting for an acknowledgement")?);
    }
    Ok((sent_in, sent))
}

/// Acknowledgement times of a set of sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Latency {
    records: usize,
    acknowledged: usize,
    median: Option<Duration>,
    p99: Option<Duration>,
    longest: Option<Duration>,
}

impl Latency {
    /// From the sends, counting the acknowledged ones.
    fn of(sent: &[Sent]) -> Self {
        let mut times: Vec<Duration> = sent.iter().filter_map(|(_, ack)| *ack).collect();
        times.sort_unstable();
        let at = |share: f64| {
            let last = times.len().checked_sub(1)?;
            times.get((last as f64 * share).round() as usize).copied()
        };
        Latency {
            records: sent.len(),
            acknowledged: times.len(),
            median: at(0.5),
            p99: at(0.99),
            longest: times.last().copied(),
        }
    }

    /// Its median is within the slack of `baseline`'s (both measured).
    fn unaffected_against(&self, baseline: &Latency) -> bool {
        match (self.median, baseline.median) {
            (Some(median), Some(base)) => median <= base * SLACK_FACTOR + SLACK,
            _ => false,
        }
    }
}

/// "12.3 ms", or "none" when nothing was measured.
fn millis(time: Option<Duration>) -> String {
    time.map_or_else(
        || "none".to_owned(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(millis: &[u64]) -> Vec<Sent> {
        millis
            .iter()
            .enumerate()
            .map(|(i, &ms)| {
                (
                    Duration::from_millis(i as u64 * 5),
                    Some(Duration::from_millis(ms)),
                )
            })
            .collect()
    }

    #[test]
    fn a_producer_is_unaffected_only_while_its_median_acknowledgement_stays_near_the_baseline() {
        let baseline = Latency::of(&sent(&[2, 3, 3, 4, 50]));
        assert_eq!(baseline.median, Some(Duration::from_millis(3)));
        assert_eq!(baseline.longest, Some(Duration::from_millis(50)));
        // 3 ms × 5 + 20 ms = 35 ms at most.
        assert!(Latency::of(&sent(&[4, 5, 6, 8, 900])).unaffected_against(&baseline));
        // A producer that waits for its consumer: seconds.
        assert!(!Latency::of(&sent(&[400, 900, 1500, 2000, 2500])).unaffected_against(&baseline));
        // Nothing acknowledged is not "unaffected".
        let lost: Vec<Sent> = vec![(Duration::ZERO, None); 3];
        let none = Latency::of(&lost);
        assert_eq!((none.records, none.acknowledged, none.median), (3, 0, None));
        assert!(!none.unaffected_against(&baseline));
    }
}
