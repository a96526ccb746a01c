//! The benchmark (`cargo xtask bench`): throughput and end-to-end latency of the order flow,
//! side by side with what the same machine's PostgreSQL and Kafka do at best.
//!
//! A run owns its infrastructure ([`devinfra::private::PrivateInfra`]: a single-node Kafka,
//! a PostgreSQL with commit timestamps, the three services built with the
//! chosen profile, all on free ports under `<infra dir>/bench/<run>`) and goes
//! through these phases, printing progress to stderr:
//!
//! 1. **Idle footprint**: each service's RSS right after start-up.
//! 2. **Warm-up** ([`WarmUp`]): rounds at 100 orders/s until the broker's CPU
//!    per order settles.
//! 3. **Rate steps** ([`step`]): open-loop load from the `loadgen` binary at
//!    100, 200, 500, 1 000, 2 000 orders/s, then ×1.5 upward, each for a fixed
//!    time, until a step is not sustained (its queues were not bounded, see
//!    [`step`]); then up to three rates between the highest sustained and the
//!    lowest unsustained one narrow the saturation point down. Each step reports the HTTP latency of `POST /orders` and the
//!    end-to-end latency from the order's commit to the invoice's and the
//!    shipment's commit ([`latency`]), with the queues and memory sampled
//!    meanwhile ([`sample`]) and the CPU time per order of every process
//!    tree ([`cpu`]).
//! 4. **Ceilings** ([`ceilings`]), with the consumers stopped and the relay
//!    held off: pgbench with one order's transaction (with and without its
//!    NOTIFY; PostgreSQL's and pgbench's CPU per transaction), and Kafka's
//!    ProducerPerformance with records the size of ours.
//! 5. **Relay drain** ([`drain`]): 100 000 events in the outbox, then the relay
//!    released and timed until the outbox is empty.
//!
//! ProducerPerformance and the drain each run twice, through SCRAM and
//! through a listener without authentication that only this broker has,
//! and new clients are timed to their first answer through both
//! ([`scram`]): what authentication costs, before and after in one run.
//!
//! The results become a markdown report and an SVG plot ([`report`], [`plot`]).
//! A smoke mode ([`BenchOptions::smoke`]) goes through every phase in seconds
//! with a debug build; `xtask/tests/bench_smoke.rs` runs it in `cargo xtask test`.

mod ceilings;
mod cpu;
mod drain;
mod latency;
mod machine;
mod plot;
mod report;
mod sample;
mod scram;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devinfra::private::{PrivateInfra, PrivatePlan};
use devinfra::stack::{Profile, StackError, build_binary};
use devinfra::{DevInfra, InfraError, KafkaRuntime, prereq};
use orderflow_client::ClientError;
use platform::services::{self, ORDER_SERVICE};

pub use report::BenchResults;

use ceilings::{PgbenchResult, ProducerPlan, ProducerResult};
use cpu::{CpuCost, CpuMeter, Part};
use drain::EventShape;
use machine::Machine;
use sample::{Probe, rss_kib};
use scram::{Listener, Listeners, ScramCost};
use step::{StepPlan, StepResult};

/// How many rates are tried between the highest sustained and the lowest
/// unsustained rate once saturation is found.
const MAX_REFINEMENTS: usize = 3;

/// The granularity of those rates (orders/s).
const REFINE_STEP: f64 = 25.0;

