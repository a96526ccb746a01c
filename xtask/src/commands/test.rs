//! `cargo xtask test`: the whole test suite against real infrastructure.
//!
//! First it sets up what the tests need beyond the infrastructure, before
//! anything slow starts: whatever this machine lacks (Chromium and its
//! driver, Python 3 with `venv` and npm, and the infrastructure's own
//! prerequisites) is reported at once, one line each with the command that
//! installs it; then
//! the contract tools and the chart's tools are installed when missing or stale
//! ([`devinfra::contract_tools`]) and the AsyncAPI document is validated.
//!
//! When `KAFKA_BOOTSTRAP_SERVERS` and `POSTGRES_ADMIN_URL` are already set
//! (CI services, a shared environment), the tests use them. Otherwise this
//! starts the local infrastructure, runs `cargo test --workspace --all-targets`
//! with the settings in its environment, and stops again whatever it started,
//! also when the tests fail or the run is interrupted (Ctrl-C, SIGTERM).
//! Components that were already running before are left running.
//!
//! When the tests pass, the quick chaos run follows (a few hundred orders per
//! scenario, on infrastructure of its own; see the `chaos` crate), unless
//! `--skip-chaos` is given; then the quick lab (every scenario of the `lab`
//! crate with small counts, failing when a verdict is not the expected one),
//! unless `--skip-lab` is given.

use std::ffi::OsString;
use std::process::ExitCode;

use chaos::{ChaosError, ChaosOptions};
use devinfra::infra::{DevInfra, Running, Settings};
use devinfra::interrupts::{Interrupts, interrupted_by, uninterrupted, wait_passing_on};
use devinfra::{InfraError, contract_tools, prereq, workspace_root};
use lab::{LabError, LabOptions};

use super::exit_code;

/// Why the test run could not be carried out (as opposed to failing).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The tests or the chaos run could not be run.
    #[error(transparent)]
    Chaos(#[from] ChaosError),
    /// The lab could not be run.
    #[error(transparent)]
    Lab(#[from] LabError),
}

impl From<InfraError> for TestError {
    fn from(error: InfraError) -> Self {
        TestError::Chaos(error.into())
    }
}

/// Runs the workspace's tests against real infrastructure (`test_args` go to
/// the test binaries), then, when they pass, the quick chaos run (if `chaos`)
/// and the quick lab (if `lab`), each on infrastructure of its own.
pub async fn test(test_args: &[String], chaos: bool, lab: bool) -> Result<ExitCode, TestError> {
    let mut interrupts = Interrupts::install()?;
    set_up().await?;
    let code = cargo_test(test_args, &mut interrupts).await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    if chaos {
        eprintln!("xtask: quick chaos run (`cargo xtask chaos --quick`)");
        let code =
            super::chaos::run_and_report(&ChaosOptions::quick(), None, &mut interrupts).await?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    if lab {
        eprintln!("xtask: quick lab (`cargo xtask lab --quick`)");
        return Ok(super::lab::run_and_report(&LabOptions::quick(), &mut interrupts).await?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks the machine for everything the run needs (all missing tools in one
/// report), then installs the contract and chart tools and validates the
/// AsyncAPI document.
async fn set_up() -> Result<(), InfraError> {
    let mut missing = prereq::test_tools().await;
    if Settings::from_env().is_none()
        && let Err(InfraError::MissingPrerequisites(infra)) = prereq::check().await
    {
        missing.extend(infra);
    }
    if !missing.is_empty() {
        return Err(InfraError::MissingPrerequisites(missing));
    }
    eprintln!("xtask: contract tools (installed into .tools/ when missing or stale)");
    contract_tools::install().await?;
    eprintln!("xtask: chart tools (installed into .tools/chart when missing or stale)");
    contract_tools::install_chart_tools().await?;
    eprintln!("xtask: validating shared-events/asyncapi.yaml");
    contract_tools::validate_asyncapi().await
}

async fn cargo_test(
    test_args: &[String],
    interrupts: &mut Interrupts,
) -> Result<ExitCode, InfraError> {
    if let Some(settings) = Settings::from_env() {
        eprintln!("xtask: using Kafka and PostgreSQL from the environment");
        return run_cargo_test(&settings, test_args, interrupts).await;
    }

    let infra = DevInfra::from_env()?;
    let before = infra.running()?;
    // An interrupted startup is not cancelled half-way (a server could come up
    // after we looked): it finishes, then everything it started is stopped.
    let (up, interrupted) = uninterrupted(infra.up(1), interrupts).await;
    let outcome = match (up, interrupted) {
        (Ok(_), Some(signal)) => Ok(interrupted_by(signal)),
        (Ok(report), None) => run_cargo_test(&report.settings, test_args, interrupts).await,
        (Err(e), _) => Err(e),
    };
    let cleanup = stop_what_we_started(&infra, before).await;
    match (outcome, cleanup) {
        (Ok(code), Ok(())) => Ok(code),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

async fn stop_what_we_started(infra: &DevInfra, before: Running) -> Result<(), InfraError> {
    let kafka = if before.kafka {
        Ok(())
    } else {
        infra.stop_kafka().await
    };
    let postgres = if before.postgres {
        Ok(())
    } else {
        infra.stop_postgres().await
    };
    if before.kafka || before.postgres {
        eprintln!("xtask: left running what was running before the tests");
    }
    kafka.and(postgres)
}

/// `cargo test --workspace --all-targets`, output streamed, its exit status returned.
async fn run_cargo_test(
    settings: &Settings,
    test_args: &[String],
    interrupts: &mut Interrupts,
) -> Result<ExitCode, InfraError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = tokio::process::Command::new(&cargo);
    command
        .args(["test", "--workspace", "--all-targets"])
        .envs(settings.env_vars())
        .current_dir(workspace_root());
    if !test_args.is_empty() {
        command.arg("--").args(test_args);
    }
    eprintln!("xtask: cargo test --workspace --all-targets");
    let mut child = command.spawn().map_err(|e| InfraError::Spawn {
        program: cargo.to_string_lossy().into_owned(),
        source: e,
    })?;
    let (status, interrupted) = wait_passing_on(&mut child, "cargo test", interrupts).await?;
    match interrupted {
        Some(signal) => Ok(interrupted_by(signal)),
        None => Ok(exit_code(status)),
    }
}
