//! The service's settings: each declared once (variable, default, help),
//! read at start-up from flags or the environment; `order-service --help`
//! lists them all with their defaults, which match the local
//! `cargo xtask infra up` setup.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Command, Parser};
use messaging::kafka::{KafkaSettings, ProducerSettings};
use messaging::outbox::RelaySettings;
use platform::config::{DbSettings, LogSettings};
use platform::db::DatabaseUrl;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use platform_web::config::HttpSettings;
use platform_web::web::PageLinks;

/// How the order service runs.
#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about = "Takes orders over HTTP and writes each with its event in one transaction; its relay publishes the events to Kafka."
)]
pub struct Config {
    /// The HTTP API.
    #[command(flatten)]
    pub http: HttpSettings,
    /// The orders database.
    #[command(flatten)]
    pub database: DbSettings,
    /// Brokers and the orders topic.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// The relay's producer.
    #[command(flatten)]
    pub producer: ProducerSettings,
    /// The outbox relay.
    #[command(flatten)]
    pub relay: RelaySettings,
    /// How long an Idempotency-Key is remembered: a retry within it returns the same order, after it the key places a new one
    #[arg(
        long = "idempotency-key-retention-hours",
        env = "IDEMPOTENCY_KEY_RETENTION_HOURS",
        default_value = "24",
        value_parser = platform::config::hours_within(1, platform::config::MAX_RETENTION_HOURS)
    )]
    pub idempotency_key_retention: Duration,
    /// How long the order page can show where each event went (partition, offset): records of published events older than this are deleted
    #[arg(
        long = "published-events-retention-hours",
        env = "PUBLISHED_EVENTS_RETENTION_HOURS",
        default_value = "168",
        value_parser = platform::config::hours_within(1, platform::config::MAX_RETENTION_HOURS)
    )]
    pub published_events_retention: Duration,
    /// How often forgotten idempotency keys and old records of published events are deleted.
    #[arg(
        long = "purge-interval-secs",
        env = "PURGE_INTERVAL_SECS",
        default_value = "3600",
        value_parser = platform::config::secs_within(1, platform::config::MAX_PURGE_INTERVAL_SECS)
    )]
    pub purge_interval: Duration,
    /// Where a browser reaches each service's pages.
    #[command(flatten)]
    pub links: PageLinks,
    /// Where this service reads the consumers' APIs for its pages.
    #[command(flatten)]
    pub upstream: UpstreamSettings,
    /// The log.
    #[command(flatten)]
    pub log: LogSettings,
}

/// Where order-service's pages read the consumers' HTTP APIs: an order's
/// journey (its invoice, its shipment, their dead letters) and the
/// overview's figures (their `/metrics`). Unset, each is the service's page
/// address ([`PageLinks`]); behind a proxy or in docker-compose, where the
/// browser and this service reach the consumers at different addresses, set them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpstreamSettings {
    /// Where order-service reads invoicing-service's API for its pages (unset: INVOICING_SERVICE_URL)
    #[arg(
        id = "invoicing_api_url",
        long = "invoicing-api-url",
        env = "INVOICING_API_URL",
        value_parser = platform_web::web::base_url
    )]
    pub invoicing_api_url: Option<String>,
    /// Where order-service reads shipping-service's API for its pages (unset: SHIPPING_SERVICE_URL)
    #[arg(
        id = "shipping_api_url",
        long = "shipping-api-url",
        env = "SHIPPING_API_URL",
        value_parser = platform_web::web::base_url
    )]
    pub shipping_api_url: Option<String>,
}

impl Config {
    /// Where this service reads invoicing's API.
    pub fn invoicing_api(&self) -> &str {
        self.upstream
            .invoicing_api_url
            .as_deref()
            .unwrap_or(self.links.of(&INVOICING_SERVICE))
    }

    /// Where this service reads shipping's API.
    pub fn shipping_api(&self) -> &str {
        self.upstream
            .shipping_api_url
            .as_deref()
            .unwrap_or(self.links.of(&SHIPPING_SERVICE))
    }
}

