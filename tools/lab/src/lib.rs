//! The Kafka lab (`cargo xtask lab`): what people learn about Kafka, shown
//! live on real brokers, with counts.
//!
//! Study notes and talks repeat a set of claims about Kafka; some are exact,
//! some half true, some wrong. Each [`Scenario`] here runs one experiment on
//! the lab's own infrastructure (a Kafka node, a three-node cluster where
//! replication is the point, and a PostgreSQL where effects are counted; see
//! the `infra` module), prints a small table of counts, and grades each of
//! its [claims](Scenario::claims) (a sentence of the notes, quoted) from those
//! counts with a [`Verdict`]: holds, holds with a nuance (one line), does not
//! hold, or not shown by the run. A wait the claim depends on that runs out
//! (a cleaner that never runs) is a "does not hold", not an abort. A full
//! run writes `LAB.md` and its two charts; the quick run, with smaller
//! counts, is part of `cargo xtask test`, where a verdict other than the
//! [expected](Grading::Measured) one fails the run: the lab is also a
//! regression test of our understanding.
//!
//! The lab sits beside the order flow, not inside it: scenarios 4 and 12
//! use the flow's pieces (the inbox's dedup table, the outbox table, its
//! `enqueue` and the relay) to show why the flow is built the way it is.
//! Nothing here is a fixed wait for a condition: every wait is a probe with
//! a deadline (the `progress` module).

#![warn(missing_docs)]

pub mod chart;
pub mod claims;
mod error;
mod fault_proxy;
mod infra;
mod kafka;
mod progress;
pub mod report;
mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use devinfra::{DevInfra, prereq};

pub use claims::{Claim, Grading, Quote};
pub use error::LabError;
pub use report::{Grade, LabReport, Outcome, ScenarioResult, Table, Verdict, VerdictKind};

use infra::LabInfra;

/// One experiment of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// 1. A late consumer group reads the history; the producer is unchanged.
    PubSub,
    /// 2. Partitions cap a group's parallelism.
    Parallelism,
    /// 3. Key → partition → order.
    KeyOrder,
    /// 4. When the offset is committed decides the guarantee.
    CommitTiming,
    /// 5. Batch commits trade throughput for redelivery.
    BatchCommits,
    /// 6. Producer retries can duplicate; idempotence prevents it.
    Idempotence,
    /// 7. Exactly-once inside Kafka: transactions.
    Transactions,
    /// 8. Replication keeps acknowledged data.
    Replication,
    /// 9. Retention and replay.
    Retention,
    /// 10. Log compaction keeps the last record per key.
    Compaction,
    /// 11. Pull lets the consumer set its pace.
    Pull,
    /// 12. When to send the event: dual write, send first, or the outbox.
    WhenToSend,
    /// 13. acks=1 against acks=all when the leader dies.
    Acks,
}

impl Scenario {
    /// All of them, in order.
    pub const ALL: [Scenario; 13] = [
        Scenario::PubSub,
        Scenario::Parallelism,
        Scenario::KeyOrder,
        Scenario::CommitTiming,
        Scenario::BatchCommits,
        Scenario::Idempotence,
        Scenario::Transactions,
        Scenario::Replication,
        Scenario::Retention,
        Scenario::Compaction,
        Scenario::Pull,
        Scenario::WhenToSend,
        Scenario::Acks,
    ];

