//! 5. Batch commits trade throughput for redelivery.
//!
//! The consumer of scenario 4 (commit after processing, no dedup) reads the
//! same topic once per commit interval K, each K in its own group. It
//! commits its offset every K records and crashes at the worst moment: one
//! record before a commit, half-way through the topic. The effects are rows
//! in PostgreSQL (with `synchronous_commit = off`, so the cost measured is
//! the offset commit's, not the disk's); throughput is records handled per
//! second of the consumers' busy time.

use crate::chart::{BatchPoint, Chart};
use crate::{Lab, LabError, Outcome, Table, Verdict};

use super::crashing_consumer::{self as consumer, Commit, Crash, Setup};

const TOPIC: &str = "batch-commits.orders";
/// Runs per commit interval: a timing on a shared machine varies, so the
/// table gives the median and the range.
const RUNS: usize = 3;

/// What one run at one commit interval counted.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Distinct records applied.
    distinct: u64,
    /// Offset commits the coordinator acknowledged.
    commits: u64,
    /// Records handled per second of the consumers' busy time.
    throughput: f64,
    /// Records applied more than once.
    reprocessed: u64,
}

/// The median and the range of a few timings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// Of `values` (zeros when there are none; the median of an even count
    /// is the mean of the middle two).
    fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Spread::default();
        }
        Spread {
            median: (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0,
            min: sorted[0],
            max: sorted[n - 1],
        }
    }
}

/// The runs' count, once when they agree, else each run's.
fn each(runs: &[Run], count: impl Fn(&Run) -> u64) -> String {
    let counts: Vec<u64> = runs.iter().map(count).collect();
    match counts.as_slice() {
        [first, rest @ ..] if rest.iter().all(|c| c == first) => first.to_string(),
        _ => counts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" / "),
    }
}

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let records = lab.pick(600, 4_000);
    let intervals: Vec<usize> = lab.pick(vec![1, 10, 100], vec![1, 10, 100, 1_000]);
    let (bootstrap, pool) = consumer::prepare(
        lab,
        "lab_batch_commits",
        &[("synchronous_commit", "off")],
        false,
        TOPIC,
        records,
    )
    .await?;

    let mut table = Table::new(&[
        "commit every K",
        "records",
        "offset commits",
        &format!("records/s, median of {RUNS}"),
        "records/s, range",
        "processed again after the crash",
        "at most K−1",
    ]);
    let mut points = Vec::new();
    let mut ranges = Vec::new();
    let mut redelivery_as_claimed = true;
    for &every in &intervals {
        let mut runs = Vec::new();
        for run in 1..=RUNS {
            let label = format!("every {every}, run {run}");
            let group = format!("batch-commits-{every}-{run}");
            let setup = Setup {
                bootstrap: &bootstrap,
                topic: TOPIC,
                group: &group,
                pool: &pool,
                label: &label,
                commit: Commit::AfterProcessing,
                batch: every,
            };
            // Half-way through the topic, one record before the batch's commit.
            let crash = Crash {
                batch: (records / 2 / every).max(1),
                after: every - 1,
            };
            let first = consumer::incarnation(&setup, Some(crash)).await?;
            let second = consumer::incarnation(&setup, None).await?;
            let (effects, distinct) = consumer::effects(&pool, &label).await?;
            let busy = (first.busy + second.busy).as_secs_f64().max(1e-6);
            runs.push(Run {
                distinct: u64::try_from(distinct).unwrap_or(0),
                commits: first.commits + second.commits,
                throughput: (first.handled + second.handled) as f64 / busy,
                reprocessed: u64::try_from(effects - distinct).unwrap_or(0),
            });
        }
        let throughputs: Vec<f64> = runs.iter().map(|r| r.throughput).collect();
        let spread = Spread::of(&throughputs);
        redelivery_as_claimed &= runs
            .iter()
            .all(|r| r.distinct == records as u64 && r.reprocessed == every as u64 - 1);
        table.row(vec![
            every.to_string(),
            each(&runs, |r| r.distinct),
            each(&runs, |r| r.commits),
            format!("{:.0}", spread.median),
            format!("{:.0}–{:.0}", spread.min, spread.max),
            each(&runs, |r| r.reprocessed),
            (every - 1).to_string(),
        ]);
        points.push(BatchPoint {
            every: every as u64,
            throughput: spread.median,
            reprocessed: runs.iter().map(|r| r.reprocessed).max().unwrap_or(0),
        });
        ranges.push(spread);
    }
    let (slowest, fastest) = (
        ranges.first().copied().unwrap_or_default(),
        ranges.last().copied().unwrap_or_default(),
    );
    // Faster means every run at the largest K beat every run at K = 1.
    let verdict = if redelivery_as_claimed && fastest.min > slowest.max {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "reprocessed {:?} for K {intervals:?}; records/s {:.0}–{:.0} at K={} and {:.0}–{:.0} at K={}",
            points.iter().map(|p| p.reprocessed).collect::<Vec<_>>(),
            slowest.min,
            slowest.max,
            intervals.first().copied().unwrap_or(0),
            fastest.min,
            fastest.max,
            intervals.last().copied().unwrap_or(0),
        ))
    };
    let (slowest, fastest) = (slowest.median, fastest.median);
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` (1 partition), {records} records; per K, {RUNS} times, a consumer in a group of \
             its own applies each record (a row in PostgreSQL, synchronous_commit off) and commits its offset \
             synchronously every K records; it crashes half-way, one record before a commit (the worst \
             moment), and a new incarnation finishes. Counts that differ between the runs are listed per run; \
             \"faster\" means every run at the largest K beat every run at K=1."
        ),
        tables: vec![table],
        notes: vec![
            format!(
                "Per record (medians of the runs), committing every time cost {:.1} ms more than committing every \
                 {} records: about one synchronous round trip to the group coordinator. Once K makes that share small, a larger K \
                 buys little speed and only more redelivery.",
                (1.0 / slowest.max(1e-6) - 1.0 / fastest.max(1e-6)) * 1000.0,
                intervals.last().copied().unwrap_or(1)
            ),
            "A crash at a random moment repeats (K−1)/2 records on average; the worst case is K−1. Our inbox \
             batches the same way, and its dedup makes the repeats harmless (scenario 4)."
                .into(),
        ],
        verdicts: vec![("batch-commits.trade-off", verdict)],
        chart: Some(Chart::BatchCommits(points)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_summed_up_as_median_and_range() {
        let spread = Spread::of(&[900.0, 450.0, 1400.0]);
        assert_eq!(
            spread,
            Spread {
                median: 900.0,
                min: 450.0,
                max: 1400.0
            }
        );
        assert_eq!(Spread::of(&[1.0, 3.0]).median, 2.0);
        assert_eq!(Spread::of(&[]), Spread::default());
    }

    #[test]
    fn counts_that_agree_are_given_once_and_others_per_run() {
        let run = |commits| Run {
            distinct: 600,
            commits,
            throughput: 1.0,
            reprocessed: 9,
        };
        assert_eq!(each(&[run(60), run(60), run(60)], |r| r.commits), "60");
        assert_eq!(
            each(&[run(60), run(61), run(60)], |r| r.commits),
            "60 / 61 / 60"
        );
    }
}
