//! `cargo xtask bench --smoke` in-process: every phase of the benchmark runs
//! (private infrastructure, two short rate steps, both ceilings, a small relay
//! drain, each of the last two through SCRAM and without authentication) and
//! the report it writes is complete. Its numbers are not judged:
//! performance goals are never asserted in tests. The report goes to a
//! temporary directory, never over the workspace's BENCHMARKS.md. It runs the
//! whole stack natively, also on a machine with Docker, and says so in one
//! line when the native tools are missing.

use bench::BenchOptions;
use devinfra::prereq::{self, NativeNeeds};

/// The number at the start of the `column`th cell (from 1) of the table row whose first cell is `label`.
fn number_in_row(report: &str, label: &str, column: usize) -> f64 {
    let row = report
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no row {label:?} in the report:\n{report}"));
    let cell = row.split('|').nth(column + 1).unwrap_or("").trim();
    let number: String = cell
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("cell {cell:?} of row {row:?} is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_benchmark_writes_a_complete_report() {
    prereq::native_test(
        "the_smoke_benchmark_writes_a_complete_report",
        "it measures the stack the way `cargo xtask bench` runs it",
        NativeNeeds::KafkaAndPostgres,
    )
    .await
    .unwrap_or_else(|unavailable| panic!("{unavailable}"));
    let dir = std::env::temp_dir().join(format!("xtask-bench-smoke-{}", uuid::Uuid::new_v4()));
    let options = BenchOptions::smoke(&dir);
    assert!(
        options.report.starts_with(&dir),
        "the smoke report stays in its temp dir"
    );
    let results = bench::run(&options)
        .await
        .expect("the smoke benchmark runs");
    bench::write(&results).expect("the report is written");

    let report = std::fs::read_to_string(&options.report).expect("the report exists");
    for section in [
        "# Benchmarks",
        "## Headline",
        "## Goals",
        "## Machine",
        "## Cost of an order",
        "## Method",
        "## Results per rate",
        "### 20 orders/s",
        "## Sustained throughput",
        "## Relay drain",
        "## Footprint",
        "## Ceilings and ratios",
        "## What SCRAM costs",
        "## Tuning",
    ] {
        assert!(report.contains(section), "no {section:?} in:\n{report}");
    }
    // Every figure is a number (whatever its value).
    number_in_row(&report, "Sustained throughput (orders/s)", 1);
    number_in_row(&report, "Sustained throughput (orders/s)", 2);
    assert!(
        number_in_row(&report, "Relay drain (events/s)", 1) > 0.0,
        "the relay drained"
    );
    assert!(
        number_in_row(&report, "Relay drain (events/s)", 2) > 0.0,
        "the producer ceiling ran"
    );
    number_in_row(
        &report,
        "pgbench, the same with a NOTIFY in the transaction (the old wake-up)",
        1,
    );
    // Both listeners of the broker carried the producer ceiling, the relay's
    // drain and new clients: SCRAM in column 1, no authentication in 2.
    for figure in [
        "Producer ceiling (records/s)",
        "Relay drain rate (events/s)",
        "New client to its first metadata answer, median (ms)",
        "New idempotent producer to its first delivery, median (ms)",
    ] {
        for column in [1, 2] {
            assert!(
                number_in_row(&report, figure, column) > 0.0,
                "column {column} of {figure:?}"
            );
        }
        number_in_row(&report, figure, 3);
    }
    // Every server of the flow used CPU for the orders of each step (the
    // load generator's share may round to 0 at clock-tick resolution), and
    // pgbench's transaction cost PostgreSQL some.
    for rate in ["20", "50"] {
        for column in 1..=5 {
            assert!(
                number_in_row(&report, rate, column) > 0.0,
                "column {column} of the cost at {rate} orders/s"
            );
        }
        number_in_row(&report, rate, 6);
        assert!(number_in_row(&report, rate, 7) > 0.0, "total at {rate}");
        // Above idle (what the orders cost beyond the idle processes).
        number_in_row(&report, rate, 8);
    }
    assert!(
        report.contains("**Idle.** Before the first order"),
        "the idle baseline is reported:\n{report}"
    );
    assert!(
        number_in_row(
            &report,
            "pgbench, one order's transaction as order-service runs it (no NOTIFY), 8 clients (transactions/s)",
            2
        ) > 0.0,
        "pgbench's CPU per transaction"
    );
    for latency in ["POST /orders", "order → invoice", "order → shipment"] {
        assert!(
            number_in_row(&report, latency, 1) > 0.0,
            "{latency} has values"
        );
        number_in_row(&report, latency, 4);
    }
    for service in ["order-service", "invoicing-service", "shipping-service"] {
        assert!(
            number_in_row(&report, service, 1) > 0.0,
            "{service} idle RSS"
        );
    }
    assert!(report.contains("| CPU |") && report.contains("| Kafka |"));

    let svg = std::fs::read_to_string(&options.plot).expect("the plot exists");
    assert!(
        svg.starts_with("<svg"),
        "an SVG: {}",
        &svg[..svg.len().min(80)]
    );
    assert!(
        report.contains("](benchmarks/latency.svg)"),
        "the report links the plot"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
