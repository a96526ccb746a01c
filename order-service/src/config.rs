//! The service's settings, read once at start-up from environment variables
//! with defaults that match the local `cargo xtask infra up` setup.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use messaging::kafka::{KafkaSettings, ProducerSettings};
use messaging::relay::RelaySettings;
use platform::config::{ConfigError, concat_names, count_names, millis, var};
use platform::db::{DatabaseUrl, DbSettings};
use platform::http::HttpLimits;

/// The variables read here besides the Kafka, producer and relay settings'
/// own lists. `RUST_LOG` is read by the telemetry set-up.
const OWN_ENV_VARS: &[&str] = &[
    "RUST_LOG",
    "DATABASE_URL",
    "DB_MAX_CONNECTIONS",
    "DB_ACQUIRE_TIMEOUT_MS",
    "HTTP_ADDR",
    "HTTP_REQUEST_TIMEOUT_MS",
    "HTTP_MAX_CONCURRENT_REQUESTS",
    "IDEMPOTENCY_KEY_RETENTION_HOURS",
    "IDEMPOTENCY_PURGE_INTERVAL_SECS",
];

const ENV_VAR_LISTS: &[&[&str]] = &[
    OWN_ENV_VARS,
    KafkaSettings::ENV_VARS,
    ProducerSettings::ENV_VARS,
    RelaySettings::ENV_VARS,
];

const ALL_ENV_VARS: [&str; count_names(ENV_VAR_LISTS)] = concat_names(ENV_VAR_LISTS);

/// Every environment variable the service reads at start-up (compared with
/// docker-compose.yml by a drift test).
pub const ENV_VARS: &[&str] = &ALL_ENV_VARS;

/// Default `DATABASE_URL`: the local infrastructure's orders database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://orders:orders@127.0.0.1:15432/orders";
/// Default `HTTP_ADDR`.
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8081);

/// How the order service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HTTP_ADDR`: where the API listens (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `DATABASE_URL`, `DB_MAX_CONNECTIONS`, `DB_ACQUIRE_TIMEOUT_MS`.
    pub database: DbSettings,
    /// `HTTP_REQUEST_TIMEOUT_MS`, `HTTP_MAX_CONCURRENT_REQUESTS`.
    pub http_limits: HttpLimits,
    /// Brokers and the orders topic (`KAFKA_BOOTSTRAP_SERVERS`, `ORDERS_TOPIC`, ...).
    pub kafka: KafkaSettings,
    /// The relay's producer (`KAFKA_LINGER_MS`, ...).
    pub producer: ProducerSettings,
    /// The outbox relay (`RELAY_ENABLED`, `RELAY_BATCH_SIZE`, ...).
    pub relay: RelaySettings,
    /// `IDEMPOTENCY_KEY_RETENTION_HOURS`: how long an `Idempotency-Key` is
    /// remembered. A retry within this window returns the order the key
    /// placed; after it the key is forgotten and places a new order.
    pub idempotency_key_retention: Duration,
    /// `IDEMPOTENCY_PURGE_INTERVAL_SECS`: how often forgotten keys are deleted.
    pub idempotency_purge_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_addr: DEFAULT_HTTP_ADDR,
            database: DbSettings {
                url: DatabaseUrl::new(DEFAULT_DATABASE_URL),
                max_connections: 16,
                acquire_timeout: Duration::from_secs(3),
            },
            http_limits: HttpLimits::default(),
            kafka: KafkaSettings::local("127.0.0.1:19092", shared_events::topics::ORDERS),
            producer: ProducerSettings::default(),
            relay: RelaySettings::default(),
            idempotency_key_retention: Duration::from_secs(24 * 3600),
            idempotency_purge_interval: Duration::from_secs(3600),
        }
    }
}

impl Config {
    /// Reads [`ENV_VARS`]; unset or empty variables take the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Config::default();
        Ok(Config {
            http_addr: var("HTTP_ADDR", defaults.http_addr)?,
            database: DbSettings {
                url: var("DATABASE_URL", defaults.database.url)?,
                max_connections: var("DB_MAX_CONNECTIONS", defaults.database.max_connections)?,
                acquire_timeout: millis(
                    "DB_ACQUIRE_TIMEOUT_MS",
                    duration_ms(defaults.database.acquire_timeout),
                )?,
            },
            http_limits: HttpLimits {
                request_timeout: millis(
                    "HTTP_REQUEST_TIMEOUT_MS",
                    duration_ms(defaults.http_limits.request_timeout),
                )?,
                max_concurrent_requests: var(
                    "HTTP_MAX_CONCURRENT_REQUESTS",
                    defaults.http_limits.max_concurrent_requests,
                )?,
            },
            kafka: KafkaSettings::from_env()?,
            producer: ProducerSettings::from_env()?,
            relay: RelaySettings::from_env()?,
            idempotency_key_retention: Duration::from_secs(
                var::<u64>("IDEMPOTENCY_KEY_RETENTION_HOURS", 24)? * 3600,
            ),
            idempotency_purge_interval: Duration::from_secs(var(
                "IDEMPOTENCY_PURGE_INTERVAL_SECS",
                3600,
            )?),
        })
    }

    /// The defaults, pointed at `database_url` and listening on a free
    /// loopback port, with the relay held off so the outbox rows stay where a
    /// test can read them: what API tests start.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut config = Config {
            http_addr: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ..Config::default()
        };
        config.database.url = DatabaseUrl::new(database_url);
        config.relay.enabled = false;
        // Tests check behaviour, not latency: on a busy two-core machine,
        // with other tests running, a connection or a request can take longer
        // than the 3 s / 10 s after which production answers 503 / 408.
        config.database.acquire_timeout = Duration::from_secs(30);
        config.http_limits.request_timeout = Duration::from_secs(60);
        config
    }

    /// [`Config::for_database`] with the relay on, publishing to `topic` on
    /// the brokers at `bootstrap_servers`: what end-to-end tests start.
    pub fn for_flow(database_url: impl Into<String>, bootstrap_servers: &str, topic: &str) -> Self {
        let mut config = Config::for_database(database_url);
        config.kafka = KafkaSettings::local(bootstrap_servers, topic);
        config.relay.enabled = true;
        config
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_local_setup() {
        let c = Config::default();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:8081");
        assert_eq!(c.database.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(c.database.max_connections, 16);
        assert_eq!(c.kafka.topic, "orders");
        assert!(c.relay.enabled);
        assert!(!Config::for_database("postgres://x").relay.enabled);
    }

    #[test]
    fn every_variable_is_listed_once() {
        let mut names = ENV_VARS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENV_VARS.len());
    }
}
