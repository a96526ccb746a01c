//! Settings, each declared once: its environment variable, its default and
//! its help text are one `#[arg(...)]` on one field.
//!
//! Every service's configuration is a clap `Parser` made of the groups here
//! ([`HttpSettings`], [`DbSettings`], [`LogSettings`]) and those of the
//! `messaging` crate, flattened. That one declaration is at once the parser
//! (a flag or the environment variable, else the default; a bad value stops
//! the service with clap's one-line error naming the variable), the
//! `--help` text, the list of variables docker-compose.yml must set and the
//! README's configuration table (both kept equal by drift tests that read
//! [`variables`]).
//!
//! A few defaults differ per service (its port and database, its consumer
//! group, its pool size). The shared declarations carry a neutral default;
//! each service's [`command`] call states its own from
//! [`crate::services`], so `--help` shows the service's real defaults.

use std::time::Duration;

use clap::{Arg, Args, Command, CommandFactory, FromArgMatches};

use crate::db::DatabaseUrl;
use crate::services::ServiceFacts;

/// Parses a duration given in milliseconds (`_MS` variables).
pub fn millis(value: &str) -> Result<Duration, String> {
    whole(value).map(Duration::from_millis)
}

/// Parses a duration given in seconds (`_SECS` variables).
pub fn secs(value: &str) -> Result<Duration, String> {
    whole(value).map(Duration::from_secs)
}

/// Parses a duration given in hours (`_HOURS` variables).
pub fn hours(value: &str) -> Result<Duration, String> {
    whole(value).and_then(|h| {
        h.checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{h} hours is too long"))
    })
}

/// Parses a count that must be at least 1 (a limit of 0 would refuse everything).
pub fn at_least_one(value: &str) -> Result<usize, String> {
    match whole(value)? {
        0 => Err("must be at least 1".to_owned()),
        n => usize::try_from(n).map_err(|_| format!("{n} is too large")),
    }
}

/// The longest retention window a setting accepts: ten years.
pub const MAX_RETENTION_HOURS: u64 = 87_600;

/// The longest interval between two purges a setting accepts: a day.
pub const MAX_PURGE_INTERVAL_SECS: u64 = 86_400;

/// A parser of whole seconds between `min` and `max`, for settings where 0
/// is impossible (an interval of 0 would spin or stop a loop).
pub fn secs_within(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |value| within(value, min, max, "seconds").map(Duration::from_secs)
}

/// A parser of whole hours between `min` and `max`, for retention windows
/// (0 would forget at once what the window exists to keep).
pub fn hours_within(min: u64, max: u64) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |value| within(value, min, max, "hours").map(|h| Duration::from_secs(h * 3600))
}

fn within(value: &str, min: u64, max: u64, unit: &str) -> Result<u64, String> {
    let n = whole(value)?;
    if !(min..=max).contains(&n) {
        return Err(format!("{n} {unit} is not between {min} and {max}"));
    }
    Ok(n)
}

fn whole(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

/// The service's own database.
#[derive(Debug, Clone, Args)]
pub struct DbSettings {
    /// The service's own database, reached with its own role.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://localhost/postgres"
    )]
    pub url: DatabaseUrl,
    /// Connections in the pool.
    #[arg(
        id = "db_max_connections",
        long = "db-max-connections",
        env = "DB_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub max_connections: u32,
    /// Connections opened at start, before the service listens (so before it says ready), and kept open (at most DB_MAX_CONNECTIONS)
    #[arg(
        id = "db_min_connections",
        long = "db-min-connections",
        env = "DB_MIN_CONNECTIONS",
        default_value_t = 4
    )]
    pub min_connections: u32,
    /// How long a query waits for a pooled connection before it fails (an
    /// API request is then answered 503).
    #[arg(
        id = "db_acquire_timeout",
        long = "db-acquire-timeout-ms",
        env = "DB_ACQUIRE_TIMEOUT_MS",
        default_value = "3000",
        value_parser = millis
    )]
    pub acquire_timeout: Duration,
}

/// How a service proves to Kafka who it is. Each service is its own
/// principal, and the brokers' ACLs give each exactly its role (see the
/// README's security model); the defaults are the local development
/// credentials `cargo xtask` and docker-compose provision (the password is
/// the principal's name, like the PostgreSQL roles').
#[derive(Debug, Clone, Args)]
pub struct KafkaAuth {
    /// How clients talk to the brokers: `SASL_PLAINTEXT` (SCRAM over plain TCP, for loopback and the compose network), `SASL_SSL` (a deployment), or `PLAINTEXT` (a broker without authentication)
    #[arg(
        id = "kafka_security_protocol",
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        default_value = "SASL_PLAINTEXT",
        value_parser = ["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"]
    )]
    pub security_protocol: String,
    /// The SASL mechanism: `SCRAM-SHA-512` for the services' principals (`PLAIN` is the tools' administrative one)
    #[arg(
        id = "kafka_sasl_mechanism",
        long = "kafka-sasl-mechanism",
        env = "KAFKA_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512",
        value_parser = ["SCRAM-SHA-512", "PLAIN"]
    )]
    pub sasl_mechanism: String,
    /// The Kafka principal this service authenticates as (each service its own)
    #[arg(
        id = "kafka_sasl_username",
        long = "kafka-sasl-username",
        env = "KAFKA_SASL_USERNAME",
        default_value = "orderflow"
    )]
    pub sasl_username: String,
    /// Its password (a local development default; set it from a secret anywhere else)
    #[arg(
        id = "kafka_sasl_password",
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        default_value = "orderflow"
    )]
    pub sasl_password: Password,
}

