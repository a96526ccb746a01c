//! The chaos run (`cargo xtask chaos`): the delivery guarantees, proven with counts.
//!
//! Each scenario places orders over HTTP at a steady rate while it injects
//! one kind of fault, then waits for the flow to settle and audits it:
//! every order that got a 201 must have exactly one invoice and exactly one
//! shipment with the right content, nothing may be applied twice (the
//! consumers' running figures, balances per customer and units to pick per
//! SKU, must equal their rows: see [`audit`]), both consumer groups must
//! have committed to the end of the topic, and the outbox must be empty. Recovery is measured from each fault to the moment
//! every order accepted before it had both effects (the consumers' own
//! commit timestamps, on the database's clock).
//!
//! The run owns its infrastructure ([`devinfra::private::PrivateInfra`]): a single-node
//! Kafka and a PostgreSQL for most scenarios, a three-node cluster (RF 3,
//! `min.insync.replicas` 2) and another PostgreSQL for `broker-loss` and
//! `slow-partition`, all on free
//! ports in `<infra dir>/chaos/<run>`, stopped at the end. The logs stay
//! there when a scenario fails. Only this run builds the consumers with
//! their `fault-injection` feature ([`FAULT_INJECTION`]): the crash points
//! scenario 2 needs, and the dedup switch that shows the audit failing
//! (`--env FAULT_DEDUP_OFF=true`), are compiled into no other build.
//!
//! | # | scenario | fault |
//! |---|----------|-------|
//! | 1 | `order-service` | SIGKILL order-service while the relay holds a batch, 3× |
//! | 2 | `invoicing` | invoicing aborts itself after a commit, before storing the offset (`FAULT_ABORT_AFTER_COMMIT`), 3× |
//! | 3 | `shipping` | SIGKILL shipping-service at 4 random moments |
//! | 4 | `kafka-restart` | the broker stopped, then killed, 3 s each |
//! | 5 | `postgres-restart` | PostgreSQL stopped, then killed, 3 s each; APIs must answer 503 problem+json, services must not restart |
//! | 6 | `duplicates-and-poison` | records re-sent verbatim and 20 poison records of 5 kinds; each consumer dead-letters exactly the poison |
//! | 7 | `rebalance` | a second shipping instance joins and leaves, twice |
//! | 8 | `revoked-privilege` | invoicing's role loses INSERT on `invoices` for 10 s; nothing may be dead-lettered, readiness must say 503 meanwhile, and the flow must recover by itself. Then its Kafka principal loses the ACL to write its dead-letter topic for 10 s while a poison record comes: invoicing must stall on it with readiness 503 naming the refusal, write nothing to its dead-letter topic meanwhile, and dead-letter the poison once the ACL is back |
//! | 9 | `oversized-event` | the topic's `max.message.bytes` is lowered and one order's event exceeds it; the rest must flow, its cancellation must wait behind it, and it is published once an operator raises the limit and retries it |
//! | 10 | `kafka-outage` | the broker stopped, and later frozen, for longer than the relay's `message.timeout.ms` while orders and cancellations keep coming; nothing may be reordered or lost |
//! | 11 | `broker-loss` | SIGKILL one node of three mid-stream, restart it, wait for it to rejoin every ISR; intake must not answer a 503 that Kafka could cause meanwhile (each 503 is attributed by its problem+json detail; only a busy pool or a database away are not counted) |
//! | 12 | `replay-storm` | a record both consumers refuse, replayed three times for invoicing with `orderflow-admin dlq replay`; shipping's dead letters must not change, invoicing must gain one per replay |
//! | 13 | `dead-letter-topic-gone` | invoicing's dead-letter topic deleted, then a poison record; invoicing must hold (503 naming the topic, `inbox_stalled` 1), skip nothing, and resume once the topic is back |
//! | 14 | `stall-past-retention` | after the load, shipping is away while retention deletes records it never read; back, it must stop (503, an `error` naming the partitions and the records gone) and commit nothing past them, until an operator resets its offsets |
//! | 15 | `slow-partition` | one partition of the three-node cluster cut to a single replica and that node stopped, so it has no leader; the other partitions' orders placed meanwhile must reach both consumers at their usual pace (p99 order→both effects under 15 s, half the relay's `message.timeout.ms`), the stuck partition's must wait and arrive in order once its replicas are back |
//!
//! Every tenth order is cancelled right after it was accepted, so orders have
//! two events, and the audit checks on the topic that each order's
//! `OrderPlaced` comes before its `OrderCancelled` (reordered events).

