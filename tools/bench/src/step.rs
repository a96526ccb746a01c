//! One rate step: the `loadgen` binary places orders open-loop at a fixed
//! rate for a fixed time while the queues are sampled; then the step waits
//! until every accepted order has its invoice and its shipment, and reads the
//! latencies.
//!
//! **Bounded**, the test of a sustained rate `R`, is defined on the samples
//! taken while requests were being sent (every [`SAMPLE_INTERVAL`]), for each
//! of the three queues (outbox backlog, invoicing lag, shipping lag):
//!
//! - it never holds more than [`MAX_QUEUED_SECONDS`] of arrivals
//!   (`R × 2 s + 100`: the slack covers the one-second offset commit interval);
//! - its [`trend`] (mean of the last third of the window against the middle
//!   third) grows by at most [`MAX_GROWTH`] of the arrival rate (`0.1 × R`
//!   per second);
//!
//! and, on the client's side, at least 99.9 % of the scheduled requests were
//! answered `201 Created`, and the requests waiting for their answer stayed a
//! bounded queue too: `POST /orders` p99, from each request's scheduled
//! time, at most [`MAX_QUEUED_SECONDS`] (at R orders/s a request that waited
//! 2 s had about `R × 2 s` others waiting with it). A rate that passes all of
//! these is *sustained*.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use loadgen::open_loop::{Outcome, Summary};
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;
use uuid::Uuid;

use super::cpu::{CpuCost, CpuMeter};
use super::latency::{self, Percentiles};
use super::sample::{Probe, Sample};
use super::{BenchError, progress};
use devinfra::InfraError;
use devinfra::private::PrivateInfra;
use platform::services::{self, ORDER_SERVICE};

/// How often the queues are sampled during a step.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// A queue may hold at most this many seconds of arrivals (plus [`QUEUE_SLACK`]).
pub(crate) const MAX_QUEUED_SECONDS: f64 = 2.0;

/// Records of slack on top of [`MAX_QUEUED_SECONDS`] (small rates, commit interval).
pub(crate) const QUEUE_SLACK: f64 = 100.0;

/// A queue may grow by at most this fraction of the arrival rate per second.
pub(crate) const MAX_GROWTH: f64 = 0.1;

/// The share of scheduled requests that must be answered 201.
pub(crate) const MIN_CREATED: f64 = 0.999;

/// What one step runs.
#[derive(Debug, Clone)]
pub(crate) struct StepPlan {
    /// Orders per second.
    pub(crate) rate: f64,
    /// How long requests are started for.
    pub(crate) duration: Duration,
    /// Seed of the orders (differs per step).
    pub(crate) seed: u64,
    /// How long to wait after the load for every effect.
    pub(crate) settle_timeout: Duration,
}

/// The largest value and the trend of one queue during the load.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct QueueShape {
    /// Largest sampled length.
    pub(crate) peak: i64,
    /// Growth while the load ran ([`trend`]), records/s.
    pub(crate) trend_per_s: f64,
}

/// What one step measured.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct StepResult {
    /// Offered orders per second.
    pub(crate) rate: f64,
    /// The load generator's counts.
    pub(crate) client: ClientCounts,
    /// Requests answered 201 per second of sending.
    pub(crate) achieved_rate: f64,
    /// `POST /orders`, from due time to answer (201s only).
    pub(crate) http: Option<Percentiles>,
    /// Order commit → invoice commit.
    pub(crate) invoice: Option<Percentiles>,
    /// Order commit → shipment commit.
    pub(crate) shipment: Option<Percentiles>,
    /// Order commit → the later of the invoice's and the shipment's commit.
    pub(crate) both: Option<Percentiles>,
    /// Accepted orders that had no invoice when the step gave up waiting.
    pub(crate) missing_invoices: usize,
    /// Accepted orders that had no shipment then.
    pub(crate) missing_shipments: usize,
    /// Seconds from the last request to the moment every effect was there.
    pub(crate) settled_after_s: Option<f64>,
    /// The outbox backlog during the load.
    pub(crate) outbox: QueueShape,
    /// The invoicing group's lag during the load.
    pub(crate) invoicing_lag: QueueShape,
    /// The shipping group's lag during the load.
    pub(crate) shipping_lag: QueueShape,
    /// Largest RSS of each service during the load, KiB ([`Service::ALL`] order).
    pub(crate) rss_peak_kib: Vec<u64>,
    /// CPU time per accepted order of each process tree, from the first
    /// request until every effect was committed.
    pub(crate) cpu: CpuCost,
    /// The wall time `cpu` was measured over, seconds (for what idle
    /// processes burn in that time, [`CpuCost::above`]).
    pub(crate) cpu_window_s: f64,
    /// Whether the rate is sustained (see the module documentation).
    pub(crate) sustained: bool,
    /// Why not, when it is not.
    pub(crate) reasons: Vec<String>,
}

