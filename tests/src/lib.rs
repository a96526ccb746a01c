//! Test support for the end-to-end tests of the order flow.
//!
//! The end-to-end tests run against a real Kafka and a real PostgreSQL, never
//! stand-ins. [`TestInfra::acquire`] finds them through the settings that
//! `cargo xtask test` (or `cargo xtask infra up`) puts in the environment,
//! starts containers where a Docker engine answers instead ([`containers`]),
//! and fails loudly when neither is there rather than letting a test pass
//! without having touched anything. Each test then takes its own isolated pieces:
//! [`TestInfra::fresh_database`] creates a database named by a new UUID, owned
//! by one service's role and closed to everyone else, and
//! [`TestInfra::fresh_topic`] creates a uniquely named topic and waits until
//! every partition has a leader. No test cleans up after itself and no test
//! sees another's data. A test of the whole flow starts it with
//! [`flow::TestFlow`], which takes these pieces for each service.

pub mod browser;
pub mod commands;
pub mod containers;
pub mod events;
pub mod flow;
pub mod private_kafka;
pub mod services;

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use devinfra::kafka::access::{self, admin_client_config};
use messaging::kafka::KafkaSettings;
use platform::services::ServiceFacts;
use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The variable naming the Kafka bootstrap servers.
pub const KAFKA_BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";

/// The variable naming the PostgreSQL superuser URL.
pub const POSTGRES_ADMIN_URL: &str = "POSTGRES_ADMIN_URL";

/// The one line a test fails with when no infrastructure was given.
pub const NO_INFRA: &str = "no Kafka/PostgreSQL: run the tests with `cargo xtask test` (or start Docker for testcontainers)";

/// How long a freshly created topic may take until all its partitions have leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The infrastructure is not in the environment; displays as one line saying how to provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingInfra {
    variable: String,
}

impl fmt::Display for MissingInfra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.variable == KAFKA_BOOTSTRAP_SERVERS || self.variable == POSTGRES_ADMIN_URL {
            f.write_str(NO_INFRA)
        } else {
            write!(
                f,
                "{} is not set: run the tests with `cargo xtask test`, which sets it",
                self.variable
            )
        }
    }
}

impl std::error::Error for MissingInfra {}

/// Why [`TestInfra::acquire`] found no infrastructure; each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// The environment names the infrastructure only in part.
    #[error(transparent)]
    Incomplete(#[from] MissingInfra),
    /// Neither the environment nor a Docker engine: how to get infrastructure,
    /// and why Docker was not used.
    #[error("{NO_INFRA} (Docker: {0})")]
    Nowhere(containers::NoDocker),
    /// A Docker engine answered, but the containers did not start.
    #[error("starting the test containers with Docker: {0}")]
    Containers(String),
}

/// Where the real Kafka and PostgreSQL of this test run are.
#[derive(Debug, Clone)]
pub struct TestInfra {
    kafka_bootstrap_servers: String,
    admin_url: String,
    /// Each registered service's database URL: (its database, URL), in the
    /// registry's order.
    service_urls: Vec<(&'static str, String)>,
}

impl TestInfra {
    /// The infrastructure of this test run, chosen as [`containers`] describes:
    /// the environment's, else Docker containers, else an error of one line.
    /// The one way every test and helper gets its infrastructure (a test in
    /// `tests/e2e/acquisition.rs` keeps it so).
    pub async fn acquire() -> Result<Self, AcquireError> {
        let lookup = |name: &str| std::env::var(name).ok();
        match containers::choose(lookup, containers::docker_engine_once()).await {
            containers::Source::Environment => Ok(Self::from_environment()?),
            containers::Source::Docker => {
                containers::shared().await.map_err(AcquireError::Containers)
            }
            containers::Source::Missing(why) => Err(AcquireError::Nowhere(why)),
        }
    }

    /// Reads `KAFKA_BOOTSTRAP_SERVERS`, `POSTGRES_ADMIN_URL` and every
    /// registered service's `<DATABASE>_DATABASE_URL`; fails with one line if
    /// any is missing.
    fn from_environment() -> Result<Self, MissingInfra> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Like [`from_environment`](Self::from_environment), with the variables looked up by `lookup`.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, MissingInfra> {
        let get = |variable: &str| {
            lookup(variable).ok_or_else(|| MissingInfra {
                variable: variable.to_owned(),
            })
        };
        let kafka_bootstrap_servers = get(KAFKA_BOOTSTRAP_SERVERS)?;
        let admin_url = get(POSTGRES_ADMIN_URL)?;
        let service_urls = platform::services::ALL
            .iter()
            .map(|service| Ok((service.database, get(&service.database_url_var())?)))
            .collect::<Result<_, MissingInfra>>()?;
        Ok(TestInfra {
            kafka_bootstrap_servers,
            admin_url,
            service_urls,
        })
    }

    /// The same PostgreSQL with another Kafka (a private broker a test may
    /// stop without disturbing the others).
    pub fn with_kafka(&self, bootstrap_servers: &str) -> TestInfra {
        TestInfra {
            kafka_bootstrap_servers: bootstrap_servers.to_owned(),
            ..self.clone()
        }
    }

