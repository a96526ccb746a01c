//! 11. Pull lets the consumer set its pace.
//!
//! A producer writes at a fixed rate. A consumer takes 10 ms per record
//! (a deliberate processing delay) until it "speeds up" to 2 ms per record
//! two thirds into the production. The group's lag (end offsets minus its
//! committed offsets, as any lag monitor sees it) is sampled four times a
//! second until it is back at zero. The producer's achieved rate shows
//! whether the slow consumer held it back.

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
const GROUP: &str = "pull-slow";
const PARTITIONS: i32 = 3;
/// The consumer's processing time per record, before and after it speeds up.
const SLOW: Duration = Duration::from_millis(10);
const FAST: Duration = Duration::from_millis(2);
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let rate: u64 = 200;
    let seconds: u64 = lab.pick(6, 30);
    let planned = rate * seconds;
    let speed_up_at = Duration::from_secs(seconds * 2 / 3);
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(&bootstrap, &TopicPlan::new(TOPIC, PARTITIONS)).await?;

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
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    let started = Instant::now();
    let producing = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate as u32);
            let mut deliveries = Vec::with_capacity(planned as usize);
            for i in 0..planned {
                ticks.tick().await;
                let (key, value) = (format!("order-{i}"), i.to_string());
                deliveries.push(
                    producer
                        .send_result(
                            rdkafka::producer::FutureRecord::to(TOPIC)
                                .key(&key)
                                .payload(&value),
                        )
                        .map_err(|(e, _)| e),
                );
            }
            let sent_in = started.elapsed();
            let mut acknowledged = 0;
            for delivery in deliveries {
                if let Ok(delivery) = delivery
                    && let Ok(Ok(_)) = delivery.await
                {
                    acknowledged += 1;
                }
            }
            (sent_in, acknowledged)
        })
    };

    let mut samples = Vec::new();
    let mut sped_up = false;
    let mut producer_done_at = None;
    let mut producing = Some(producing);
    let mut produced = (Duration::ZERO, 0u64);
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
            produced = task.await.step("producing at a steady rate")?;
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
    let (sent_in, acknowledged) = produced;
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
    let producer_unaffected =
        acknowledged == planned && sent_in.as_secs_f64() <= seconds as f64 * 1.1 + 0.5;
    let verdict = if producer_unaffected && max_lag as f64 >= planned as f64 * 0.15 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "producer wrote {acknowledged} of {planned} in {:.1} s (planned {seconds} s); largest lag {max_lag}",
            sent_in.as_secs_f64()
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` ({PARTITIONS} partitions); a producer writes {planned} records at {rate}/s; one \
             consumer (group `{GROUP}`, offsets auto-committed every 200 ms) takes {} ms per record for the \
             first {} s, then {} ms; the group's lag is sampled every {} ms until it is 0.",
            SLOW.as_millis(),
            speed_up_at.as_secs(),
            FAST.as_millis(),
            SAMPLE_EVERY.as_millis()
        ),
        tables: vec![table],
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