/// The client's side of a step.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct ClientCounts {
    pub(crate) scheduled: usize,
    pub(crate) created: usize,
    pub(crate) other_status: usize,
    pub(crate) failed: usize,
    pub(crate) not_sent: usize,
    /// How far the client fell behind its own schedule at worst, ms.
    pub(crate) max_send_delay_ms: f64,
}

/// Runs one step; `effects_before` is how many invoices (and shipments) exist
/// already. Returns the result and the new count.
pub(crate) async fn run_step(
    infra: &PrivateInfra,
    probe: &Probe,
    meter: &CpuMeter,
    loadgen: &Path,
    plan: &StepPlan,
    effects_before: i64,
) -> Result<(StepResult, i64), BenchError> {
    let order_url = format!("{}/orders", infra.stack.base_url(ORDER_SERVICE));
    let out = infra.dir().join(format!("step-{}.jsonl", plan.rate));
    let (stop, stopped) = watch::channel(false);
    let sampling = probe.sample_until(SAMPLE_INTERVAL, stopped);
    let cpu_before = meter.read();
    let cpu_since = Instant::now();
    let loading = async {
        let summary = run_loadgen(loadgen, &order_url, plan, &out).await?;
        let outcomes = read_outcomes(&out)?;
        let accepted: Vec<Uuid> = outcomes
            .iter()
            .filter_map(|o| o.order_id.as_deref())
            .filter_map(|id| id.parse().ok())
            .collect();
        let load_ended = Instant::now();
        progress(&format!(
            "  {} created of {} scheduled; waiting for every invoice and shipment",
            summary.created, summary.scheduled
        ));
        let expected = effects_before + accepted.len() as i64;
        let settled = settle(infra, expected, plan.settle_timeout).await?;
        let settled_after = settled.then(|| load_ended.elapsed().as_secs_f64());
        // The load generator has been reaped: its time is in the reading.
        let cpu = CpuCost::between(&cpu_before, &meter.read(), accepted.len());
        let cpu_window_s = cpu_since.elapsed().as_secs_f64();
        let _ = stop.send(true);
        Ok::<_, BenchError>((
            summary,
            outcomes,
            accepted,
            settled_after,
            expected,
            (cpu, cpu_window_s),
        ))
    };
    let (samples, loaded) = tokio::join!(sampling, loading);
    let (summary, outcomes, accepted, settled_after_s, expected, (cpu, cpu_window_s)) = loaded?;
    let samples = samples?;

    let mut http = latency::histogram()?;
    for outcome in outcomes.iter().filter(|o| o.status == 201) {
        latency::record(&mut http, outcome.latency_us);
    }
    let e2e = latency::end_to_end(
        &infra.pools.orders,
        &infra.pools.invoicing,
        &infra.pools.shipping,
        &accepted,
    )
    .await?;
    let window = load_window(&samples, &summary);
    let result = judge(
        plan.rate,
        &summary,
        &window,
        &http,
        e2e,
        settled_after_s,
        &outcomes,
    );
    Ok((
        StepResult {
            cpu,
            cpu_window_s,
            ..result
        },
        expected,
    ))
}

/// Runs the load generator and returns its summary.
async fn run_loadgen(
    loadgen: &Path,
    url: &str,
    plan: &StepPlan,
    out: &Path,
) -> Result<Summary, BenchError> {
    let mut child = tokio::process::Command::new(loadgen)
        .arg("--url")
        .arg(url)
        .arg("--rate")
        .arg(plan.rate.to_string())
        .arg("--duration-secs")
        .arg(plan.duration.as_secs_f64().to_string())
        .arg("--seed")
        .arg(plan.seed.to_string())
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| InfraError::Spawn {
            program: loadgen.display().to_string(),
            source: e,
        })?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)
            .await
            .map_err(|e| InfraError::io("read the output of", loadgen, e))?;
    }
    let status = child.wait().await.map_err(|e| InfraError::Spawn {
        program: loadgen.display().to_string(),
        source: e,
    })?;
    if !status.success() {
        return Err(BenchError::Tool {
            tool: "loadgen",
            detail: format!("{status}; its messages are above"),
        });
    }
    serde_json::from_str(stdout.trim()).map_err(|e| BenchError::Tool {
        tool: "loadgen",
        detail: format!("unreadable summary {stdout:?}: {e}"),
    })
}