/// How a benchmark run is sized and where it writes.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// "full", "smoke" or "custom": shown in the report.
    pub mode: String,
    /// The rates (orders/s) run first, in order.
    pub rates: Vec<f64>,
    /// After the last of `rates`, keep going ×1.5 until a rate is not sustained.
    pub until_saturated: bool,
    /// No rate above this is tried.
    pub max_rate: f64,
    /// How long each rate runs.
    pub duration: Duration,
    /// How long each warm-up round runs (see [`WarmUp`]).
    pub warm_up_round: Duration,
    /// The warm-up ends after this even if the cost of an order still moves.
    pub warm_up_max: Duration,
    /// How long each process's idle CPU is measured, before any load.
    pub idle_window: Duration,
    /// Events in the outbox for the relay drain.
    pub drain_events: i64,
    /// Orders placed through the API as templates of the drain's events.
    pub templates: usize,
    /// How long each pgbench run takes.
    pub pgbench_duration: Duration,
    /// Records ProducerPerformance sends.
    pub producer_records: u64,
    /// New clients timed to their first metadata answer and first
    /// delivery, each way, per listener.
    pub fresh_clients: usize,
    /// The services' and the load generator's build profile.
    pub profile: Profile,
    /// `NAME=value` settings added to every service's environment (tuning).
    pub knobs: Vec<(String, String)>,
    /// Where the markdown report goes.
    pub report: PathBuf,
    /// Where the plot goes (the report links it by a relative path).
    pub plot: PathBuf,
}

impl BenchOptions {
    /// The published benchmark: release build, 20 s per rate, 100 000 drained events.
    pub fn full() -> Self {
        let root = devinfra::workspace_root();
        BenchOptions {
            mode: "full".into(),
            rates: vec![100.0, 200.0, 500.0, 1000.0, 2000.0],
            until_saturated: true,
            max_rate: 50_000.0,
            duration: Duration::from_secs(20),
            warm_up_round: Duration::from_secs(5),
            warm_up_max: Duration::from_secs(60),
            idle_window: Duration::from_secs(10),
            drain_events: 100_000,
            templates: 100,
            pgbench_duration: Duration::from_secs(15),
            producer_records: 300_000,
            fresh_clients: 30,
            profile: Profile::Release,
            knobs: Vec::new(),
            report: root.join("docs").join("BENCHMARKS.md"),
            plot: root.join("docs").join("benchmarks").join("latency.svg"),
        }
    }

    /// Every phase in seconds with a debug build, writing into `dir` (what
    /// `cargo xtask test` runs; its numbers mean nothing).
    pub fn smoke(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        BenchOptions {
            mode: "smoke".into(),
            rates: vec![20.0, 50.0],
            until_saturated: false,
            max_rate: 50.0,
            duration: Duration::from_secs(3),
            warm_up_round: Duration::from_secs(1),
            warm_up_max: Duration::from_secs(3),
            idle_window: Duration::from_secs(2),
            drain_events: 1_000,
            templates: 10,
            pgbench_duration: Duration::from_secs(2),
            producer_records: 5_000,
            fresh_clients: 5,
            profile: Profile::Debug,
            knobs: Vec::new(),
            report: dir.join("BENCHMARKS.md"),
            plot: dir.join("benchmarks").join("latency.svg"),
        }
    }

    /// How long after a step's last request its effects may take to arrive.
    fn settle_timeout(&self) -> Duration {
        (self.duration * 4).max(Duration::from_secs(60))
    }
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Building, starting or talking to the services failed.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The infrastructure failed.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// A request to a service failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A query failed.
    #[error("database query failed")]
    Database(#[from] sqlx::Error),
    /// A Kafka client call failed.
    #[error("Kafka client error")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A measuring tool (loadgen, pgbench, ProducerPerformance) failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// Which tool.
        tool: &'static str,
        /// Its status and output.
        detail: String,
    },
    /// The plot could not be drawn.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    /// Anything else about the run.
    #[error("{0}")]
    Run(String),
}

/// Progress on stderr.
fn progress(message: &str) {
    eprintln!("bench: {message}");
}