impl Config {
    /// The command line: every setting with this service's defaults.
    pub fn cli() -> Command {
        platform::config::command::<Self>(
            &ORDER_SERVICE,
            &[
                ("db_max_connections", "16"),
                ("db_acquire_timeout", "3000"),
                ("kafka_client_id", ORDER_SERVICE.name),
                ("kafka_sasl_username", ORDER_SERVICE.name),
                ("kafka_sasl_password", ORDER_SERVICE.name),
            ],
        )
    }

    /// Reads the flags and the environment; `--help` and bad values come
    /// back as clap's error (`exit()` prints it and ends the process).
    pub fn from_env() -> Result<Self, clap::Error> {
        platform::config::from_env(Self::cli())
    }

    /// The declared defaults, reading neither flags nor the environment.
    pub fn defaults() -> Self {
        // The declarations are fixed at compile time; the unit tests parse them.
        platform::config::defaults(Self::cli())
            .unwrap_or_else(|e| unreachable!("order-service's defaults do not parse: {e}"))
    }

    /// The defaults, pointed at `database_url` and listening on a free
    /// loopback port, with the relay held off so the outbox rows stay where a
    /// test can read them: what API tests start.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut config = Config::defaults();
        config.http.addr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        config.database.url = DatabaseUrl::new(database_url);
        config.relay.enabled = false;
        // Tests check behaviour, not latency: on a busy two-core machine,
        // with other tests running, a connection or a request can take longer
        // than the 3 s / 10 s after which production answers 503 / 408.
        config.database.acquire_timeout = Duration::from_secs(30);
        config.http.request_timeout = Duration::from_secs(60);
        config
    }

    /// [`Config::for_database`] with the relay on, publishing as `kafka`
    /// says (its brokers, principal and topic): what end-to-end tests start.
    pub fn for_flow(database_url: impl Into<String>, kafka: KafkaSettings) -> Self {
        let mut config = Config::for_database(database_url);
        config.kafka = KafkaSettings {
            client_id: ORDER_SERVICE.name.to_owned(),
            ..kafka
        };
        config.relay.enabled = true;
        config
    }
}

#[cfg(test)]
mod tests {
    use platform::config::KafkaAuth;

    use super::*;

    #[test]
    fn defaults_match_the_documented_local_setup() {
        Config::cli().debug_assert();
        let c = Config::defaults();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8081");
        assert_eq!(
            c.database.url.expose(),
            "postgres://orders:orders@127.0.0.1:15432/orders"
        );
        assert_eq!(c.database.max_connections, 16);
        assert_eq!(c.database.acquire_timeout, Duration::from_secs(3));
        assert_eq!(c.kafka.topic, "orders");
        assert_eq!(c.kafka.client_id, "order-service");
        assert_eq!(c.kafka.auth.sasl_username, "order-service");
        assert_eq!(c.kafka.auth.sasl_password.expose(), "order-service");
        assert_eq!(c.kafka.auth.sasl_mechanism, "SCRAM-SHA-512");
        let auth = KafkaAuth::sasl("PLAIN", "admin", "admin");
        assert_eq!(
            Config::for_flow("postgres://x", KafkaSettings::local("k:1", auth, "t"))
                .kafka
                .client_id,
            "order-service"
        );
        assert_eq!(c.relay.batch_size, 2_000);
        assert!(c.relay.enabled);
        assert!(!Config::for_database("postgres://x").relay.enabled);
    }

    #[test]
    fn every_variable_is_declared_once() {
        let variables = platform::config::variables(&Config::cli());
        let mut names: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(names.contains(&"RELAY_BATCH_SIZE") && names.contains(&"RUST_LOG"));
    }

    #[test]
    fn a_bad_value_stops_the_service_naming_the_setting() {
        let error = Config::cli()
            .try_get_matches_from(["order-service", "--relay-batch-size", "0"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("relay-batch-size"), "{error}");
    }

    #[test]
    fn a_purge_interval_or_a_retention_of_zero_is_refused_at_start() {
        for (flag, unit) in [
            ("--purge-interval-secs", "seconds"),
            ("--idempotency-key-retention-hours", "hours"),
            ("--published-events-retention-hours", "hours"),
        ] {
            let error = Config::cli()
                .try_get_matches_from(["order-service", flag, "0"])
                .unwrap_err()
                .to_string();
            assert!(error.contains(&flag[2..]), "{error}");
            assert!(
                error.contains(&format!("0 {unit} is not between 1 and")),
                "{error}"
            );
        }
    }
}