    /// Its number (1-13).
    pub fn number(self) -> usize {
        Scenario::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(0, |i| i + 1)
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PubSub => "pubsub",
            Scenario::Parallelism => "parallelism",
            Scenario::KeyOrder => "key-order",
            Scenario::CommitTiming => "commit-timing",
            Scenario::BatchCommits => "batch-commits",
            Scenario::Idempotence => "idempotence",
            Scenario::Transactions => "transactions",
            Scenario::Replication => "replication",
            Scenario::Retention => "retention",
            Scenario::Compaction => "compaction",
            Scenario::Pull => "pull",
            Scenario::WhenToSend => "when-to-send",
            Scenario::Acks => "acks",
        }
    }

    /// The scenario by name or number.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name || s.number().to_string() == name)
    }

    /// Its title.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::PubSub => "Publish/subscribe decouples",
            Scenario::Parallelism => "Partitions cap a group's parallelism",
            Scenario::KeyOrder => "Key → partition → order",
            Scenario::CommitTiming => "When the offset is committed decides the guarantee",
            Scenario::BatchCommits => "Batch commits trade throughput for redelivery",
            Scenario::Idempotence => "Producer retries can duplicate; idempotence prevents it",
            Scenario::Transactions => "Exactly-once inside Kafka: transactions",
            Scenario::Replication => "Replication keeps acknowledged data",
            Scenario::Retention => "Retention and replay",
            Scenario::Compaction => "Log compaction keeps the last record per key",
            Scenario::Pull => "Pull lets the consumer set its pace",
            Scenario::WhenToSend => "When to send the event",
            Scenario::Acks => "acks=1 against acks=all on leader failure",
        }
    }

    /// Runs on the three-node cluster (all others on the single node).
    pub(crate) fn three_nodes(self) -> bool {
        matches!(self, Scenario::Replication | Scenario::Acks)
    }

    /// Counts effects in PostgreSQL.
    pub(crate) fn postgres(self) -> bool {
        matches!(
            self,
            Scenario::CommitTiming | Scenario::BatchCommits | Scenario::WhenToSend
        )
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a lab run is sized and what it writes.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Which scenarios, in this order.
    pub scenarios: Vec<Scenario>,
    /// Smaller counts: every scenario in seconds (the run in `cargo xtask test`).
    pub quick: bool,
    /// Seed of every random choice (crash points, the orders' ids).
    pub seed: u64,
    /// Where LAB.md goes; `None` writes nothing.
    pub report: Option<PathBuf>,
    /// Where the charts go (linked from LAB.md).
    pub charts: PathBuf,
    /// Keep the run's directory (broker and PostgreSQL logs) even when it succeeded.
    pub keep_logs: bool,
}

impl LabOptions {
    /// Every scenario with full counts, writing `docs/LAB.md` and `docs/lab/*.svg`.
    pub fn full() -> Self {
        let root = devinfra::workspace_root();
        LabOptions {
            scenarios: Scenario::ALL.to_vec(),
            quick: false,
            seed: 17,
            report: Some(root.join("docs").join("LAB.md")),
            charts: root.join("docs").join("lab"),
            keep_logs: false,
        }
    }

    /// Every scenario with small counts, writing nothing.
    pub fn quick() -> Self {
        LabOptions {
            quick: true,
            report: None,
            ..LabOptions::full()
        }
    }
}

/// What a scenario gets: the infrastructure, the run's size and its seed.
pub(crate) struct Lab {
    infra: LabInfra,
    quick: bool,
    seed: u64,
}

