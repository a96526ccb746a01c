//! The command line: `orderflow-admin dlq ...` and `orderflow-admin outbox ...`.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::AdminError;
use crate::dlq::{Cluster, DeadLetter, latest_per_origin};
use crate::outbox::{self, Selection};

/// The Kafka principal the tool authenticates as by default; its ACLs allow
/// what the tool does (read the dead letters and the source topic, write the
/// retry topics, describe the consumer groups) and nothing else.
pub const PRINCIPAL: &str = "orderflow-admin";

/// The command line, with the tool's own principal as the default credentials
/// (the local development password is the principal's name).
pub fn command() -> clap::Command {
    Cli::command()
        .mut_arg("kafka_sasl_username", |a| a.default_value(PRINCIPAL))
        .mut_arg("kafka_sasl_password", |a| a.default_value(PRINCIPAL))
}

/// Dead letters and parked outbox events of the order flow, for operators.
#[derive(Debug, Parser)]
#[command(name = "orderflow-admin", version)]
pub struct Cli {
    /// Kafka brokers.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:19092",
        global = true
    )]
    pub bootstrap_servers: String,
    /// The topic order events are published to (the source of the dead letters).
    #[arg(long, env = "ORDERS_TOPIC", default_value = shared_events::topics::ORDERS, global = true)]
    pub topic: String,
    /// Who the tool is to the brokers: its own principal, [`PRINCIPAL`], by default.
    #[command(flatten)]
    pub kafka: platform::config::KafkaAuth,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A consumer's dead letters: list them, replay them.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Outbox events Kafka refused for good: list, retry, discard.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

/// `orderflow-admin dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Each dead letter of a consumer group: reason, source, event, age.
    List {
        /// The consumer group (`invoicing`, `shipping`).
        consumer: String,
    },
    /// Republishes dead letters to the group's own retry topic (`<topic>.retry.<group>`, read by that group only), each refusal once with its latest dead letter, and waits for the group to take them.
    Replay {
        /// The consumer group (`invoicing`, `shipping`).
        consumer: String,
        /// Replay the dead letters of these event ids (repeatable).
        #[arg(
            long = "event-id",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        event_ids: Vec<Uuid>,
        /// Replay every dead letter of the group.
        #[arg(long)]
        all: bool,
        /// How long to wait for the group to move past the replayed records.
        #[arg(long, default_value_t = 60)]
        wait_secs: u64,
    },
}

/// `orderflow-admin outbox ...`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// The parked events, and how many events each holds back.
    List(Database),
    /// Lets the relay try parked events again (after fixing the cause).
    Retry {
        /// The outbox id of the event (`outbox list` shows it).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every parked event.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        database: Database,
    },
    /// Drops a parked event from the flow for good, keeping it, the reason
    /// and who discarded it in `outbox_discarded`; the events held behind it
    /// are published. Says first what this does to the order (a discarded
    /// OrderPlaced is never invoiced nor shipped; a discarded OrderCancelled
    /// leaves the invoice and the shipment active) and asks to confirm.
    Discard {
        /// The outbox id of the event.
        #[arg(long)]
        id: i64,
        /// Why (kept with the event).
        #[arg(long)]
        reason: String,
        /// Who discards it (kept with the event); the login name unless given.
        #[arg(long, env = "USER")]
        by: String,
        /// Confirms without asking (needed where there is no terminal to ask on).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        database: Database,
    },
}

/// The order service's database.
#[derive(Debug, Args)]
pub struct Database {
    /// The order service's database (its outbox).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://orders:orders@127.0.0.1:15432/orders"
    )]
    pub database_url: String,
}

/// Where a command that loses data asks the operator to confirm.
pub trait Prompt {
    /// Asks `question`; the answer, or `None` when there is no one to ask.
    fn ask(&mut self, question: &str) -> Option<String>;
}

/// Asks on the terminal: the question on stderr, the answer from stdin;
/// nobody to ask when stdin is not a terminal (CI, a pipe, a cron job).
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

impl Prompt for Terminal {
    fn ask(&mut self, question: &str) -> Option<String> {
        use std::io::{BufRead, IsTerminal};
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return None;
        }
        eprint!("{question} ");
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer).ok()?;
        Some(answer.trim().to_owned())
    }
}

/// Nobody to ask: a command that needs confirmation is refused without `--yes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOneToAsk;

impl Prompt for NoOneToAsk {
    fn ask(&mut self, _question: &str) -> Option<String> {
        None
    }
}

/// Parses `args` (the program name first) and runs the command, writing its
/// report to `out` and asking on the terminal when a command needs
/// confirmation. `--help` and `--version` are written to `out` too.
pub async fn run<I, T>(
    args: I,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with(args, out, &mut Terminal).await
}

