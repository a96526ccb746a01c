//! `cargo xtask`: parses the command line and runs one of [`xtask::commands`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use xtask::chaos::{ChaosOptions, Scenario};
use xtask::commands::{self, DemoOptions};
use xtask::stack::{Profile, Service};

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
    /// Start the stack, walk three orders through it and show what invoicing
    /// and shipping recorded; then run until Ctrl-C (stopping what it started).
    Demo {
        /// Return after the walkthrough and leave the stack running.
        #[arg(long)]
        no_wait: bool,
        /// Build and run the services with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Start Kafka, PostgreSQL and the three services in the background
    /// (idempotent); print the settings and the service URLs as NAME=value.
    Up {
        /// Kafka nodes: 1, or 3 for replication (RF 3, min.insync.replicas 2).
        #[arg(long, value_enum, default_value_t = Brokers::One)]
        brokers: Brokers,
        /// Build and run the services with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Stop the services (they drain), then Kafka and PostgreSQL.
    Down,
    /// Show the infrastructure and the services: running or not, pid, address, since when.
    Status,
    /// Rebuild a consuming service's view from the topic's history in a new
    /// database and consumer group, and compare it with the live view.
    Rebuild {
        /// The service whose view is rebuilt.
        #[arg(value_enum)]
        service: Consumer,
        /// How long the rebuild may take to catch up, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Fault-injection scenarios on private infrastructure, each audited order
    /// by order; prints scenario | orders | faults injected | lost | duplicate
    /// effects | max recovery (s) and exits non-zero on any loss or duplicate.
    Chaos {
        /// A few hundred orders per scenario (the run inside `cargo xtask test`).
        #[arg(long)]
        quick: bool,
        /// Orders per scenario (default 10 000; 300 with --quick).
        #[arg(long)]
        orders: Option<usize>,
        /// Orders started per second (default 200; 60 with --quick).
        #[arg(long)]
        rate: Option<f64>,
        /// Only these scenarios (repeatable); all eight by default.
        #[arg(long = "scenario", value_enum)]
        scenarios: Vec<Scenario>,
        /// Build and run the services with the release profile.
        #[arg(long)]
        release: bool,
        /// Also write the table and the checks to this markdown file.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

/// The services whose view can be rebuilt from the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consumer {
    /// invoicing-service.
    Invoicing,
    /// shipping-service.
    Shipping,
}

impl From<Consumer> for Service {
    fn from(consumer: Consumer) -> Self {
        match consumer {
            Consumer::Invoicing => Service::Invoicing,
            Consumer::Shipping => Service::Shipping,
        }
    }
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
    /// Show each component and service: running or not, pid, address, since when.
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
        Command::Demo { no_wait, release } => {
            let options = DemoOptions {
                no_wait,
                profile: Profile::from_release_flag(release),
            };
            commands::demo(options).await?;
        }
        Command::Up { brokers, release } => {
            commands::up(brokers.count(), Profile::from_release_flag(release)).await?;
        }
        Command::Chaos {
            quick,
            orders,
            rate,
            scenarios,
            release,
            report,
        } => {
            let mut options = if quick {
                ChaosOptions::quick()
            } else {
                ChaosOptions::full()
            };
            options.orders = orders.unwrap_or(options.orders);
            options.rate = rate.unwrap_or(options.rate);
            if !scenarios.is_empty() {
                options.scenarios = scenarios;
            }
            options.profile = Profile::from_release_flag(release);
            return Ok(commands::chaos(options, report).await?);
        }
        Command::Down => commands::down().await?,
        Command::Status => commands::status().await?,
        Command::Rebuild {
            service,
            timeout_secs,
        } => {
            let identical =
                commands::rebuild(service.into(), Duration::from_secs(timeout_secs)).await?;
            if !identical {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