pub mod audit;
mod faults;
mod load;
mod topic;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;

use devinfra::private::{PrivateInfra, PrivatePlan};
use devinfra::stack::{Profile, StackError};
use devinfra::{DevInfra, InfraError, prereq};
use faults::{Injected, Injector};
use load::{LoadPlan, LoadStats};
use orderflow_client::ClientError;
use platform::services::{self, ORDER_SERVICE};
use shared_events::topics::{self, ORDERS as ORDERS_TOPIC};

/// The cargo features the chaos run builds the services with: the consumers'
/// crash points (`FAULT_ABORT_AFTER_COMMIT`) and the switch that turns
/// their dedup off to show that the audit fails (`FAULT_DEDUP_OFF`, set
/// with `--env`), compiled into no other build.
pub const FAULT_INJECTION: [&str; 2] = [
    "invoicing-service/fault-injection",
    "shipping-service/fault-injection",
];

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// SIGKILL order-service while its relay has a batch in flight.
    OrderService,
    /// invoicing-service aborts after its database commit, before its offset commit.
    Invoicing,
    /// SIGKILL shipping-service at random moments, several times.
    Shipping,
    /// Restart the Kafka broker while orders keep arriving.
    KafkaRestart,
    /// Restart PostgreSQL.
    PostgresRestart,
    /// Duplicate and poison records straight onto the topic.
    DuplicatesAndPoison,
    /// A second shipping instance joins and leaves the group mid-stream.
    Rebalance,
    /// invoicing's role loses a privilege on its effect table for a while.
    RevokedPrivilege,
    /// One order's event is larger than the topic accepts.
    OversizedEvent,
    /// Kafka is away for longer than the relay's delivery timeout.
    KafkaOutage,
    /// Kill one node of a three-node cluster.
    BrokerLoss,
    /// Replay one consumer's dead letter of a record both refuse, several times.
    ReplayStorm,
    /// A consumer's dead-letter topic is deleted before a poison record comes.
    DeadLetterTopicGone,
    /// A consumer away while retention deletes records it has not read.
    StallPastRetention,
    /// One partition of a three-node cluster takes no records for a while.
    SlowPartition,
}

