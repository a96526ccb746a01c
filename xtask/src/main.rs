//! `cargo xtask`: the dev tool of the order flow, a thin command line.
//!
//! It parses the command line and runs one of [`commands`], each of which
//! hands the work to a tool crate: `devinfra` (Kafka, PostgreSQL and the
//! services as local processes, the rebuild), `demo`, `chaos`, `bench` and `lab`.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bench::BenchOptions;
use chaos::{ChaosOptions, Scenario};
use clap::{Parser, Subcommand, ValueEnum};
use demo::DemoOptions;
use devinfra::kafka::KafkaTool;
use devinfra::stack::{Profile, Service};
use platform::services;
use shared_events::topics;

/// Development tasks of the order flow: real Kafka and PostgreSQL without Docker.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a consumer of the orders topic, NAME-service, and register it
    /// everywhere the flow lists its services (registry, workspace, image,
    /// compose, Helm values, the README's configuration table); prints what
    /// to edit next.
    NewConsumer {
        /// Its name: 3 to 20 lower-case letters or digits (e.g. loyalty).
        name: String,
    },
    /// Start, stop or inspect the local Kafka and PostgreSQL.
    Infra {
        #[command(subcommand)]
        action: InfraAction,
    },
    /// Run `cargo test --workspace --all-targets` against real infrastructure
    /// (taken from KAFKA_BOOTSTRAP_SERVERS and POSTGRES_ADMIN_URL when set,
    /// otherwise started here and stopped afterwards).
    Test {
        /// Skip the quick chaos run that follows the tests.
        #[arg(long)]
        skip_chaos: bool,
        /// Skip the quick lab that follows the tests (and the chaos run).
        #[arg(long)]
        skip_lab: bool,
        /// Arguments for the test binaries, after `--` (e.g. `-- --nocapture`).
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// Run the Docker path for real, on a Docker engine with Compose v2:
    /// `docker compose up --build`, the README's order through both
    /// consumers, a second shipping instance, the README's topic commands,
    /// `down -v` leaving nothing; then the flow, relay and consumer
    /// end-to-end tests on testcontainers, leaving no container.
    DockerCheck {
        /// Leave out the compose path.
        #[arg(long)]
        skip_compose: bool,
        /// Leave out the end-to-end tests on testcontainers.
        #[arg(long)]
        skip_testcontainers: bool,
        /// Arguments for the test binary, after `--` (e.g. `-- --nocapture`).
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
        /// Also start Zipkin (UI on ZIPKIN_PORT, default 9411) with an OTLP
        /// receiver (OTLP_PORT, default 4318) and let the services export
        /// their spans there (OTEL_EXPORTER_OTLP_ENDPOINT).
        #[arg(long)]
        tracing: bool,
    },
    /// Stop the services (they drain), the trace backend if it runs, then
    /// Kafka and PostgreSQL.
    Down,
    /// Show the infrastructure and the services: running or not, pid, address, since when.
    Status,
    /// Rebuild a consuming service's view from the topic's history in a new
    /// database and consumer group, and compare it with the live view.
    Rebuild {
        /// The service whose view is rebuilt.
        #[arg(value_parser = consumer())]
        service: Service,
        /// How long the rebuild may take to catch up, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Throughput and end-to-end latency on private infrastructure (open-loop
    /// load at rising rates until saturation, relay drain, footprint), next to
    /// the pgbench and Kafka ProducerPerformance ceilings of this machine;
    /// writes docs/BENCHMARKS.md and docs/benchmarks/latency.svg.
    Bench {
        /// Every phase in seconds with a debug build (the numbers mean
        /// nothing), written under the temp directory unless --out is given.
        #[arg(long, visible_alias = "quick")]
        smoke: bool,
        /// Seconds per rate (default 20; 3 with --smoke).
        #[arg(long)]
        duration: Option<f64>,
        /// Rates in orders/s to run first, comma-separated (default 100,500,1000,2000).
        #[arg(long, value_delimiter = ',')]
        rates: Vec<f64>,
        /// Run only these rates instead of continuing ×1.5 until saturation.
        #[arg(long)]
        no_extend: bool,
        /// Events in the outbox for the relay drain (default 100000; 1000 with --smoke).
        #[arg(long)]
        drain_events: Option<i64>,
        /// Seconds per pgbench run (default 15; 2 with --smoke).
        #[arg(long)]
        pgbench_secs: Option<u64>,
        /// Records ProducerPerformance sends (default 300000; 5000 with --smoke).
        #[arg(long)]
        producer_records: Option<u64>,
        /// Build with the release profile (the default unless --smoke).
        #[arg(long, conflicts_with = "debug")]
        release: bool,
        /// Build with the debug profile (the default with --smoke).
        #[arg(long)]
        debug: bool,
        /// A setting for every service, NAME=value (repeatable), e.g. --env KAFKA_LINGER_MS=1.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
        /// Directory for BENCHMARKS.md and benchmarks/latency.svg (default: docs/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Watch a topic with Kafka's console consumer: each record's key,
    /// headers and value, as they arrive (until Ctrl-C).
    Topic {
        #[command(subcommand)]
        action: TopicAction,
    },
    /// Run one of Kafka's command-line tools natively, on the broker's own
    /// jars (e.g. `cargo xtask kafka configs --describe --entity-type topics
    /// --entity-name orders`); `--bootstrap-server` defaults to the local cluster.
    Kafka {
        /// The tool, as its script is named (`configs` or `kafka-configs`).
        #[arg(value_parser = parse_tool)]
        tool: KafkaTool,
        /// The tool's own arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The Kafka lab: claims people learn about Kafka, each run on real
    /// brokers of its own with counts and a verdict (holds / holds with a
    /// nuance / does not hold / not shown by this run); a full run of every
    /// scenario writes docs/LAB.md.
    Lab {
        /// Scenarios to run, by name or number (all of them by default).
        #[arg(value_parser = parse_scenario)]
        scenarios: Vec<lab::Scenario>,
        /// List the scenarios with their claims and exit.
        #[arg(long)]
        list: bool,
        /// Small counts, every scenario in seconds (what `cargo xtask test` runs); writes no LAB.md.
        #[arg(long)]
        quick: bool,
        /// Keep the brokers' and PostgreSQL's logs even when every verdict was as expected.
        #[arg(long)]
        keep_logs: bool,
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
        /// Only these scenarios (repeatable); all of them by default.
        #[arg(long = "scenario", value_enum)]
        scenarios: Vec<Scenario>,
        /// Build and run the services with the release profile.
        #[arg(long)]
        release: bool,
        /// Also write the table and the checks to this markdown file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep the services', Kafka's and PostgreSQL's logs even when every scenario passed.
        #[arg(long)]
        keep_logs: bool,
        /// A setting for every service, NAME=value (repeatable), e.g. --env KAFKA_GROUP_PROTOCOL=consumer.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_setting)]
        settings: Vec<(String, String)>,
    },
}

/// The services whose view can be rebuilt from the topic: the registry's
/// consumers, by short name (`invoicing`, `shipping`, ...).
fn consumer() -> impl clap::builder::TypedValueParser<Value = Service> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(services::consumers().map(|s| s.short)).map(
        |name: String| {
            services::find(&name)
                .copied()
                .expect("a possible value names a registered service")
        },
    )
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

#[derive(Debug, Subcommand)]
enum TopicAction {
    /// Print each record's key, headers and value as it arrives (until Ctrl-C).
    Watch {
        /// The topic: `orders`, or a dead-letter topic such as `orders.dlq.invoicing`.
        #[arg(default_value = topics::ORDERS)]
        topic: String,
        /// Start with the records already on the topic.
        #[arg(long)]
        from_beginning: bool,
    },
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

/// `NAME=value` of `--env`.
fn parse_setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=value, got {text:?}")),
    }
}

/// A lab scenario by name or number.
fn parse_scenario(name: &str) -> Result<lab::Scenario, String> {
    lab::Scenario::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = lab::Scenario::ALL.iter().map(|s| s.name()).collect();
        format!(
            "unknown scenario {name:?}; one of {} (or 1-{})",
            known.join(", "),
            known.len()
        )
    })
}