/// Runs the benchmark of `options` on private infrastructure and returns the results.
pub async fn run(options: &BenchOptions) -> Result<BenchResults, BenchError> {
    let began = Instant::now();
    prereq::check().await?;
    let dev = DevInfra::from_env()?;
    let run_name = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let dir = dev.dir().join("bench").join(&run_name);
    std::fs::create_dir_all(&dir).map_err(|e| InfraError::io("create directory", &dir, e))?;
    let runtime = Arc::new(dev.kafka_runtime().await?);
    progress(&format!(
        "building the load generator ({:?})",
        options.profile
    ));
    let loadgen = build_binary("loadgen", options.profile).await?;
    progress(&format!(
        "starting Kafka, PostgreSQL and the services in {}",
        dir.display()
    ));
    let plan = PrivatePlan {
        nodes: 1,
        profile: options.profile,
        features: Vec::new(),
        knobs: options.knobs.clone(),
    };
    // A second listener without authentication: what SCRAM is priced against (scram.rs).
    let mut infra =
        PrivateInfra::start_with_unauthenticated_listener(runtime.clone(), &dir, plan).await?;
    let outcome = measure(&infra, options, &loadgen, &runtime, began).await;
    infra.stop().await;
    match &outcome {
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(_) => progress(&format!("logs kept in {}", dir.display())),
    }
    outcome
}