impl Scenario {
    /// All of them, in order.
    pub const ALL: [Scenario; 15] = [
        Scenario::OrderService,
        Scenario::Invoicing,
        Scenario::Shipping,
        Scenario::KafkaRestart,
        Scenario::PostgresRestart,
        Scenario::DuplicatesAndPoison,
        Scenario::Rebalance,
        Scenario::RevokedPrivilege,
        Scenario::OversizedEvent,
        Scenario::KafkaOutage,
        Scenario::BrokerLoss,
        Scenario::ReplayStorm,
        Scenario::DeadLetterTopicGone,
        Scenario::StallPastRetention,
        Scenario::SlowPartition,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::OrderService => "order-service",
            Scenario::Invoicing => "invoicing",
            Scenario::Shipping => "shipping",
            Scenario::KafkaRestart => "kafka-restart",
            Scenario::PostgresRestart => "postgres-restart",
            Scenario::DuplicatesAndPoison => "duplicates-and-poison",
            Scenario::Rebalance => "rebalance",
            Scenario::RevokedPrivilege => "revoked-privilege",
            Scenario::OversizedEvent => "oversized-event",
            Scenario::KafkaOutage => "kafka-outage",
            Scenario::BrokerLoss => "broker-loss",
            Scenario::ReplayStorm => "replay-storm",
            Scenario::DeadLetterTopicGone => "dead-letter-topic-gone",
            Scenario::StallPastRetention => "stall-past-retention",
            Scenario::SlowPartition => "slow-partition",
        }
    }

    /// Kafka nodes it runs on.
    fn nodes(self) -> usize {
        match self {
            Scenario::BrokerLoss | Scenario::SlowPartition => 3,
            _ => 1,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a chaos run is sized.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Orders per scenario.
    pub orders: usize,
    /// Orders started per second.
    pub rate: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Which scenarios, in this order.
    pub scenarios: Vec<Scenario>,
    /// Debug or release binaries.
    pub profile: Profile,
    /// Seed of the orders and of the random fault moments.
    pub seed: u64,
    /// How long the flow may take to settle after a scenario.
    pub settle_timeout: Duration,
    /// Keep the run directory (logs) even when every scenario passed.
    pub keep_logs: bool,
    /// `NAME=value` settings added to every service's environment.
    pub knobs: Vec<(String, String)>,
}

impl ChaosOptions {
    /// The full run: 10 000 orders per scenario at 200/s.
    pub fn full() -> Self {
        ChaosOptions {
            orders: 10_000,
            rate: 200.0,
            concurrency: 32,
            scenarios: Scenario::ALL.to_vec(),
            profile: Profile::Debug,
            seed: 2026,
            settle_timeout: Duration::from_secs(600),
            keep_logs: false,
            knobs: Vec::new(),
        }
    }

    /// The quick run inside `cargo xtask test`: 300 orders per scenario at 60/s.
    pub fn quick() -> Self {
        ChaosOptions {
            orders: 300,
            rate: 60.0,
            settle_timeout: Duration::from_secs(180),
            ..ChaosOptions::full()
        }
    }
}

/// Why a chaos run could not be carried out (as opposed to finding a loss).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// Starting, stopping or signalling infrastructure failed.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// Starting or stopping a service failed.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// An audit query failed.
    #[error("an audit query failed")]
    Database(#[source] sqlx::Error),
    /// A Kafka request of the run itself failed.
    #[error("a Kafka request of the chaos run failed")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A request to a service failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A scenario could not be carried out.
    #[error("{0}")]
    Scenario(String),
}

/// A scenario-specific verification.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// Which scenario.
    pub scenario: Scenario,
    /// Orders accepted (201).
    pub orders: usize,
    /// The faults, in order.
    pub faults: Vec<String>,
    /// Accepted orders missing an invoice or a shipment.
    pub lost: usize,
    /// Effects applied more than once, as the schema-guarded checks see them
    /// (second invoices or shipments, extra lines, orders placed twice).
    pub duplicate_effects: usize,
    /// Duplicate effects by the non-idempotent checks: balances and SKUs
    /// whose running figure differs from their rows (only the inbox's dedup
    /// keeps these at 0).
    pub figures_off: usize,
    /// Invoices or shipments that differ from their order.
    pub wrong_content: usize,
    /// Orders whose events reached the topic out of order.
    pub reordered: usize,
    /// Longest time from a fault until the orders accepted before it were fully processed.
    pub max_recovery: Duration,
    /// Records on the topic more than once (same event id): republished by the
    /// relay after a crash, or injected; the consumers' dedup absorbs them.
    pub republished: usize,
    /// The client's view.
    pub client: ClientView,
    /// Scenario-specific checks, and the generic ones (settled, dead letters, client).
    pub checks: Vec<Check>,
    /// Facts worth reporting.
    pub notes: Vec<String>,
    /// Examples of any problem found.
    pub examples: Vec<String>,
    /// How long the scenario took, load to settled.
    pub elapsed: Duration,
}

/// What the client saw, in counts.
#[derive(Debug, Clone, Default)]
pub struct ClientView {
    /// Requests sent, retries included.
    pub attempts: u64,
    /// 503 answers (all expected as problem+json).
    pub unavailable: u64,
    /// Refused, reset or timed-out connections.
    pub transport_errors: u64,
}

impl ScenarioResult {
    /// No loss, no duplicate, right content, every check held.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.duplicate_effects == 0
            && self.figures_off == 0
            && self.wrong_content == 0
            && self.reordered == 0
            && self.checks.iter().all(|c| c.passed)
    }
}

/// Every scenario's result.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// Results in run order.
    pub results: Vec<ScenarioResult>,
    /// The settings every service ran with besides its defaults.
    pub knobs: Vec<(String, String)>,
}

