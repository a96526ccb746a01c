//! What a consuming service (invoicing, shipping) is configured with: the
//! platform's HTTP, database and log settings, and the Kafka, dead-letter
//! producer and inbox settings of this crate, each declared once.
//!
//! Both consumers read the same settings; only their defaults differ (port,
//! database, consumer group), and [`cli`] takes those from
//! [`platform::services`].

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Command, Parser};
use platform::config::{DbSettings, HttpSettings, LogSettings};
use platform::db::{DatabaseUrl, Planning};
use platform::services::ServiceFacts;

use platform::app::BindError;
use platform::health::Readiness;
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::inbox::{Handler, Inbox, InboxSettings};
use crate::kafka::{KafkaSettings, ProducerSettings};

/// How a consuming service runs.
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct ConsumerConfig {
    /// The read API.
    #[command(flatten)]
    pub http: HttpSettings,
    /// The service's own database.
    #[command(flatten)]
    pub database: DbSettings,
    /// Brokers and the topic consumed.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// The dead-letter producer.
    #[command(flatten)]
    pub producer: ProducerSettings,
    /// The consumer group and how it consumes.
    #[command(flatten)]
    pub inbox: InboxSettings,
    /// Where a browser reaches each service's pages.
    #[command(flatten)]
    pub links: platform::web::PageLinks,
    /// The log.
    #[command(flatten)]
    pub log: LogSettings,
}

/// The command line of the consuming service `service`, described by `about`.
pub fn cli(service: &ServiceFacts, about: &'static str) -> Command {
    let group = service.consumer_group.unwrap_or(service.short);
    platform::config::command::<ConsumerConfig>(
        service,
        &[
            ("kafka_group_id", group),
            ("kafka_client_id", service.name),
            ("kafka_sasl_username", service.name),
            ("kafka_sasl_password", service.name),
            ("db_max_connections", "8"),
            ("db_acquire_timeout", "5000"),
        ],
    )
    .about(about)
}

/// Why a consuming service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("the service's database could not be readied")]
    Database(#[from] platform::db::StartupError),
    /// The inbox's tables could not be migrated.
    #[error("the inbox's tables could not be migrated")]
    InboxTables(#[source] sqlx::migrate::MigrateError),
    /// The dead-letter producer could not be created.
    #[error("the dead-letter producer could not be created")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The HTTP address could not be bound.
    #[error("the read API could not listen")]
    Bind(#[from] BindError),
}

/// What a consuming service is made of, ready to be served: its migrated
/// pool, its inbox, and the metrics and readiness they report on.
pub struct Prepared<H: Handler> {
    /// The service's database, its schema and the inbox's tables migrated.
    pub pool: PgPool,
    /// The inbox, to run as the service's background task.
    pub inbox: Inbox<H>,
    /// The metrics registry the inbox registered on.
    pub registry: Registry,
    /// What `/health/ready` reports; the inbox marks itself stalled on it.
    pub readiness: Readiness,
}

/// Connects and migrates the database (the service's `migrator`, then the
/// inbox's tables) and makes the inbox of `handler`.
pub async fn prepare<H: Handler>(
    config: &ConsumerConfig,
    migrator: &Migrator,
    handler: H,
) -> Result<Prepared<H>, StartupError> {
    // Every batch statement joins the batch's arrays with tables that grow
    // from empty: plans cached on the empty tables would scan them whole
    // for each record (see `Planning`).
    let pool = config
        .database
        .connect_and_migrate(migrator, Planning::EveryExecution)
        .await?;
    crate::inbox::MIGRATOR
        .run(&pool)
        .await
        .map_err(StartupError::InboxTables)?;
    let mut registry = Registry::default();
    let readiness = Readiness::new();
    let inbox = Inbox::for_service(
        pool.clone(),
        handler,
        config,
        &mut registry,
        readiness.clone(),
    )?;
    Ok(Prepared {
        pool,
        inbox,
        registry,
        readiness,
    })
}

impl ConsumerConfig {
    /// `service`'s declared defaults, pointed at `database_url` and `kafka`,
    /// listening on a free loopback port: what tests and tools start.
    pub fn for_test(service: &ServiceFacts, database_url: &str, kafka: KafkaSettings) -> Self {
        let mut config: ConsumerConfig = platform::config::defaults(cli(service, ""))
            .unwrap_or_else(|e| unreachable!("the consumers' defaults do not parse: {e}"));
        config.http.addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        config.database.url = DatabaseUrl::new(database_url);
        config.kafka = KafkaSettings {
            client_id: service.name.to_owned(),
            ..kafka
        };
        // Patient with a busy test machine; quick to retry.
        config.database.acquire_timeout = Duration::from_secs(30);
        config
    }
}

#[cfg(test)]
mod tests {
    use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};

    use super::*;

    #[test]
    fn each_consumer_gets_its_own_port_database_group_and_client_id() {
        for service in [INVOICING_SERVICE, SHIPPING_SERVICE] {
            let command = cli(&service, "a consumer");
            command.clone().debug_assert();
            let config: ConsumerConfig = platform::config::defaults(command).unwrap();
            assert_eq!(config.http.addr.port(), service.port);
            assert_eq!(config.database.url.expose(), service.local_database_url());
            assert_eq!(Some(config.inbox.group_id.as_str()), service.consumer_group);
            assert_eq!(config.database.max_connections, 8);
            assert_eq!(config.kafka.client_id, service.name);
            assert_eq!(config.kafka.auth.sasl_username, service.name);
            assert_eq!(config.kafka.auth.sasl_password.expose(), service.name);
            let auth = platform::config::KafkaAuth::sasl("PLAIN", "admin", "admin");
            let test = ConsumerConfig::for_test(
                &service,
                "postgres://x",
                KafkaSettings::local("k:1", auth, "t"),
            );
            assert_eq!(test.kafka.client_id, service.name);
            assert_eq!(
                test.kafka.client_config().get("client.id"),
                Some(service.name)
            );
        }
    }

    #[test]
    fn a_purge_interval_or_a_retention_of_zero_is_refused_at_start() {
        for (flag, unit) in [
            ("--processed-purge-interval-secs", "seconds"),
            ("--processed-retention-hours", "hours"),
        ] {
            let error = cli(&INVOICING_SERVICE, "a consumer")
                .try_get_matches_from(["invoicing-service", flag, "0"])
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