async fn measure(
    infra: &PrivateInfra,
    options: &BenchOptions,
    loadgen: &std::path::Path,
    runtime: &KafkaRuntime,
    began: Instant,
) -> Result<BenchResults, BenchError> {
    let machine = Machine::describe(runtime.version()).await;
    // One pid per service, in the registry's order.
    let pids = services::ALL
        .iter()
        .map(|&service| Ok(infra.instance(service)?.pid()))
        .collect::<Result<Vec<u32>, BenchError>>()?;
    let idle_rss_kib: Vec<u64> = pids.iter().map(|&pid| rss_kib(pid)).collect();
    let idle_rss: Vec<String> = services::ALL
        .iter()
        .zip(&idle_rss_kib)
        .map(|(service, kib)| format!("{} {} MiB", service.short, kib / 1024))
        .collect();
    progress(&format!("idle RSS: {}", idle_rss.join(", ")));
    let probe = Probe::new(
        infra.pools.orders.clone(),
        &infra.cluster.bootstrap_servers(),
        pids.clone(),
    )?;

    let brokers = infra
        .cluster
        .brokers()
        .iter()
        .filter_map(|b| b.pid())
        .collect();
    let meter = CpuMeter::new(&pids, brokers, infra.postgres.pid());
    // Before any order: what the processes burn with nothing to do, so that
    // each step can say what its orders cost above it.
    let idle = meter.idle(options.idle_window).await;
    progress(&format!(
        "idle CPU over {:.0}s: {:.1} ms/s in all ({})",
        idle.window_s,
        idle.total_ms_per_s(),
        idle.by_part()
    ));
    let (warm_up, mut effects) = warm_up(infra, &probe, &meter, loadgen, options).await?;
    let steps_began = Instant::now();
    let mut steps: Vec<StepResult> = Vec::new();
    let mut queue = options.rates.clone();
    queue.reverse();
    let mut seed = 1000;
    let (mut highest_sustained, mut lowest_unsustained) = (None, None);
    let mut refinements = 0;
    while let Some(rate) = queue.pop() {
        if rate > options.max_rate {
            break;
        }
        progress(&format!(
            "rate {rate} orders/s for {}s",
            options.duration.as_secs_f64()
        ));
        seed += 1;
        let plan = StepPlan {
            rate,
            duration: options.duration,
            seed,
            settle_timeout: options.settle_timeout(),
        };
        let (result, now) = step::run_step(infra, &probe, &meter, loadgen, &plan, effects).await?;
        effects = now;
        report_step(&result);
        let sustained = result.sustained;
        steps.push(result);
        if sustained {
            highest_sustained = Some(rate);
        } else {
            lowest_unsustained = Some(lowest_unsustained.map_or(rate, |r: f64| r.min(rate)));
        }
        if !options.until_saturated {
            if !sustained {
                progress("  not sustained: no higher rates");
                break;
            }
            continue;
        }
        // Upward ×1.5 until a rate is not sustained, then halve the gap
        // between the highest sustained and the lowest unsustained rate a few
        // times, so the saturation point is not just the coarse ladder's step.
        match (highest_sustained, lowest_unsustained) {
            (_, None) if queue.is_empty() => {
                let next = (rate * 1.5 / 100.0).round() * 100.0;
                queue.push(next.max(rate + 100.0));
            }
            (_, None) => {}
            (low, Some(high)) => {
                queue.clear();
                let low = low.unwrap_or(0.0);
                let mid = ((low + high) / 2.0 / REFINE_STEP).round() * REFINE_STEP;
                if refinements < MAX_REFINEMENTS
                    && mid > low
                    && mid < high
                    && high - low > REFINE_STEP
                {
                    refinements += 1;
                    progress(&format!(
                        "  saturation lies between {low} and {high} orders/s; trying {mid}"
                    ));
                    queue.push(mid);
                } else {
                    progress(&format!(
                        "  saturation point: {low} orders/s sustained, {high} not"
                    ));
                }
            }
        }
    }
    steps.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let steps_s = steps_began.elapsed().as_secs_f64();

    progress("stopping the consumers; holding the relay off");
    infra
        .stack
        .stop_where(|p| p.service() != ORDER_SERVICE)
        .await?;
    wait_outbox_empty(infra).await?;
    let event = drain::hold_relay_and_place_templates(infra, options.templates).await?;
    progress(&format!(
        "events are {:.0} bytes of JSON, {} bytes per record with key and headers",
        event.value_bytes, event.record_bytes
    ));

    let ceilings_began = Instant::now();
    let (pgbench, pgbench_no_notify) = pgbench_ceilings(infra, options, &meter, &event).await?;
    let listeners = Listeners::prepare(infra).await?;
    ceilings::create_ceiling_topic(&infra.cluster.bootstrap_servers(), 6).await?;
    let producer = producer_ceiling(infra, options, runtime, &event, &listeners.scram).await?;
    let producer_plain =
        producer_ceiling(infra, options, runtime, &event, &listeners.plain).await?;
    let fresh_scram = scram::fresh_clients(&listeners.scram, options.fresh_clients).await?;
    let fresh_plain = scram::fresh_clients(&listeners.plain, options.fresh_clients).await?;
    let ceilings_s = ceilings_began.elapsed().as_secs_f64();

    let drain_began = Instant::now();
    let drained = relay_drain(infra, options, &listeners.scram).await?;
    // That drain emptied the outbox, templates and all: the same orders
    // again, with the relay held off, so both drains publish the same events.
    drain::hold_relay_and_place_templates(infra, options.templates).await?;
    let drain_plain = relay_drain(infra, options, &listeners.plain).await?;
    let drain_s = drain_began.elapsed().as_secs_f64();

    Ok(BenchResults {
        started: chrono::Local::now()
            - chrono::Duration::milliseconds(began.elapsed().as_millis() as i64),
        options: options.clone(),
        machine,
        knobs: infra.knobs().to_vec(),
        idle_rss_kib,
        idle,
        warm_up,
        steps,
        event,
        pgbench,
        pgbench_no_notify,
        producer,
        drain: drained,
        scram: ScramCost {
            producer_plain,
            drain_plain,
            fresh_scram,
            fresh_plain,
        },
        timings: report::Timings {
            total_s: began.elapsed().as_secs_f64(),
            steps_s,
            ceilings_s,
            drain_s,
        },
    })
}

fn report_step(result: &StepResult) {
    let p99 =
        |p: &Option<latency::Percentiles>| p.map_or("-".to_owned(), |p| format!("{:.1}", p.p99));
    progress(&format!(
        "  {}: {:.0} orders/s achieved; p99 ms: POST {}, to invoice {}, to shipment {}; peaks: outbox {}, lag {} / {}",
        if result.sustained {
            "sustained"
        } else {
            "NOT sustained"
        },
        result.achieved_rate,
        p99(&result.http),
        p99(&result.invoice),
        p99(&result.shipment),
        result.outbox.peak,
        result.invoicing_lag.peak,
        result.shipping_lag.peak,
    ));
    for reason in &result.reasons {
        progress(&format!("    {reason}"));
    }
}