impl ChaosReport {
    /// True when every scenario passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(ScenarioResult::passed)
    }

    /// The table: scenario | orders | faults injected | lost | duplicate
    /// effects (schema-guarded checks) | duplicate effects (non-idempotent
    /// checks) | reordered | max recovery (s).
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | orders | faults injected | lost | duplicate effects (schema-guarded checks) \
             | duplicate effects (non-idempotent checks) | reordered | max recovery (s) |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.results {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
                r.scenario,
                r.orders,
                r.faults.len(),
                r.lost,
                r.duplicate_effects,
                r.figures_off,
                r.reordered,
                r.max_recovery.as_secs_f64()
            ));
        }
        out
    }

    /// The table followed by each scenario's faults, checks and notes.
    pub fn markdown(&self) -> String {
        let mut out = self.table();
        if !self.knobs.is_empty() {
            let knobs: Vec<String> = self
                .knobs
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect();
            out.push_str(&format!(
                "\nEvery service ran with {} (the defaults otherwise).\n",
                knobs.join(", ")
            ));
        }
        for r in &self.results {
            // What the audit of the running figures says of the records seen
            // twice, not what the dedup is supposed to do with them.
            let duplicates = if r.figures_off == 0 {
                "absorbed by the dedup".to_owned()
            } else {
                format!(
                    "NOT all absorbed: {} running figures off their rows",
                    r.figures_off
                )
            };
            out.push_str(&format!(
                "\n**{}** ({}, {:.0} s): {} requests for {} orders, {} answered 503, {} connection errors; \
                 {} records on the topic a second time (relay republished or injected), {duplicates}; wrong content: {}.\n",
                r.scenario,
                if r.passed() { "passed" } else { "FAILED" },
                r.elapsed.as_secs_f64(),
                r.client.attempts,
                r.orders,
                r.client.unavailable,
                r.client.transport_errors,
                r.republished,
                r.wrong_content,
            ));
            for fault in &r.faults {
                out.push_str(&format!("- fault: {fault}\n"));
            }
            for check in &r.checks {
                out.push_str(&format!(
                    "- {} {}: {}\n",
                    if check.passed { "ok" } else { "FAILED" },
                    check.name,
                    check.detail
                ));
            }
            for note in &r.notes {
                out.push_str(&format!("- {note}\n"));
            }
            for example in &r.examples {
                out.push_str(&format!("- problem: {example}\n"));
            }
        }
        out
    }
}

/// Runs the scenarios of `options` on private infrastructure and reports.
pub async fn run(options: &ChaosOptions) -> Result<ChaosReport, ChaosError> {
    prereq::check().await?;
    let dev = DevInfra::from_env()?;
    let runtime = Arc::new(dev.kafka_runtime().await?);
    let run_dir = dev.dir().join("chaos").join(format!(
        "{}-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S"),
        std::process::id()
    ));
    let mut results = Vec::new();
    let mut failed_dirs: Vec<PathBuf> = Vec::new();
    for nodes in [1, 3] {
        let scenarios: Vec<Scenario> = options
            .scenarios
            .iter()
            .copied()
            .filter(|s| s.nodes() == nodes)
            .collect();
        if scenarios.is_empty() {
            continue;
        }
        let dir = run_dir.join(format!("kafka-{nodes}"));
        eprintln!(
            "chaos: starting {nodes} Kafka node(s), PostgreSQL and the services in {}",
            dir.display()
        );
        let plan = PrivatePlan {
            nodes,
            profile: options.profile,
            features: FAULT_INJECTION.map(str::to_owned).to_vec(),
            knobs: options.knobs.clone(),
        };
        let mut infra = PrivateInfra::start(runtime.clone(), &dir, plan).await?;
        let mut outcome = Ok(());
        for scenario in scenarios {
            match run_scenario(&mut infra, &runtime, scenario, options).await {
                Ok(result) => {
                    if !result.passed() {
                        failed_dirs.push(infra.dir().to_path_buf());
                    }
                    results.push(result);
                }
                Err(e) => {
                    outcome = Err(e);
                    failed_dirs.push(infra.dir().to_path_buf());
                    break;
                }
            }
        }
        infra.stop().await;
        outcome?;
    }
    if failed_dirs.is_empty() && !options.keep_logs {
        if let Err(e) = std::fs::remove_dir_all(&run_dir) {
            eprintln!("chaos: could not remove {}: {e}", run_dir.display());
        }
    } else {
        eprintln!("chaos: logs kept in {}", run_dir.display());
    }
    Ok(ChaosReport {
        results,
        knobs: options.knobs.clone(),
    })
}