/// A Kafka tool by its script's name.
fn parse_tool(name: &str) -> Result<KafkaTool, String> {
    KafkaTool::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = KafkaTool::ALL.iter().map(|t| t.script()).collect();
        format!("unknown Kafka tool {name:?}; one of {}", known.join(", "))
    })
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
        Command::Test {
            skip_chaos,
            skip_lab,
            test_args,
        } => return Ok(commands::test(&test_args, !skip_chaos, !skip_lab).await?),
        Command::DockerCheck {
            skip_compose,
            skip_testcontainers,
            test_args,
        } => {
            let parts = commands::DockerCheckParts {
                compose: !skip_compose,
                testcontainers: !skip_testcontainers,
            };
            return Ok(commands::docker_check(parts, &test_args).await?);
        }
        Command::Lab {
            scenarios,
            list,
            quick,
            keep_logs,
        } => {
            if list {
                print!("{}", lab::list());
                return Ok(ExitCode::SUCCESS);
            }
            let mut options = if quick {
                lab::LabOptions::quick()
            } else {
                lab::LabOptions::full()
            };
            if !scenarios.is_empty() {
                // LAB.md is the record of a full run of every scenario.
                options.report = None;
                options.scenarios = scenarios;
            }
            options.keep_logs = keep_logs;
            return Ok(commands::lab(options).await?);
        }
        Command::Demo { no_wait, release } => {
            let options = DemoOptions {
                no_wait,
                profile: Profile::from_release_flag(release),
            };
            demo::run(options).await?;
        }
        Command::Up {
            brokers,
            release,
            tracing,
        } => {
            commands::up(
                brokers.count(),
                Profile::from_release_flag(release),
                tracing,
            )
            .await?;
        }
        Command::Chaos {
            quick,
            orders,
            rate,
            scenarios,
            release,
            report,
            keep_logs,
            settings,
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
            options.keep_logs = keep_logs;
            options.knobs = settings;
            return Ok(commands::chaos(options, report).await?);
        }
        Command::Bench {
            smoke,
            duration,
            rates,
            no_extend,
            drain_events,
            pgbench_secs,
            producer_records,
            release,
            debug,
            settings,
            out,
        } => {
            let mut options = match (smoke, &out) {
                (true, Some(dir)) => BenchOptions::smoke(dir),
                (true, None) => {
                    BenchOptions::smoke(std::env::temp_dir().join("orderflow-bench-smoke"))
                }
                (false, _) => BenchOptions::full(),
            };
            if let (false, Some(dir)) = (smoke, &out) {
                options.report = dir.join("BENCHMARKS.md");
                options.plot = dir.join("benchmarks").join("latency.svg");
            }
            let custom =
                duration.is_some() || !rates.is_empty() || no_extend || drain_events.is_some();
            if let Some(seconds) = duration {
                options.duration = Duration::try_from_secs_f64(seconds)?;
            }
            if !rates.is_empty() {
                options.max_rate = options
                    .max_rate
                    .max(rates.iter().copied().fold(0.0, f64::max));
                options.rates = rates;
            }
            if no_extend {
                options.until_saturated = false;
            }
            options.drain_events = drain_events.unwrap_or(options.drain_events);
            options.pgbench_duration =
                pgbench_secs.map_or(options.pgbench_duration, Duration::from_secs);
            options.producer_records = producer_records.unwrap_or(options.producer_records);
            if release {
                options.profile = Profile::Release;
            } else if debug {
                options.profile = Profile::Debug;
            }
            if custom && !smoke {
                options.mode = "custom".into();
            }
            options.knobs = settings;
            return Ok(commands::bench(options).await?);
        }
        Command::Topic {
            action:
                TopicAction::Watch {
                    topic,
                    from_beginning,
                },
        } => return Ok(commands::watch_topic(&topic, from_beginning).await?),
        Command::Kafka { tool, args } => return Ok(commands::kafka_tool(tool, args).await?),
        Command::NewConsumer { name } => return Ok(commands::new_consumer(&name)?),
        Command::Down => commands::down().await?,
        Command::Status => commands::status().await?,
        Command::Rebuild {
            service,
            timeout_secs,
        } => {
            let identical = commands::rebuild(service, Duration::from_secs(timeout_secs)).await?;
            if !identical {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
