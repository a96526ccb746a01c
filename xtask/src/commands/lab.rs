//! `cargo xtask lab`: the Kafka lab (see the `lab` crate).
//!
//! Each scenario's claim, setup, counts and verdict go to stdout as it
//! finishes, then a summary; progress goes to stderr. A full run of every
//! scenario writes LAB.md and `lab/*.svg`. Exits non-zero when a verdict is
//! not the one the lab expects.

use std::process::ExitCode;

use devinfra::interrupts::{Interrupts, interrupted_by};
use lab::{LabError, LabOptions};

/// Runs the lab with `options`.
pub async fn lab(options: LabOptions) -> Result<ExitCode, LabError> {
    let mut interrupts = Interrupts::install()?;
    run_and_report(&options, &mut interrupts).await
}

/// Runs the scenarios until done or interrupted, prints the summary, and
/// turns "every verdict as expected" into the exit code.
pub(super) async fn run_and_report(
    options: &LabOptions,
    interrupts: &mut Interrupts,
) -> Result<ExitCode, LabError> {
    let report = tokio::select! {
        report = lab::run(options) => report?,
        // Dropping the run kills the brokers and PostgreSQL it started.
        signal = interrupts.recv() => return Ok(interrupted_by(signal)),
    };
    println!(
        "\nThe lab ({}, {:.0} s):\n{}",
        if report.quick { "quick" } else { "full" },
        report.elapsed.as_secs_f64(),
        report.summary().text()
    );
    if report.as_expected() {
        eprintln!("lab: every verdict as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("lab: FAILED: a verdict differs from the expected one (see above)");
        Ok(ExitCode::FAILURE)
    }
}
