//! What every consuming service is configured with: the platform's HTTP,
//! database and log settings, and messaging's Kafka, dead-letter producer
//! and inbox settings, each declared once.
//!
//! Every consumer reads the same settings; only their defaults differ (port,
//! database, consumer group), and [`cli`] takes those from its entry in
//! [`platform::services`].

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Command, Parser};
use messaging::inbox::InboxSettings;
use messaging::kafka::{KafkaSettings, ProducerSettings};
use platform::config::{DbSettings, LogSettings};
use platform::db::DatabaseUrl;
use platform::services::ServiceFacts;
use platform_web::config::HttpSettings;

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
    pub links: platform_web::web::PageLinks,
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
