//! `cargo xtask chaos`: fault-injection scenarios with an audit of every order.
//!
//! Prints the table (scenario | orders | faults injected | lost | duplicate
//! effects | max recovery (s)) and each scenario's checks to stdout, and
//! optionally writes them to a markdown file. Exits non-zero on any loss,
//! duplicate, wrong content or failed check. See the `chaos` crate.

use std::path::Path;
use std::process::ExitCode;

use chaos::{ChaosError, ChaosOptions};
use devinfra::InfraError;
use devinfra::interrupts::{Interrupts, interrupted_by};

/// Runs the scenarios of `options`; writes the report to `report` when given.
pub async fn chaos(
    options: ChaosOptions,
    report: Option<std::path::PathBuf>,
) -> Result<ExitCode, ChaosError> {
    let mut interrupts = Interrupts::install()?;
    run_and_report(&options, report.as_deref(), &mut interrupts).await
}

/// Runs the scenarios until done or interrupted, prints the table and the
/// checks (and writes them to `report`), and turns the verdict into an exit code.
pub(super) async fn run_and_report(
    options: &ChaosOptions,
    report: Option<&Path>,
    interrupts: &mut Interrupts,
) -> Result<ExitCode, ChaosError> {
    let outcome = tokio::select! {
        outcome = chaos::run(options) => outcome?,
        // Dropping the run kills what it started (see `PrivateInfra`'s Drop).
        signal = interrupts.recv() => return Ok(interrupted_by(signal)),
    };
    let markdown = outcome.markdown();
    println!("{markdown}");
    if let Some(path) = report {
        std::fs::write(path, &markdown).map_err(|e| InfraError::io("write", path, e))?;
        eprintln!("chaos: report written to {}", path.display());
    }
    if outcome.passed() {
        eprintln!("chaos: every scenario passed");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("chaos: FAILED (see the table and the checks above)");
        Ok(ExitCode::FAILURE)
    }
}