impl Lab {
    /// `quick` in a quick run, `full` otherwise.
    pub(crate) fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// The scenarios as `--list` prints them: number, name, title, claims.
pub fn list() -> String {
    let mut out = String::new();
    for scenario in Scenario::ALL {
        out.push_str(&format!(
            "{:>2}  {:<14} {}\n",
            scenario.number(),
            scenario.name(),
            scenario.title(),
        ));
        for claim in scenario.claims() {
            let background = match claim.grading {
                Grading::Measured(_) => "",
                Grading::Background { .. } => " (background)",
            };
            out.push_str(&format!("    - {}{background}\n", claim.text));
        }
    }
    out
}

/// Runs the scenarios of `options` on the lab's own infrastructure, printing
/// each one's claim, setup, counts and verdict as it finishes; writes LAB.md
/// and the charts when `options.report` says so.
pub async fn run(options: &LabOptions) -> Result<LabReport, LabError> {
    let started = Instant::now();
    let started_at = chrono::Local::now().format("%Y-%m-%d %H:%M").to_string();
    prereq::check().await?;
    let dev = DevInfra::from_env()?;
    let runtime = Arc::new(dev.kafka_runtime().await?);
    let kafka_version = runtime.version().to_owned();
    let dir = dev.dir().join("lab").join(format!(
        "{}-{}",
        chrono::Local::now().format("%Y%m%d-%H%M%S"),
        std::process::id()
    ));
    let mut lab = Lab {
        infra: LabInfra::new(runtime, &dir),
        quick: options.quick,
        seed: options.seed,
    };
    let outcome = run_scenarios(&mut lab, options).await;
    lab.infra.stop().await;
    let keep = options.keep_logs
        || !matches!(&outcome, Ok(results) if results.iter().all(ScenarioResult::as_expected));
    if keep {
        eprintln!("lab: logs kept in {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("lab: could not remove {}: {e}", dir.display());
    }
    let report = LabReport {
        results: outcome?,
        quick: options.quick,
        kafka_version,
        started: started_at,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        elapsed: started.elapsed(),
    };
    if let Some(path) = &options.report {
        write(&report, path, &options.charts)?;
        eprintln!("lab: wrote {}", path.display());
    }
    Ok(report)
}

async fn run_scenarios(
    lab: &mut Lab,
    options: &LabOptions,
) -> Result<Vec<ScenarioResult>, LabError> {
    let needs_single = options.scenarios.iter().any(|s| !s.three_nodes());
    let needs_three = options.scenarios.iter().any(|s| s.three_nodes());
    let needs_postgres = options.scenarios.iter().any(|s| s.postgres());
    // Start the single node, PostgreSQL and (if asked for) the three nodes at once.
    lab.infra
        .ensure(needs_single, needs_three, needs_postgres)
        .await?;
    let mut results = Vec::new();
    for &scenario in &options.scenarios {
        println!(
            "\n== {}. {}: {}",
            scenario.number(),
            scenario.name(),
            scenario.title(),
        );
        for claim in scenario.claims() {
            println!("Claim: {}", claim.text);
        }
        eprintln!("lab: running {scenario}");
        let started = Instant::now();
        let outcome = graded(scenarios::run(scenario, lab).await)?;
        let result = ScenarioResult {
            scenario,
            outcome,
            elapsed: started.elapsed(),
        };
        println!("{}", result.text());
        results.push(result);
    }
    Ok(results)
}

/// A scenario's outcome, with a wait a claim depends on that ran out
/// ([`LabError::Refuted`]) turned into that claim's "does not hold", so the
/// run goes on with the next scenario; any other error ends the run.
fn graded(run: Result<Outcome, LabError>) -> Result<Outcome, LabError> {
    match run {
        Err(LabError::Refuted {
            claim,
            what,
            waited_secs,
            last_seen,
        }) => Ok(Outcome::timed_out(claim, &what, waited_secs, &last_seen)),
        other => other,
    }
}

/// Writes LAB.md to `path` and the charts into `charts`.
fn write(
    report: &LabReport,
    path: &std::path::Path,
    charts: &std::path::Path,
) -> Result<(), LabError> {
    let io = |what: &std::path::Path, e: std::io::Error| LabError::Write {
        what: what.display().to_string(),
        source: Box::new(e),
    };
    std::fs::create_dir_all(charts).map_err(|e| io(charts, e))?;
    for result in &report.results {
        if let Some(chart) = &result.outcome.chart {
            chart.draw(&charts.join(chart.file_name()))?;
        }
    }
    let base = path.parent().unwrap_or(std::path::Path::new("."));
    let markdown = report.markdown(|scenario| {
        let result = report.results.iter().find(|r| r.scenario == scenario)?;
        let file = charts.join(result.outcome.chart.as_ref()?.file_name());
        Some(
            file.strip_prefix(base)
                .unwrap_or(&file)
                .display()
                .to_string(),
        )
    });
    std::fs::write(path, markdown).map_err(|e| io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_found_by_name_and_number() {
        for scenario in Scenario::ALL {
            assert_eq!(Scenario::from_name(scenario.name()), Some(scenario));
            assert_eq!(
                Scenario::from_name(&scenario.number().to_string()),
                Some(scenario)
            );
        }
        assert_eq!(Scenario::from_name("14"), None);
        assert_eq!(Scenario::ALL.len(), 13);
    }

    #[test]
    fn a_refuted_wait_is_a_does_not_hold_verdict_and_other_errors_end_the_run() {
        let refuted = graded(Err(LabError::Refuted {
            claim: "compaction.last-per-key",
            what: "the cleaner to keep one record per customer".into(),
            waited_secs: 90,
            last_seen: "20 records of customer-0".into(),
        }))
        .expect("a refuted wait is a verdict, not an error");
        assert_eq!(
            refuted.verdicts,
            vec![(
                "compaction.last-per-key",
                Verdict::DoesNotHold(
                    "the cleaner to keep one record per customer did not happen within 90 s".into()
                )
            )]
        );
        // A timeout no claim depends on (a broker that does not start) is not
        // a verdict: it ends the run.
        let timeout = graded(Err(LabError::Timeout {
            what: "the broker to start".into(),
            waited_secs: 60,
            last_seen: "connection refused".into(),
        }));
        assert!(matches!(timeout, Err(LabError::Timeout { .. })));
    }

    #[test]
    fn the_list_names_every_claim() {
        let listed = list();
        for scenario in Scenario::ALL {
            for claim in scenario.claims() {
                assert!(listed.contains(claim.text), "{}", claim.id);
            }
        }
    }
}
