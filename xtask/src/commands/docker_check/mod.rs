//! `cargo xtask docker-check`: the Docker path, run for real.
//!
//! The drift tests (`tests/tests/drift.rs`) read docker-compose.yml, the
//! Dockerfile and .dockerignore on every machine; they cannot see what only an
//! engine shows (a port the engine hands out round-robin, a build context of
//! hundreds of MB). This command runs both ways most people use the project,
//! on a Docker engine with Compose v2, and fails when either fails:
//!
//! - **compose** ([`compose`]): `docker compose up --build -d`, every service
//!   healthy, the README's order (its own curl commands) through invoicing and
//!   shipping and its cancel too, the pages, one more shipping instance taking
//!   half of the partitions, the README's topic commands, and `down -v`
//!   leaving no container, volume or network of the project;
//! - **testcontainers**: the flow, relay and consumer end-to-end tests with no
//!   infrastructure in the environment, so they start their own Kafka and
//!   PostgreSQL containers, and no container left afterwards.
//!
//! It refuses to start while the compose project has containers or volumes
//! (its last step is `down -v`, which would drop their data). `.ci/run` starts
//! the engine and provides the images (pulled, or local stand-ins where no
//! registry answers) before calling it.

mod compose;
mod readme;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use devinfra::infra::{KAFKA_BOOTSTRAP_SERVERS, POSTGRES_ADMIN_URL, service_url_var};
use devinfra::interrupts::{Interrupts, interrupted_by, wait_passing_on};
use devinfra::postgres::service_databases;
use devinfra::{InfraError, workspace_root};

use super::exit_code;

/// Why the Docker check failed or could not run.
#[derive(Debug, thiserror::Error)]
pub enum DockerCheckError {
    /// A program could not be started.
    #[error("could not run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A command exited with a failure.
    #[error("`{command}` failed ({status}){}", stderr_tail(.stderr))]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A file could not be read.
    #[error("could not {what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something the check expects did not hold.
    #[error("{0}")]
    Check(String),
    /// Waiting, interrupt handling or signalling failed.
    #[error(transparent)]
    Infra(#[from] InfraError),
}

/// The last lines of a command's stderr, for its error message.
fn stderr_tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(": {}", lines[lines.len().saturating_sub(8)..].join("\n  "))
}

/// Which parts of the check to run.
#[derive(Debug, Clone, Copy)]
pub struct DockerCheckParts {
    /// The compose path.
    pub compose: bool,
    /// The end-to-end tests on testcontainers.
    pub testcontainers: bool,
}

/// The end-to-end tests run on testcontainers: the flow, the relay and the
/// consumers. `kafka_is_down` runs Kafka natively whatever the environment
/// (it stops and restarts a broker of its own): `cargo xtask test` runs it.
const E2E_TESTS: &[&str] = &[
    "flow::",
    "relay::",
    "consumers::",
    "--skip",
    "kafka_is_down",
];

/// Label testcontainers puts on the end-to-end tests' containers (`tests/src/containers.rs`).
const E2E_LABEL: &str = "order-flow.e2e.pid";