impl KafkaAuth {
    /// `username` with `password` over `mechanism`, on `SASL_PLAINTEXT`.
    pub fn sasl(mechanism: &str, username: &str, password: &str) -> Self {
        KafkaAuth {
            security_protocol: "SASL_PLAINTEXT".to_owned(),
            sasl_mechanism: mechanism.to_owned(),
            sasl_username: username.to_owned(),
            sasl_password: Password::new(password),
        }
    }

    /// The librdkafka client properties that authenticate this way.
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        let mut properties = vec![("security.protocol", self.security_protocol.clone())];
        if self.security_protocol.starts_with("SASL") {
            properties.extend([
                ("sasl.mechanism", self.sasl_mechanism.clone()),
                ("sasl.username", self.sasl_username.clone()),
                ("sasl.password", self.sasl_password.expose().to_owned()),
            ]);
        }
        properties
    }
}

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself: only for authenticating.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Password {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Password::new(s))
    }
}

/// What the log shows.
#[derive(Debug, Clone, Args)]
pub struct LogSettings {
    /// Log filter (tracing's EnvFilter syntax); every request and record has a span with its `trace_id`.
    #[arg(
        id = "log_filter",
        long = "log",
        env = "RUST_LOG",
        default_value = "info"
    )]
    pub filter: String,
}

/// `C`'s command with `service`'s defaults: its name, its port, its
/// database and, in `overrides`, any other default of its own (argument id,
/// value).
pub fn command<C: CommandFactory>(service: &ServiceFacts, overrides: &[(&str, &str)]) -> Command {
    // Changing an argument moves it to the end; the display order keeps
    // `--help` and [`variables`] in declaration order.
    let mut position = 0;
    let mut command = C::command()
        .mut_args(|a| {
            position += 1;
            a.display_order(position)
        })
        .name(service.name)
        .mut_arg("http_addr", |a| {
            a.default_value(format!("127.0.0.1:{}", service.port))
        })
        .mut_arg("database_url", |a| {
            a.default_value(service.local_database_url())
        });
    for (id, value) in overrides {
        let value = (*value).to_owned();
        command = command.mut_arg(*id, |a| a.default_value(value));
    }
    command
}

/// Parses the process's arguments and environment with `command`. On
/// `--help`, `--version` or a bad value the error says so; `exit()` on it
/// prints and ends the process the way clap does.
pub fn from_env<C: FromArgMatches>(command: Command) -> Result<C, clap::Error> {
    let matches = command.try_get_matches()?;
    C::from_arg_matches(&matches)
}

/// The declared defaults of `command`, with neither arguments nor the
/// environment read: what tests and tools start from.
pub fn defaults<C: FromArgMatches>(command: Command) -> Result<C, clap::Error> {
    let name = command.get_name().to_owned();
    let command = command.mut_args(|a| a.env(None::<&str>));
    let matches = command.try_get_matches_from([name])?;
    C::from_arg_matches(&matches)
}

/// One setting as declared: for `--help`, docker-compose.yml and the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The environment variable.
    pub name: String,
    /// Its default, as `--help` shows it (`None`: no default).
    pub default: Option<String>,
    /// Its help text.
    pub help: String,
    /// Hidden settings (fault injection for tests) are not documented and
    /// never set in docker-compose.yml.
    pub hidden: bool,
}

/// Every setting `command` reads from the environment, in declaration order.
pub fn variables(command: &Command) -> Vec<Variable> {
    let mut arguments: Vec<&Arg> = command.get_arguments().collect();
    arguments.sort_by_key(|a| a.get_display_order());
    arguments
        .into_iter()
        .filter_map(|arg: &Arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|d| d.to_string_lossy().into_owned());
            Some(Variable {
                name,
                default,
                help: arg.get_help().map(ToString::to_string).unwrap_or_default(),
                hidden: arg.is_hide_set(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_password_never_prints_and_plaintext_sends_no_credentials() {
        let auth = KafkaAuth::sasl("SCRAM-SHA-512", "invoicing-service", "s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"), "{auth:?}");
        assert!(
            auth.client_properties()
                .contains(&("sasl.password", "s3cret".to_owned()))
        );
        let open = KafkaAuth {
            security_protocol: "PLAINTEXT".into(),
            ..auth
        };
        assert_eq!(
            open.client_properties(),
            [("security.protocol", "PLAINTEXT".to_owned())]
        );
    }

    #[test]
    fn durations_are_whole_numbers_of_their_unit() {
        assert_eq!(millis("250"), Ok(Duration::from_millis(250)));
        assert_eq!(hours("2"), Ok(Duration::from_secs(7200)));
        assert!(secs("1.5").is_err());
        assert!(hours(&u64::MAX.to_string()).is_err());
        assert_eq!(at_least_one("512"), Ok(512));
        assert!(at_least_one("0").is_err());
    }

    #[test]
    fn bounded_durations_refuse_what_is_out_of_range() {
        let interval = secs_within(1, 86_400);
        assert_eq!(interval("60"), Ok(Duration::from_secs(60)));
        assert_eq!(
            interval("0"),
            Err("0 seconds is not between 1 and 86400".to_owned())
        );
        assert!(interval("86401").is_err());
        let retention = hours_within(1, 87_600);
        assert_eq!(retention("24"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            retention("0"),
            Err("0 hours is not between 1 and 87600".to_owned())
        );
        assert!(retention(&u64::MAX.to_string()).is_err());
    }
}
