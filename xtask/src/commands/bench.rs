//! `cargo xtask bench`: throughput and latency of the flow next to the
//! machine's PostgreSQL and Kafka ceilings (see the `bench` crate).
//!
//! Progress goes to stderr; the report and the plot are written where the
//! options say (`BENCHMARKS.md` and `benchmarks/latency.svg` by default), and
//! their paths and the headline numbers are printed to stdout.

use std::process::ExitCode;

use bench::{BenchError, BenchOptions};
use devinfra::interrupts::{Interrupts, interrupted_by};

/// Runs the benchmark of `options` and writes its report.
pub async fn bench(options: BenchOptions) -> Result<ExitCode, BenchError> {
    let mut interrupts = Interrupts::install()?;
    let results = tokio::select! {
        results = bench::run(&options) => results?,
        // Dropping the run kills what it started (see `BenchInfra`'s Drop and
        // the children's kill_on_drop).
        signal = interrupts.recv() => return Ok(interrupted_by(signal)),
    };
    bench::write(&results)?;
    println!("report: {}", options.report.display());
    println!("plot: {}", options.plot.display());
    println!(
        "sustained: {:.0} orders/s; relay drain: {:.0} events/s",
        results.sustained_rate(),
        results.drain_rate()
    );
    Ok(ExitCode::SUCCESS)
}