    /// The Kafka bootstrap servers.
    pub fn kafka_bootstrap_servers(&self) -> &str {
        &self.kafka_bootstrap_servers
    }

    /// The PostgreSQL superuser URL.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The URL `service` connects with: its role, its own database.
    ///
    /// # Panics
    /// When `service` is not in the registry ([`platform::services::ALL`]).
    pub fn service_url(&self, service: &ServiceFacts) -> &str {
        self.service_urls
            .iter()
            .find(|(database, _)| *database == service.database)
            .map(|(_, url)| url.as_str())
            .unwrap_or_else(|| panic!("{service} is not in platform::services::ALL"))
    }

    /// A Kafka client configuration with the bootstrap servers set, as the
    /// administrative principal.
    pub fn kafka_config(&self) -> ClientConfig {
        admin_client_config(&self.kafka_bootstrap_servers)
    }

    /// A service's Kafka settings for `topic`, as the administrative
    /// principal: the end-to-end tests run the services on topics of their
    /// own, which no service's ACLs name (`kafka_access.rs` tries the roles).
    pub fn kafka_settings(&self, topic: &str) -> KafkaSettings {
        admin_kafka(&self.kafka_bootstrap_servers, topic)
    }

    /// A new database named by a UUID, owned by `service`'s role, that no
    /// other role may connect to; returns its URL as that role and a pool
    /// connected as that role.
    pub async fn fresh_database(&self, service: &ServiceFacts) -> anyhow::Result<(String, PgPool)> {
        let role = service.role();
        let name = Uuid::new_v4().to_string();
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("connecting as the PostgreSQL superuser (POSTGRES_ADMIN_URL)")?;
        let database = quote_ident(&name);
        let owner = quote_ident(role);
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {database} OWNER {owner}"
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("creating database {name} for {role}"))?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC"
        )))
        .execute(&mut admin)
        .await
        .with_context(|| format!("closing database {name} to other roles"))?;
        admin.close().await?;

        let url = with_database(self.service_url(service), &name)?;
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .with_context(|| format!("connecting to {name} as {role}"))?;
        Ok((url, pool))
    }

    /// A new topic `e2e-<uuid>` with `partitions` partitions (replication as the
    /// broker's default), returned once its metadata shows a leader for every partition.
    pub async fn fresh_topic(&self, partitions: i32) -> anyhow::Result<String> {
        let name = format!("e2e-{}", Uuid::new_v4());
        self.create_topic(&name, partitions, &[]).await?;
        Ok(name)
    }

    /// Creates topic `name` with `partitions` partitions and the topic
    /// settings `config` (e.g. `max.message.bytes`), and returns once its
    /// metadata shows a leader for every partition.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .kafka_config()
            .create()
            .context("creating the Kafka admin client")?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        // Replication -1: the broker's default.replication.factor (1 or 3 with the xtask setup).
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
        for (key, value) in config {
            topic = topic.set(key, value);
        }
        for result in admin.create_topics(&[topic], &options).await? {
            result.map_err(|(topic, code)| anyhow!("creating topic {topic}: {code}"))?;
        }

        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        loop {
            let ready = partitions_with_leader(&self.kafka_bootstrap_servers, name).await?;
            if ready == usize::try_from(partitions)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "topic {name}: {ready} of {partitions} partitions have a leader after {}s",
                    TOPIC_READY_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the records of `topic`'s `partition` before `offset`, as
    /// retention would; the partition's log then starts at `offset`.
    pub async fn delete_records_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .kafka_config()
            .create()
            .context("creating the Kafka admin client")?;
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))?;
        let deleted = admin
            .delete_records(&offsets, &AdminOptions::new())
            .await
            .with_context(|| {
                format!("deleting the records of {topic}[{partition}] before {offset}")
            })?;
        for element in deleted.elements() {
            element
                .error()
                .with_context(|| format!("deleting the records of {topic}[{partition}]"))?;
        }
        Ok(())
    }

    /// Commits `offset` on `topic`'s `partition` for consumer group `group`,
    /// which must have no member: what an operator's
    /// `kafka-consumer-groups --reset-offsets --execute` does.
    pub async fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> anyhow::Result<()> {
        let mut config = self.kafka_config();
        config.set("group.id", group);
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))?;
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create()?;
            consumer.commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        })
        .await?
        .with_context(|| format!("committing {topic}[{partition}]@{offset} for group {group}"))
    }

    /// Deletes `topic`, as an operator's mistake would.
    pub async fn delete_topic(&self, topic: &str) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .kafka_config()
            .create()
            .context("creating the Kafka admin client")?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.delete_topics(&[topic], &options).await? {
            result.map_err(|(topic, code)| anyhow!("deleting topic {topic}: {code}"))?;
        }
        Ok(())
    }

    /// Topic setting `key` of `topic` as the broker reports it.
    pub async fn topic_config(&self, topic: &str, key: &str) -> anyhow::Result<Option<String>> {
        let admin: AdminClient<DefaultClientContext> = self
            .kafka_config()
            .create()
            .context("creating the Kafka admin client")?;
        let described = admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
            .await?;
        let resource = described
            .into_iter()
            .next()
            .with_context(|| format!("no configuration of {topic}"))?
            .map_err(|code| anyhow!("describing {topic}: {code}"))?;
        Ok(resource.get(key).and_then(|entry| entry.value.clone()))
    }

    /// Sets topic setting `key` of `topic` to `value`, or back to the broker's
    /// default with `None` (the topic's other overrides are dropped).
    pub async fn set_topic_config(
        &self,
        topic: &str,
        key: &str,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .kafka_config()
            .create()
            .context("creating the Kafka admin client")?;
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        if let Some(value) = value {
            alter = alter.set(key, value);
        }
        for result in admin.alter_configs([&alter], &AdminOptions::new()).await? {
            result.map_err(|(_, code)| anyhow!("setting {key} on {topic}: {code}"))?;
        }
        Ok(())
    }
}