/// [`run`], asking `prompt` for confirmations.
pub async fn run_with<I, T>(
    args: I,
    out: &mut impl Write,
    prompt: &mut impl Prompt,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match command()
        .try_get_matches_from(args)
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            write!(out, "{e}")?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    match cli.command {
        Command::Dlq(command) => {
            let cluster = Cluster::new(&cli.bootstrap_servers, &cli.kafka);
            dlq(cluster, &cli.topic, command, out).await
        }
        Command::Outbox(command) => outbox(command, out, prompt).await,
    }
}

async fn dlq(
    cluster: Cluster,
    topic: &str,
    command: DlqCommand,
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match command {
        DlqCommand::List { consumer } => {
            let dlq_topic = shared_events::topics::dead_letter(topic, &consumer);
            let letters = cluster.dead_letters(&dlq_topic).await?;
            writeln!(out, "{} dead letter(s) in {dlq_topic}", letters.len())?;
            for letter in &letters {
                write_letter(out, &dlq_topic, letter)?;
            }
        }
        DlqCommand::Replay {
            consumer,
            event_ids,
            all,
            wait_secs,
        } => {
            let dlq_topic = shared_events::topics::dead_letter(topic, &consumer);
            let retry_topic = shared_events::topics::retry(topic, &consumer);
            let letters = latest_per_origin(cluster.dead_letters(&dlq_topic).await?);
            let chosen: Vec<DeadLetter> = if all {
                letters
            } else {
                for id in &event_ids {
                    if !letters.iter().any(|l| l.event_id == Some(*id)) {
                        return Err(AdminError::Refused(format!(
                            "no dead letter of event {id} in {dlq_topic}"
                        ))
                        .into());
                    }
                }
                letters
                    .into_iter()
                    .filter(|l| l.event_id.is_some_and(|id| event_ids.contains(&id)))
                    .collect()
            };
            let dead_letters_end = cluster.end_offsets(&dlq_topic).await?;
            let replayed = cluster.replay(&retry_topic, &dlq_topic, &chosen).await?;
            writeln!(
                out,
                "republished {} dead letter(s) to {retry_topic}:",
                replayed.len()
            )?;
            for (letter, r) in chosen.iter().zip(&replayed) {
                writeln!(
                    out,
                    "  {} {} -> {retry_topic}[{}]@{}",
                    letter.event_type.as_deref().unwrap_or("(no type)"),
                    letter
                        .event_id
                        .map_or_else(|| "(no event id)".to_owned(), |id| id.to_string()),
                    r.partition,
                    r.offset
                )?;
            }
            if replayed.is_empty() {
                return Ok(());
            }
            let progress = cluster
                .wait_until_taken(
                    &consumer,
                    &retry_topic,
                    &replayed,
                    &dlq_topic,
                    &dead_letters_end,
                    Duration::from_secs(wait_secs),
                )
                .await?;
            writeln!(
                out,
                "group {consumer} took {} of {} replayed record(s): {} applied (or already applied), {} dead-lettered again",
                progress.passed,
                replayed.len(),
                progress.passed.saturating_sub(progress.dead_lettered_again),
                progress.dead_lettered_again
            )?;
            if progress.passed < replayed.len() {
                return Err(AdminError::Refused(format!(
                    "group {consumer} has not committed past {} replayed record(s) within {wait_secs} s; \
                     is it running? (`orderflow-admin dlq list {consumer}` shows the dead letters again)",
                    replayed.len() - progress.passed
                ))
                .into());
            }
        }
    }
    Ok(())
}

fn write_letter(out: &mut impl Write, dlq_topic: &str, letter: &DeadLetter) -> std::io::Result<()> {
    let age = letter
        .written_at
        .map(|at| humanize(Utc::now().signed_duration_since(at)))
        .unwrap_or_else(|| "age unknown".into());
    writeln!(
        out,
        "{dlq_topic}[{}]@{}  {age}",
        letter.partition, letter.offset
    )?;
    writeln!(
        out,
        "  event   {} {}",
        letter.event_type.as_deref().unwrap_or("(no type)"),
        letter
            .event_id
            .map_or_else(|| "(no event id)".to_owned(), |id| id.to_string())
    )?;
    writeln!(
        out,
        "  source  {} key {}",
        letter.source(),
        letter
            .key
            .as_deref()
            .map_or_else(|| "(none)".into(), String::from_utf8_lossy)
    )?;
    writeln!(out, "  reason  {}", letter.reason)?;
    if let Some(omitted) = &letter.value_omitted {
        writeln!(out, "  value   not in the dead letter: {omitted}")?;
    }
    Ok(())
}

