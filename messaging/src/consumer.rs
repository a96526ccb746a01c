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
use platform::db::DatabaseUrl;
use platform::services::ServiceFacts;

use crate::inbox::InboxSettings;
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
        config.kafka = kafka;
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
    fn each_consumer_gets_its_own_port_database_and_group() {
        for service in [INVOICING_SERVICE, SHIPPING_SERVICE] {
            let command = cli(&service, "a consumer");
            command.clone().debug_assert();
            let config: ConsumerConfig = platform::config::defaults(command).unwrap();
            assert_eq!(config.http.addr.port(), service.port);
            assert_eq!(config.database.url.expose(), service.local_database_url());
            assert_eq!(Some(config.inbox.group_id.as_str()), service.consumer_group);
            assert_eq!(config.database.max_connections, 8);
        }
    }
}