/// A service's Kafka settings for `topic` on the brokers at `bootstrap`, as
/// the administrative principal.
pub fn admin_kafka(bootstrap: &str, topic: &str) -> KafkaSettings {
    KafkaSettings::local(bootstrap, access::admin_auth(), topic)
}

/// How many partitions of `topic` the cluster reports with a leader and no error.
async fn partitions_with_leader(bootstrap: &str, topic: &str) -> anyhow::Result<usize> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = admin_client_config(&bootstrap).create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
        let ready = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions())
            .filter(|p| p.error().is_none() && p.leader() >= 0)
            .count();
        Ok(ready)
    })
    .await?
}

/// `url` with its database (the path) replaced by `database`; query parameters are kept.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let authority_start = url
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| anyhow!("not a URL: {}", redact(url)))?;
    let rest = &url[authority_start..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[path_start..]
        .find('?')
        .map(|i| &rest[path_start + i..])
        .unwrap_or("");
    Ok(format!(
        "{}{}/{database}{query}",
        &url[..authority_start],
        &rest[..path_start]
    ))
}

/// The database (path) of a PostgreSQL URL.
pub fn database_of(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let path = &rest[rest.find('/')? + 1..];
    let database = path.split('?').next()?;
    (!database.is_empty()).then_some(database)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A URL with its password replaced, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn missing_infrastructure_is_one_line_that_says_what_to_run() {
        let empty = HashMap::<String, String>::new();
        let err = TestInfra::from_lookup(|k| empty.get(k).cloned()).expect_err("nothing set");
        assert_eq!(err.to_string(), NO_INFRA);
        assert_eq!(err.to_string().lines().count(), 1);
    }

    #[test]
    fn no_environment_and_no_docker_is_one_line_saying_why() {
        let why = containers::NoDocker::from_reason(
            "no Docker engine answered: Socket not found: /var/run/docker.sock",
        );
        let line = AcquireError::Nowhere(why).to_string();
        assert!(line.starts_with(NO_INFRA), "{line}");
        assert!(line.contains("/var/run/docker.sock"), "{line}");
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn a_missing_service_url_is_named() {
        let set = vars(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            (
                "POSTGRES_ADMIN_URL",
                "postgres://postgres:postgres@127.0.0.1:15432/postgres",
            ),
        ]);
        let err = TestInfra::from_lookup(|k| set.get(k).cloned()).expect_err("no service urls");
        assert!(
            err.to_string()
                .starts_with("ORDERS_DATABASE_URL is not set"),
            "{err}"
        );
    }

    #[test]
    fn all_five_variables_make_a_test_infra() {
        let set = vars(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            (
                "POSTGRES_ADMIN_URL",
                "postgres://postgres:postgres@127.0.0.1:15432/postgres",
            ),
            (
                "ORDERS_DATABASE_URL",
                "postgres://orders:orders@127.0.0.1:15432/orders",
            ),
            (
                "INVOICING_DATABASE_URL",
                "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing",
            ),
            (
                "SHIPPING_DATABASE_URL",
                "postgres://shipping:shipping@127.0.0.1:15432/shipping",
            ),
        ]);
        let infra = TestInfra::from_lookup(|k| set.get(k).cloned()).expect("complete");
        assert_eq!(
            infra.service_url(&platform::services::SHIPPING_SERVICE),
            "postgres://shipping:shipping@127.0.0.1:15432/shipping"
        );
        assert_eq!(infra.kafka_bootstrap_servers(), "127.0.0.1:19092");
    }

    #[test]
    fn the_database_of_a_url_can_be_swapped() {
        let url = "postgres://orders:orders@127.0.0.1:15432/orders";
        assert_eq!(
            with_database(url, "abc").expect("url"),
            "postgres://orders:orders@127.0.0.1:15432/abc"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/db?sslmode=disable", "x").expect("url"),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1", "x").expect("url"),
            "postgres://u:p@h:1/x"
        );
        assert_eq!(database_of(url), Some("orders"));
        assert_eq!(database_of("postgres://u:p@h:1/x?a=b"), Some("x"));
        assert_eq!(database_of("postgres://u:p@h:1"), None);
        assert!(with_database("nonsense", "x").is_err());
    }

    #[test]
    fn passwords_stay_out_of_error_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
    }
}