async fn run_scenario(
    infra: &mut PrivateInfra,
    runtime: &devinfra::KafkaRuntime,
    scenario: Scenario,
    options: &ChaosOptions,
) -> Result<ScenarioResult, ChaosError> {
    eprintln!(
        "chaos: {scenario}: {} orders at {}/s",
        options.orders, options.rate
    );
    let started = SystemTime::now();
    let bootstrap = infra.settings.kafka_bootstrap_servers.clone();
    let from = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
    let dead_letters_before = dead_letters(&bootstrap).await?;
    let (progress_tx, progress) = watch::channel(0);
    let plan = LoadPlan {
        orders: options.orders,
        rate: options.rate,
        concurrency: options.concurrency,
        seed: options.seed ^ (scenario as u64),
        base_url: infra.url(ORDER_SERVICE),
        key_prefix: format!(
            "chaos-{}-{scenario}",
            started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        ),
        cancel_every: CANCEL_EVERY,
    };
    let reporter = report_progress(progress.clone(), options.orders);
    let injector = Injector {
        infra: &mut *infra,
        runtime,
        progress,
        orders: options.orders,
        rng: StdRng::seed_from_u64(options.seed.wrapping_add(scenario as u64)),
        from: from.clone(),
        out: Injected::default(),
    };
    let load = tokio::spawn(load::place_orders(plan, progress_tx));
    let injected = injector.run(scenario).await;
    reporter.abort();
    // A scenario that cannot inject its faults stops its load at once rather
    // than letting every order retry against a service that is not coming back.
    let injected = injected.inspect_err(|_| load.abort())?;
    let mut load = load
        .await
        .map_err(|e| ChaosError::Scenario(format!("the load failed: {e}")))??;
    // Orders the injector placed itself (the oversized one) are audited too.
    load.accepted.extend(injected.accepted.iter().cloned());
    let placed = SystemTime::now();

    eprintln!(
        "chaos: {scenario}: {} orders accepted; waiting for invoicing and shipping to settle",
        load.accepted.len()
    );
    let (settled, done) = audit::settle(
        &infra.pools,
        &bootstrap,
        &load.accepted,
        options.settle_timeout,
    )
    .await?;
    let mut findings = audit::audit(&infra.pools, &load.accepted, (started, placed)).await?;
    let figures = audit::running_figures(&infra.pools.invoicing, &infra.pools.shipping)
        .await
        .map_err(ChaosError::Database)?;
    findings.examples.extend(figures.examples.iter().cloned());
    let mut max_recovery = 0.0_f64;
    for fault in &injected.faults {
        max_recovery =
            max_recovery.max(audit::recovery_after(&infra.pools, &load.accepted, fault.at).await?);
    }
    let to = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
    let records = topic::read_range(&bootstrap, ORDERS_TOPIC, &from, &to).await?;
    let dead_letters_after = dead_letters(&bootstrap).await?;
    let (reordered, examples) = audit::reordered(&records, &load.accepted);
    findings.examples.extend(examples);

    let mut checks = injected.checks;
    checks.push(Check {
        name: "the flow settled".into(),
        passed: done,
        detail: format!(
            "{} of {} invoiced, {} shipped, outbox {}, lag invoicing {} / shipping {}",
            settled.invoiced,
            load.accepted.len(),
            settled.shipped,
            settled.outbox,
            settled.invoicing_lag,
            settled.shipping_lag
        ),
    });
    let dead_lettered: Vec<i64> = dead_letters_after
        .iter()
        .zip(&dead_letters_before)
        .map(|(after, before)| after - before)
        .collect();
    checks.push(Check {
        name: "each consumer dead-lettered exactly the poison".into(),
        passed: dead_lettered == injected.expected_dead_letters,
        detail: format!(
            "expected invoicing {}, shipping {}; invoicing {}, shipping {}",
            injected.expected_dead_letters[0],
            injected.expected_dead_letters[1],
            dead_lettered.first().copied().unwrap_or_default(),
            dead_lettered.get(1).copied().unwrap_or_default()
        ),
    });
    checks.push(client_check(
        &load.stats,
        options.orders + injected.accepted.len(),
        load.accepted.len(),
    ));
    if scenario == Scenario::BrokerLoss {
        // POST /orders never talks to Kafka: losing a node must not cost a
        // request. Each 503 is attributed by its problem+json detail; only
        // those the database explains (a busy pool, a database away) are
        // not Kafka's, and any other one fails the check.
        let not_the_database = load.stats.unavailable - load.stats.unavailable_for_the_database();
        checks.push(Check {
            name: "intake answered no 503 that a Kafka node could cause while it was down".into(),
            passed: not_the_database == 0,
            detail: format!(
                "{} answers of 503, {not_the_database} not explained by the database; by cause: {}",
                load.stats.unavailable,
                load.stats.unavailable_by_cause()
            ),
        });
    }
    let result = ScenarioResult {
        scenario,
        orders: load.accepted.len(),
        faults: injected.faults.iter().map(|f| f.what.clone()).collect(),
        lost: findings.lost,
        duplicate_effects: findings.duplicate_effects,
        figures_off: figures.off(),
        wrong_content: findings.wrong_content,
        reordered,
        max_recovery: Duration::from_secs_f64(max_recovery),
        republished: topic::republished(&records),
        client: ClientView {
            attempts: load.stats.attempts,
            unavailable: load.stats.unavailable,
            transport_errors: load.stats.transport_errors,
        },
        checks,
        notes: injected.notes,
        examples: findings.examples,
        elapsed: started.elapsed().unwrap_or_default(),
    };
    eprintln!(
        "chaos: {scenario}: {} — lost {}, duplicate effects {} (schema-guarded checks) / {} (non-idempotent checks), reordered {}, max recovery {:.1}s",
        if result.passed() { "passed" } else { "FAILED" },
        result.lost,
        result.duplicate_effects,
        result.figures_off,
        result.reordered,
        result.max_recovery.as_secs_f64()
    );
    Ok(result)
}