async fn wait_outbox_empty(infra: &PrivateInfra) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = sample::outbox_backlog(&infra.pools.orders).await?;
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Run(format!(
                "the outbox still holds {left} events after the steps"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn pgbench_ceilings(
    infra: &PrivateInfra,
    options: &BenchOptions,
    meter: &CpuMeter,
    event: &EventShape,
) -> Result<(PgbenchResult, PgbenchResult), BenchError> {
    ceilings::prepare_pgbench_database(&infra.postgres).await?;
    let mut results = Vec::new();
    for notify in [true, false] {
        let name = if notify {
            "pgbench-notify"
        } else {
            "pgbench-no-notify"
        };
        progress(&format!(
            "PostgreSQL ceiling: pgbench, {} clients, {}s, one order's transaction {} its NOTIFY",
            ceilings::PGBENCH_CLIENTS,
            options.pgbench_duration.as_secs(),
            if notify { "with" } else { "without" }
        ));
        let script = ceilings::pgbench_script(&event.sample_payload, notify);
        let before = meter.read();
        let mut result = ceilings::pgbench(
            &infra.postgres,
            infra.dir(),
            name,
            &script,
            options.pgbench_duration,
        )
        .await?;
        // pgbench is our child, reaped by now: the client's share is its time.
        result.cpu = CpuCost::between(&before, &meter.read(), result.transactions as usize)
            .only(&[Part::Postgres, Part::Client]);
        progress(&format!(
            "  {:.0} transactions/s, {:.2} ms average; CPU per transaction: PostgreSQL {:.2} ms, pgbench {:.2} ms",
            result.tps,
            result.latency_ms,
            result.cpu.of(Part::Postgres),
            result.cpu.of(Part::Client)
        ));
        results.push(result);
    }
    let mut results = results.into_iter();
    match (results.next(), results.next()) {
        (Some(notify), Some(no_notify)) => Ok((notify, no_notify)),
        _ => Err(BenchError::Run("pgbench ran fewer than two scripts".into())),
    }
}

/// What the warm-up did: rounds at [`WARM_UP_RATE`] until the broker's CPU
/// per order settles.
///
/// A freshly started JVM broker burns most of a core for its first seconds
/// (JIT compilation), which a fixed short warm-up leaves in the first rate
/// step. So the warm-up repeats rounds of `warm_up_round` until Kafka's CPU
/// per order of a round is within [`WARM_UP_TOLERANCE`] of the round before
/// (connections, the topic's leaders and the services' pools are warm long
/// before), or until `warm_up_max` has passed.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct WarmUp {
    /// Kafka's CPU milliseconds per order, round by round.
    pub(crate) kafka_ms_per_order: Vec<f64>,
    /// Seconds it took, settling included.
    pub(crate) seconds: f64,
    /// Whether the cost settled before the cap.
    pub(crate) settled: bool,
    /// The cap, seconds.
    pub(crate) cap_s: f64,
}

/// The warm-up's rate, orders/s.
pub(crate) const WARM_UP_RATE: f64 = 100.0;

/// Two rounds whose Kafka CPU per order differs by less than this fraction end the warm-up.
pub(crate) const WARM_UP_TOLERANCE: f64 = 0.15;

async fn warm_up(
    infra: &PrivateInfra,
    probe: &Probe,
    meter: &CpuMeter,
    loadgen: &std::path::Path,
    options: &BenchOptions,
) -> Result<(WarmUp, i64), BenchError> {
    let began = Instant::now();
    let mut effects = 0;
    let mut rounds: Vec<f64> = Vec::new();
    let mut settled = false;
    let mut seed = 900;
    while !settled && began.elapsed() < options.warm_up_max {
        seed += 1;
        let plan = StepPlan {
            rate: WARM_UP_RATE,
            duration: options.warm_up_round,
            seed,
            settle_timeout: options.settle_timeout(),
        };
        let (result, now) = step::run_step(infra, probe, meter, loadgen, &plan, effects).await?;
        effects = now;
        let kafka = result.cpu.of(Part::Kafka);
        settled = rounds
            .last()
            .is_some_and(|last| (kafka - last).abs() <= WARM_UP_TOLERANCE * last.max(kafka));
        rounds.push(kafka);
        progress(&format!(
            "warm-up round {}: {WARM_UP_RATE} orders/s for {}s, Kafka {kafka:.2} ms CPU per order, all processes {:.2} ms{}",
            rounds.len(),
            options.warm_up_round.as_secs_f64(),
            result.cpu.total_ms,
            if settled { " (settled)" } else { "" }
        ));
    }
    Ok((
        WarmUp {
            kafka_ms_per_order: rounds,
            seconds: began.elapsed().as_secs_f64(),
            settled,
            cap_s: options.warm_up_max.as_secs_f64(),
        },
        effects,
    ))
}

/// Fills the outbox and times the relay draining it, order-service
/// connecting through `listener`.
async fn relay_drain(
    infra: &PrivateInfra,
    options: &BenchOptions,
    listener: &Listener,
) -> Result<drain::DrainResult, BenchError> {
    progress(&format!(
        "relay drain through {}: filling the outbox with {} events",
        listener.name, options.drain_events
    ));
    let events = drain::fill_outbox(infra, options.drain_events).await?;
    let drained = drain::drain(
        infra,
        events,
        &listener.service_env,
        Duration::from_secs(600),
    )
    .await?;
    progress(&format!(
        "  relay published {} events in {:.1}s: {:.0} events/s",
        drained.events, drained.seconds, drained.events_per_s
    ));
    Ok(drained)
}

async fn producer_ceiling(
    infra: &PrivateInfra,
    options: &BenchOptions,
    runtime: &KafkaRuntime,
    event: &EventShape,
    listener: &Listener,
) -> Result<ProducerResult, BenchError> {
    let knob = |name: &str, default: &str| {
        infra
            .knobs()
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or(default.to_owned(), |(_, v)| v.clone())
    };
    // The services' defaults (messaging::kafka::ProducerSettings) unless the
    // run set them: the ceiling uses the relay's own producer settings.
    let (linger, batch) = (
        knob("KAFKA_LINGER_MS", "0"),
        knob("KAFKA_BATCH_SIZE", "1000000"),
    );
    progress(&format!(
        "Kafka ceiling through {}: ProducerPerformance, {} records of {} bytes, acks=all, idempotent, linger.ms={linger}, batch.size={batch}",
        listener.name, options.producer_records, event.record_bytes
    ));
    let plan = ProducerPlan {
        records: options.producer_records,
        record_size: event.record_bytes,
        linger_ms: linger,
        batch_size: batch,
    };
    let result = ceilings::producer_performance(runtime, listener, infra.dir(), &plan).await?;
    progress(&format!(
        "  {:.0} records/s ({:.1} MB/s), p99 {:.0} ms",
        result.records_per_s, result.mb_per_s, result.p99_latency_ms
    ));
    Ok(result)
}

/// Writes the report and the plot of `results` where the options say.
pub fn write(results: &BenchResults) -> Result<(), BenchError> {
    let report = &results.options.report;
    let plot_path = &results.options.plot;
    if let Some(dir) = plot_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| InfraError::io("create directory", dir, e))?;
    }
    plot::latency_vs_rate(&results.steps, plot_path)?;
    let link = relative_link(report, plot_path);
    let markdown = results.markdown(&link);
    std::fs::write(report, markdown).map_err(|e| InfraError::io("write", report, e))?;
    Ok(())
}

/// `plot` relative to the directory of `report` (both under one root), for the markdown link.
fn relative_link(report: &std::path::Path, plot: &std::path::Path) -> String {
    report
        .parent()
        .and_then(|dir| plot.strip_prefix(dir).ok())
        .unwrap_or(plot)
        .display()
        .to_string()
}