async fn outbox(
    command: OutboxCommand,
    out: &mut impl Write,
    prompt: &mut impl Prompt,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let database = match &command {
        OutboxCommand::List(database)
        | OutboxCommand::Retry { database, .. }
        | OutboxCommand::Discard { database, .. } => database,
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&database.database_url)
        .await
        .map_err(AdminError::database(
            "connecting to the order service's database",
        ))?;
    match command {
        OutboxCommand::List(_) => {
            let parked = outbox::parked(&pool).await?;
            writeln!(out, "{} parked event(s)", parked.len())?;
            for p in &parked {
                writeln!(
                    out,
                    "#{}  {} {}  key {}  {} bytes  parked {} ago, {} event(s) held behind it",
                    p.id,
                    p.event_type,
                    p.event_id,
                    p.record_key,
                    p.size,
                    humanize(Utc::now().signed_duration_since(p.parked_at)),
                    p.held
                )?;
                writeln!(out, "  reason  {}", p.park_reason)?;
            }
        }
        OutboxCommand::Retry { id, all, .. } => {
            let selection = match (id, all) {
                (Some(id), false) => Selection::Id(id),
                _ => Selection::All,
            };
            let retried = outbox::retry(&pool, selection).await?;
            writeln!(
                out,
                "retried {retried} parked event(s); the relay publishes them now (parked again if Kafka still refuses them)"
            )?;
        }
        OutboxCommand::Discard {
            id,
            reason,
            by,
            yes,
            ..
        } => {
            let parked = outbox::parked_one(&pool, id).await?;
            let consequence = outbox::consequence(&parked);
            writeln!(
                out,
                "discarding #{id} ({} {}) takes it out of the flow for good:",
                parked.event_type, parked.event_id
            )?;
            writeln!(out, "  {consequence}")?;
            out.flush()?;
            if !yes {
                confirm(prompt, id)?;
            }
            let discarded = outbox::discard(
                &pool,
                outbox::Discard {
                    id,
                    reason: &reason,
                    by: &by,
                    consequence: &consequence,
                },
            )
            .await?;
            writeln!(
                out,
                "discarded #{id} ({} {}), kept in outbox_discarded with the reason, by {by}; {} held event(s) of key {} now flow",
                discarded.event_type, discarded.event_id, discarded.released, discarded.record_key
            )?;
        }
    }
    pool.close().await;
    Ok(())
}

/// Asks the operator to type the outbox id `id`; refused (nothing changed)
/// without a terminal or on any other answer.
fn confirm(prompt: &mut impl Prompt, id: i64) -> Result<(), AdminError> {
    match prompt.ask(&format!("Type {id} to discard it, anything else to stop:")) {
        None => Err(AdminError::Refused(format!(
            "nothing discarded: there is no terminal to confirm on; read what the discard of #{id} \
             does above and add --yes to confirm it"
        ))),
        Some(answer) if answer == id.to_string() => Ok(()),
        Some(_) => Err(AdminError::Refused(format!(
            "nothing discarded: #{id} was not confirmed"
        ))),
    }
}

/// `3h 12m`, `4m 5s`, `12s`.
fn humanize(age: chrono::TimeDelta) -> String {
    let secs = age.num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_needs_event_ids_or_all_and_not_both() {
        assert!(Cli::try_parse_from(["orderflow-admin", "dlq", "replay", "invoicing"]).is_err());
        assert!(
            Cli::try_parse_from(["orderflow-admin", "dlq", "replay", "invoicing", "--all"]).is_ok()
        );
        let id = "01933b5e-8f3a-7c4e-9d2b-5a6f7e8d9c0b";
        assert!(
            Cli::try_parse_from([
                "orderflow-admin",
                "dlq",
                "replay",
                "invoicing",
                "--all",
                "--event-id",
                id
            ])
            .is_err()
        );
        assert!(
            Cli::try_parse_from(["orderflow-admin", "outbox", "discard", "--id", "3"]).is_err(),
            "a discard needs a reason"
        );
    }

    #[test]
    fn a_discard_is_refused_unless_confirmed_with_the_id() {
        assert!(
            confirm(&mut NoOneToAsk, 3).is_err(),
            "no terminal, no --yes"
        );
        struct Answer(&'static str);
        impl Prompt for Answer {
            fn ask(&mut self, _: &str) -> Option<String> {
                Some(self.0.to_owned())
            }
        }
        assert!(confirm(&mut Answer("yes"), 3).is_err());
        assert!(confirm(&mut Answer("4"), 3).is_err());
        assert!(confirm(&mut Answer("3"), 3).is_ok());
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(humanize(chrono::TimeDelta::seconds(12)), "12s");
        assert_eq!(humanize(chrono::TimeDelta::seconds(245)), "4m 5s");
        assert_eq!(humanize(chrono::TimeDelta::seconds(11_520)), "3h 12m");
        assert_eq!(humanize(chrono::TimeDelta::seconds(90_000)), "1d 1h");
    }
}