/// Every how many accepted orders one is cancelled by the client.
const CANCEL_EVERY: usize = 10;

/// Every order the client meant to place was accepted; no 500s; every 503 was problem+json.
fn client_check(stats: &LoadStats, planned: usize, accepted: usize) -> Check {
    let passed = accepted == planned
        && stats.server_errors == 0
        && stats.rejected == 0
        && stats.gave_up == 0
        && stats.unavailable == stats.unavailable_as_problem;
    Check {
        name: "every order was accepted, with only 503 problem+json on the way".into(),
        passed,
        detail: format!(
            "{accepted} of {planned} accepted; 503: {} ({} problem+json); other 5xx: {}; 4xx: {}; gave up: {}{}",
            stats.unavailable,
            stats.unavailable_as_problem,
            stats.server_errors,
            stats.rejected,
            stats.gave_up,
            stats
                .samples
                .first()
                .map(|s| format!("; e.g. {s}"))
                .unwrap_or_default()
        ),
    }
}

/// Records on each consumer's dead-letter topic, in the registry's order.
pub(crate) async fn dead_letters(bootstrap: &str) -> Result<Vec<i64>, ChaosError> {
    let mut counts = Vec::new();
    for service in services::consumers() {
        let group = service.consumer_group.unwrap_or_default();
        let ends = topic::end_offsets(bootstrap, &topics::dead_letter(ORDERS_TOPIC, group)).await?;
        counts.push(ends.values().sum());
    }
    Ok(counts)
}

/// Prints the accepted count every few seconds until aborted.
fn report_progress(
    mut progress: watch::Receiver<usize>,
    orders: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let accepted = *progress.borrow_and_update();
            eprintln!("chaos:   {accepted}/{orders} orders accepted");
            if accepted >= orders {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(figures_off: usize) -> ScenarioResult {
        ScenarioResult {
            scenario: Scenario::DuplicatesAndPoison,
            orders: 300,
            faults: vec!["re-sent 170 records".into()],
            lost: 0,
            duplicate_effects: 0,
            figures_off,
            wrong_content: 0,
            reordered: 0,
            max_recovery: Duration::ZERO,
            republished: 170,
            client: ClientView::default(),
            checks: Vec::new(),
            notes: Vec::new(),
            examples: Vec::new(),
            elapsed: Duration::from_secs(8),
        }
    }

    #[test]
    fn running_figures_off_their_rows_fail_the_scenario_in_their_own_column() {
        let clean = ChaosReport {
            results: vec![result(0)],
            knobs: Vec::new(),
        };
        assert!(clean.passed());
        assert!(clean.markdown().contains("170 records on the topic a second time (relay republished or injected), absorbed by the dedup"));

        let off = ChaosReport {
            results: vec![result(162)],
            knobs: vec![("FAULT_DEDUP_OFF".into(), "true".into())],
        };
        assert!(!off.passed());
        let table = off.table();
        assert!(
            table.contains("| duplicates-and-poison | 300 | 1 | 0 | 0 | 162 | 0 | 0.0 |"),
            "{table}"
        );
        let report = off.markdown();
        assert!(
            report.contains("NOT all absorbed: 162 running figures off their rows"),
            "{report}"
        );
        assert!(!report.contains("absorbed by the dedup"), "{report}");
    }
}