/// Runs the parts of the Docker check asked for; `test_args` go to the test binary.
pub async fn docker_check(
    parts: DockerCheckParts,
    test_args: &[String],
) -> Result<ExitCode, DockerCheckError> {
    let mut interrupts = Interrupts::install()?;
    preflight().await?;
    let mut timings = Vec::new();
    if parts.compose {
        let started = Instant::now();
        let code = compose::check(&mut interrupts).await?;
        timings.push(("compose", started.elapsed()));
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    if parts.testcontainers {
        let started = Instant::now();
        let code = testcontainers(test_args, &mut interrupts).await?;
        timings.push(("testcontainers", started.elapsed()));
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    for (part, took) in timings {
        eprintln!("xtask: docker-check {part}: passed in {}s", took.as_secs());
    }
    Ok(ExitCode::SUCCESS)
}

/// An engine answers, and Compose is v2.
async fn preflight() -> Result<(), DockerCheckError> {
    let server = output(&["docker", "version", "--format", "{{.Server.Version}}"])
        .await
        .map_err(|e| {
            DockerCheckError::Check(format!(
                "no Docker engine answers ({e}); start dockerd (`.ci/run` does) or Docker Desktop"
            ))
        })?;
    let compose = output(&["docker", "compose", "version", "--short"])
        .await
        .map_err(|e| {
            DockerCheckError::Check(format!(
                "`docker compose` (Compose v2) is missing ({e}); docker-compose.yml needs it"
            ))
        })?;
    eprintln!(
        "xtask: Docker engine {}, Compose {}",
        server.trim(),
        compose.trim()
    );
    Ok(())
}

/// A command in the workspace root, its children killed when it is dropped
/// (an interrupted check does not leave a `docker compose` running).
fn command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(args[0]);
    command
        .args(&args[1..])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `args`, returns its stdout; a failure carries its stderr.
async fn output(args: &[&str]) -> Result<String, DockerCheckError> {
    captured(command(args), &args.join(" ")).await
}

/// Runs `command` (shown as `shown`), returns its stdout; a failure carries its stderr.
async fn captured(
    mut command: tokio::process::Command,
    shown: &str,
) -> Result<String, DockerCheckError> {
    let out = command
        .output()
        .await
        .map_err(|e| DockerCheckError::Spawn {
            program: shown.to_owned(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(DockerCheckError::Failed {
            command: shown.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a shell command line (one of the README's), with `env` set; returns its stdout.
async fn shell(line: &str, env: &[(&str, &str)]) -> Result<String, DockerCheckError> {
    let mut command = command(&["sh", "-c", line]);
    command.envs(env.iter().copied());
    captured(command, line).await
}

/// Every container on the engine, running or not, by id.
async fn containers(filter: Option<&str>) -> Result<BTreeSet<String>, DockerCheckError> {
    let mut args = vec!["docker", "ps", "-a", "-q", "--no-trunc"];
    if let Some(filter) = filter {
        args.extend(["--filter", filter]);
    }
    Ok(output(&args).await?.lines().map(str::to_owned).collect())
}

/// The flow, relay and consumer end-to-end tests with no infrastructure in
/// the environment (so on containers they start), then no container left.
async fn testcontainers(
    test_args: &[String],
    interrupts: &mut Interrupts,
) -> Result<ExitCode, DockerCheckError> {
    let before = containers(None).await?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = tokio::process::Command::new(&cargo);
    // `--workspace`: the features `cargo xtask test` builds with, so its
    // test binary is reused.
    command
        .args(["test", "--workspace", "--test", "e2e", "--"])
        .args(E2E_TESTS)
        .args(test_args)
        .current_dir(workspace_root());
    let infra_vars = [
        KAFKA_BOOTSTRAP_SERVERS.to_owned(),
        POSTGRES_ADMIN_URL.to_owned(),
    ]
    .into_iter()
    .chain(service_databases().map(service_url_var));
    for var in infra_vars {
        command.env_remove(var);
    }
    eprintln!(
        "xtask: cargo test --workspace --test e2e -- {} (no infrastructure variables: testcontainers)",
        E2E_TESTS.join(" ")
    );
    let mut child = command.spawn().map_err(|e| DockerCheckError::Spawn {
        program: cargo.to_string_lossy().into_owned(),
        source: e,
    })?;
    let (status, interrupted) = wait_passing_on(&mut child, "cargo test", interrupts).await?;
    if let Some(signal) = interrupted {
        return Ok(interrupted_by(signal));
    }
    let code = exit_code(status);
    let left: Vec<String> = containers(None)
        .await?
        .difference(&before)
        .cloned()
        .collect();
    if !left.is_empty() {
        let labelled = containers(Some(&format!("label={E2E_LABEL}"))).await?;
        return Err(DockerCheckError::Check(format!(
            "the end-to-end tests left {} container(s) behind: {} ({} labelled {E2E_LABEL})",
            left.len(),
            left.iter()
                .map(|id| &id[..12])
                .collect::<Vec<_>>()
                .join(", "),
            left.iter().filter(|id| labelled.contains(*id)).count()
        )));
    }
    if code == ExitCode::SUCCESS {
        eprintln!("xtask: the end-to-end tests passed on testcontainers and left no container");
    }
    Ok(code)
}

/// How long a step took, for the progress lines.
fn secs(since: Instant) -> u64 {
    since.elapsed().as_secs()
}

/// Generous deadlines: the check must pass on a slow, busy machine.
const HEALTHY_WITHIN: Duration = Duration::from_secs(300);
/// How long a record may take through the flow, or a rebalance to settle.
const FLOW_WITHIN: Duration = Duration::from_secs(120);
/// How long the scale-out may take to show in Kafka's own group tool: each
/// look is a JVM started in the broker's container, whose admin client waits
/// up to its 60 s API timeout for the coordinator when the machine is busy
/// (seen: two such looks filled the whole 120 s of [`FLOW_WITHIN`]).
const SCALE_WITHIN: Duration = Duration::from_secs(300);
/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(500);
