//! `cargo xtask`: parses the command line and runs one of [`xtask::commands`].

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use xtask::commands;

/// Development tasks of the order flow: real Kafka and PostgreSQL without Docker.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start, stop or inspect the local Kafka and PostgreSQL.
    Infra {
        #[command(subcommand)]
        action: InfraAction,
    },
    /// Run `cargo test --workspace --all-targets` against real infrastructure
    /// (taken from KAFKA_BOOTSTRAP_SERVERS and POSTGRES_ADMIN_URL when set,
    /// otherwise started here and stopped afterwards).
    Test {
        /// Arguments for the test binaries, after `--` (e.g. `-- --nocapture`).
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// Start everything the flow needs and print what runs and how to reach it.
    Demo,
    /// Start the local stack (for now the infrastructure, as `infra up`).
    Up {
        /// Kafka nodes: 1, or 3 for replication (RF 3, min.insync.replicas 2).
        #[arg(long, value_enum, default_value_t = Brokers::One)]
        brokers: Brokers,
    },
    /// Stop the local stack (for now the infrastructure, as `infra down`).
    Down,
}

#[derive(Debug, Subcommand)]
enum InfraAction {
    /// Start Kafka and PostgreSQL (idempotent) and print their settings as NAME=value.
    Up {
        /// Kafka nodes: 1, or 3 for replication (RF 3, min.insync.replicas 2).
        #[arg(long, value_enum, default_value_t = Brokers::One)]
        brokers: Brokers,
    },
    /// Stop Kafka, then PostgreSQL, and wait until their processes are gone.
    Down,
    /// Show each component: running or not, pid, address, since when.
    Status,
}

/// The supported Kafka cluster sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Brokers {
    /// One node, broker and controller.
    #[value(name = "1")]
    One,
    /// Three nodes, each broker and controller.
    #[value(name = "3")]
    Three,
}

impl Brokers {
    fn count(self) -> usize {
        match self {
            Brokers::One => 1,
            Brokers::Three => 3,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Infra { action } => match action {
            InfraAction::Up { brokers } => commands::infra_up(brokers.count()).await?,
            InfraAction::Down => commands::infra_down().await?,
            InfraAction::Status => commands::infra_status().await?,
        },
        Command::Test { test_args } => return Ok(commands::test(&test_args).await?),
        Command::Demo => commands::demo().await?,
        Command::Up { brokers } => commands::infra_up(brokers.count()).await?,
        Command::Down => commands::infra_down().await?,
    }
    Ok(ExitCode::SUCCESS)
}