fn read_outcomes(path: &Path) -> Result<Vec<Outcome>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| InfraError::io("read", path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).map_err(|e| BenchError::Tool {
                tool: "loadgen",
                detail: format!("unreadable outcome in {}: {e}", path.display()),
            })
        })
        .collect()
}

/// Waits until both consumers hold `expected` effects; false if `timeout` passed first.
async fn settle(
    infra: &PrivateInfra,
    expected: i64,
    timeout: Duration,
) -> Result<bool, BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices")
            .fetch_one(&infra.pools.invoicing)
            .await?;
        let shipments: i64 = sqlx::query_scalar("SELECT count(*) FROM shipments")
            .fetch_one(&infra.pools.shipping)
            .await?;
        if invoices >= expected && shipments >= expected {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            progress(&format!(
                "  gave up waiting after {}s: {invoices} invoices and {shipments} shipments of {expected}",
                timeout.as_secs()
            ));
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A sample's time in seconds since the first request was due, and the sample.
type Timed = (f64, Sample);

/// The samples taken while requests were being sent.
fn load_window(samples: &[Sample], summary: &Summary) -> Vec<Timed> {
    let start = SystemTime::UNIX_EPOCH + Duration::from_millis(summary.started_unix_ms as u64);
    samples
        .iter()
        .filter_map(|s| {
            let t = s.at.duration_since(start).ok()?.as_secs_f64();
            (t <= summary.send_seconds).then(|| (t, s.clone()))
        })
        .collect()
}

fn shape(window: &[Timed], value: impl Fn(&Sample) -> i64) -> QueueShape {
    let peak = window.iter().map(|(_, s)| value(s)).max().unwrap_or(0);
    let points: Vec<(f64, f64)> = window.iter().map(|(t, s)| (*t, value(s) as f64)).collect();
    QueueShape {
        peak,
        trend_per_s: trend(&points),
    }
}

/// How fast a queue grew while the load ran: the change of its mean from the
/// middle third of the window to the last third, per second. The first third
/// (the queue filling up to its working level) is left out, and each mean
/// spans several offset-commit periods, so the one-second sawtooth of the
/// committed offsets averages out.
pub(crate) fn trend(points: &[(f64, f64)]) -> f64 {
    let Some(end) = points.last().map(|p| p.0) else {
        return 0.0;
    };
    let third = |from: f64, to: f64| {
        let part: Vec<&(f64, f64)> = points.iter().filter(|p| p.0 >= from && p.0 < to).collect();
        let n = part.len() as f64;
        (!part.is_empty()).then(|| {
            (
                part.iter().map(|p| p.0).sum::<f64>() / n,
                part.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
    };
    match (
        third(end / 3.0, 2.0 * end / 3.0),
        third(2.0 * end / 3.0, f64::INFINITY),
    ) {
        (Some((t1, v1)), Some((t2, v2))) if t2 > t1 => (v2 - v1) / (t2 - t1),
        _ => 0.0,
    }
}

fn judge(
    rate: f64,
    summary: &Summary,
    window: &[Timed],
    http: &Histogram<u64>,
    e2e: latency::EndToEnd,
    settled_after_s: Option<f64>,
    outcomes: &[Outcome],
) -> StepResult {
    let outbox = shape(window, |s| s.outbox);
    let invoicing_lag = shape(window, |s| s.invoicing_lag);
    let shipping_lag = shape(window, |s| s.shipping_lag);
    let mut rss_peak_kib = vec![0; services::ALL.len()];
    for (_, s) in window {
        for (peak, now) in rss_peak_kib.iter_mut().zip(&s.rss_kib) {
            *peak = (*peak).max(*now);
        }
    }
    let cap = rate * MAX_QUEUED_SECONDS + QUEUE_SLACK;
    let mut reasons = Vec::new();
    for (name, q) in [
        ("outbox backlog", outbox),
        ("invoicing lag", invoicing_lag),
        ("shipping lag", shipping_lag),
    ] {
        if q.peak as f64 > cap {
            reasons.push(format!("{name} reached {} (cap {cap:.0})", q.peak));
        }
        if q.trend_per_s > MAX_GROWTH * rate {
            reasons.push(format!("{name} grew {:.0}/s", q.trend_per_s));
        }
    }
    if window.len() < 2 {
        reasons.push("too few queue samples during the load".into());
    }
    reasons.extend(waited_too_long(http));
    let created_share = summary.created as f64 / summary.scheduled.max(1) as f64;
    if created_share < MIN_CREATED {
        reasons.push(format!(
            "{:.2} % of requests answered 201",
            created_share * 100.0
        ));
    }
    if settled_after_s.is_none() {
        reasons.push("not every order reached invoicing and shipping in time".into());
    }
    let first_error = outcomes.iter().find_map(|o| o.error.clone());
    if let Some(error) = first_error
        && summary.created < summary.scheduled
    {
        reasons.push(format!("first client error: {error}"));
    }
    StepResult {
        rate,
        client: ClientCounts {
            scheduled: summary.scheduled,
            created: summary.created,
            other_status: summary.other_status,
            failed: summary.failed,
            not_sent: summary.not_sent,
            max_send_delay_ms: summary.max_send_delay_us as f64 / 1000.0,
        },
        achieved_rate: summary.created as f64 / summary.send_seconds.max(1e-9),
        http: Percentiles::of(http),
        invoice: Percentiles::of(&e2e.invoice),
        shipment: Percentiles::of(&e2e.shipment),
        both: Percentiles::of(&e2e.both),
        missing_invoices: e2e.missing_invoices,
        missing_shipments: e2e.missing_shipments,
        settled_after_s,
        outbox,
        invoicing_lag,
        shipping_lag,
        rss_peak_kib,
        cpu: CpuCost::default(),
        cpu_window_s: 0.0,
        sustained: reasons.is_empty(),
        reasons,
    }
}

/// Why the requests waiting for their answer were not a bounded queue: the
/// `POST /orders` p99 (microseconds, from the scheduled times) above
/// [`MAX_QUEUED_SECONDS`]; `None` when they were.
fn waited_too_long(http: &Histogram<u64>) -> Option<String> {
    let p99_s = http.value_at_quantile(0.99) as f64 / 1e6;
    (p99_s > MAX_QUEUED_SECONDS).then(|| {
        format!(
            "POST /orders p99 {p99_s:.1} s: requests queued for more than {MAX_QUEUED_SECONDS:.0} s"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_wait_longer_than_the_queue_bound_are_not_sustained() {
        let mut quick = latency::histogram().unwrap();
        let mut queued = latency::histogram().unwrap();
        for i in 0..1000u64 {
            latency::record(&mut quick, 2_000 + i * 100);
            // the answers fall ever further behind their schedule: a growing queue
            latency::record(&mut queued, 5_000 + i * 2_400);
        }
        assert_eq!(waited_too_long(&quick), None);
        let why = waited_too_long(&queued).expect("a queue of 2.4 s is not bounded");
        assert!(why.contains("POST /orders p99 2.4 s"), "{why}");
    }

    #[test]
    fn the_trend_of_a_line_is_its_gradient() {
        let line: Vec<(f64, f64)> = (0..30).map(|t| (t as f64, 3.0 * t as f64 + 7.0)).collect();
        assert!((trend(&line) - 3.0).abs() < 1e-9);
        assert_eq!(trend(&[(1.0, 5.0)]), 0.0);
        assert_eq!(trend(&[]), 0.0);
    }

    #[test]
    fn a_queue_that_keeps_growing_is_not_bounded_but_a_sawtooth_is() {
        let at = SystemTime::UNIX_EPOCH;
        let sample = |v: i64| Sample {
            at,
            outbox: v,
            invoicing_lag: 0,
            shipping_lag: 0,
            rss_kib: vec![0; services::ALL.len()],
        };
        let growing: Vec<Timed> = (0..40).map(|i| (i as f64 * 0.5, sample(i * 100))).collect();
        assert!(shape(&growing, |s| s.outbox).trend_per_s > MAX_GROWTH * 1000.0);
        let sawtooth: Vec<Timed> = (0..40)
            .map(|i| (i as f64 * 0.5, sample(if i % 2 == 0 { 50 } else { 900 })))
            .collect();
        let q = shape(&sawtooth, |s| s.outbox);
        assert!(q.trend_per_s.abs() < MAX_GROWTH * 1000.0, "{q:?}");
        assert_eq!(q.peak, 900);
    }
}
