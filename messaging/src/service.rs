//! A consuming service as a process, written once for invoicing and shipping.
//!
//! Both services have the same shape: an [`Inbox`] that turns order events
//! into rows of the service's own database, and a read API over those rows,
//! running side by side until shutdown. A service supplies what differs (its
//! [`ConsumingService`] implementation: name, defaults, migrations, routes,
//! and the [`Handler`] that reads events and applies effects); this module
//! does the rest: configuration from the environment, start-up (pool,
//! migrations, listener, dead-letter producer, inbox) and running both halves
//! until they have drained.
//!
//! # Rebuilding a service's view from the topic
//!
//! A consuming service's tables are a view of the order topic, so they can be
//! rebuilt from it: start the service against an empty database, in a NEW
//! consumer group that starts from the earliest offset, and let it catch up.
//!
//! ```text
//! createdb -O invoicing invoicing_rebuild          # an empty database
//! DATABASE_URL=postgres://invoicing:invoicing@127.0.0.1:15432/invoicing_rebuild \
//! KAFKA_GROUP_ID=invoicing-rebuild-20261121 \
//! KAFKA_AUTO_OFFSET_RESET=earliest \
//! HTTP_ADDR=127.0.0.1:0 \
//!   invoicing-service
//! ```
//!
//! The migrations create the schema; the new group has no committed offsets,
//! so it reads every partition from the start; the dedup table is empty, so
//! every event applies once again. The rebuild has caught up when the
//! `inbox_consumer_lag` metric reaches 0 (it is sampled every 5 s). Rows
//! equal the original's except for their surrogate ids and commit timestamps
//! (`issued_at`, `created_at`), which are the rebuild's own. Records the
//! reader rejects are dead-lettered again, to the rebuild group's own
//! `<topic>.dlq.<group>`. The view is complete only if the topic's retention
//! still holds the whole history; cut over by pointing the service at the
//! rebuilt database with the rebuild group (its offsets continue from there).

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::config::{ConfigError, concat_names, count_names, var};
use platform::db::{DatabaseUrl, DbSettings};
use platform::health::Readiness;
use platform::http::{HttpLimits, with_common_layers};
use prometheus_client::registry::Registry;
use rdkafka::error::KafkaError;
use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::inbox::{Handler, Inbox, InboxError, InboxMetrics, InboxSettings};
use crate::kafka::{KafkaSettings, ProducerSettings, producer};

/// What a consuming service supplies besides its [`Handler`].
pub trait ConsumingService: Handler + Default + fmt::Debug + Clone {
    /// The service's name, also its default consumer group.
    const NAME: &'static str;
    /// The port it listens on (on 127.0.0.1) when `HTTP_ADDR` is not set.
    const DEFAULT_PORT: u16;
    /// Its database when `DATABASE_URL` is not set.
    const DEFAULT_DATABASE_URL: &'static str;

    /// Its schema, `processed_events` included (`sqlx::migrate!()` of its crate).
    fn migrator() -> &'static Migrator;

    /// Its read API; health, metrics and the common layers are added around it.
    fn routes(pool: PgPool) -> Router;
}

/// The variables a consuming service reads besides the settings' own lists.
const OWN_ENV_VARS: &[&str] = &[
    "RUST_LOG",
    "HTTP_ADDR",
    "DATABASE_URL",
    "DB_MAX_CONNECTIONS",
];

const ENV_VAR_LISTS: &[&[&str]] = &[
    OWN_ENV_VARS,
    KafkaSettings::ENV_VARS,
    ProducerSettings::ENV_VARS,
    InboxSettings::ENV_VARS,
];

const ALL_ENV_VARS: [&str; count_names(ENV_VAR_LISTS)] = concat_names(ENV_VAR_LISTS);

/// Every environment variable a consuming service reads at start-up.
pub const ENV_VARS: &[&str] = &ALL_ENV_VARS;

/// Pool size when `DB_MAX_CONNECTIONS` is not set.
const DEFAULT_MAX_CONNECTIONS: u32 = 8;

/// How long a query waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a consuming service `S` is configured.
#[derive(Debug, Clone)]
pub struct ServiceConfig<S> {
    /// `HTTP_ADDR`: where the read API listens (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// `DATABASE_URL`, `DB_MAX_CONNECTIONS`: the service's own database.
    pub database: DbSettings,
    /// The brokers and the topic consumed.
    pub kafka: KafkaSettings,
    /// The dead-letter producer.
    pub producer: ProducerSettings,
    /// The consumer group and its behaviour.
    pub inbox: InboxSettings,
    service: PhantomData<S>,
}

impl<S: ConsumingService> ServiceConfig<S> {
    /// The service's local defaults with the given database and Kafka settings
    /// (for tests and tools that do not configure through the environment).
    pub fn new(database_url: DatabaseUrl, kafka: KafkaSettings) -> Self {
        ServiceConfig {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, S::DEFAULT_PORT)),
            database: DbSettings {
                url: database_url,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                acquire_timeout: ACQUIRE_TIMEOUT,
            },
            kafka,
            producer: ProducerSettings::default(),
            inbox: InboxSettings::new(S::NAME),
            service: PhantomData,
        }
    }

    /// Reads [`ENV_VARS`] from the environment, with the service's local defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(ServiceConfig {
            http_addr: var(
                "HTTP_ADDR",
                SocketAddr::from((Ipv4Addr::LOCALHOST, S::DEFAULT_PORT)),
            )?,
            database: DbSettings {
                url: var("DATABASE_URL", DatabaseUrl::new(S::DEFAULT_DATABASE_URL))?,
                max_connections: var("DB_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)?,
                acquire_timeout: ACQUIRE_TIMEOUT,
            },
            kafka: KafkaSettings::from_env()?,
            producer: ProducerSettings::from_env()?,
            inbox: InboxSettings::from_env(S::NAME)?,
            service: PhantomData,
        })
    }
}

/// Why a consuming service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached.
    #[error("connecting to the database: {0}")]
    Database(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migrating the database: {0}")]
    Migrate(#[from] MigrateError),
    /// The HTTP listener could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The dead-letter producer could not be created.
    #[error("creating the dead-letter producer: {0}")]
    Kafka(#[from] KafkaError),
}

/// Why a running consuming service stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The inbox failed (or an injected fault stopped it); the read API was
    /// drained and stopped with it.
    #[error("inbox: {0}")]
    Inbox(#[from] InboxError),
    /// The HTTP server failed; the inbox was stopped with it.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
}

/// A started consuming service: bound, migrated, ready to run.
pub struct ServiceApp<S: ConsumingService> {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    inbox: Inbox<S>,
}

impl<S: ConsumingService> ServiceApp<S> {
    /// Connects the pool, migrates the schema, binds the listener and creates
    /// the dead-letter producer and the inbox. Kafka is not contacted yet: the
    /// inbox provisions its topics patiently once running.
    pub async fn build(config: ServiceConfig<S>) -> Result<Self, StartupError> {
        let pool = config
            .database
            .connect()
            .await
            .map_err(StartupError::Database)?;
        S::migrator().run(&pool).await?;
        let bind_error = |source| StartupError::Bind {
            addr: config.http_addr,
            source,
        };
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;

        let mut registry = Registry::default();
        let metrics = InboxMetrics::register(&mut registry);
        let dead_letters = producer(&config.kafka, &config.producer)?;
        let readiness = Readiness::new();
        let inbox = Inbox::new(
            pool.clone(),
            S::default(),
            config.kafka,
            config.inbox,
            metrics,
            readiness.clone(),
            dead_letters,
        );
        let router = with_common_layers(
            S::routes(pool.clone()),
            pool,
            readiness,
            Arc::new(registry),
            HttpLimits::default(),
        );
        tracing::info!(service = S::NAME, %local_addr, "started");
        Ok(ServiceApp {
            listener,
            local_addr,
            router,
            inbox,
        })
    }

    /// The address the read API listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs the read API and the inbox until `shutdown` fires and both have
    /// drained. If either stops on its own, the other is stopped too and the
    /// error is returned (an inbox error first).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> Result<(), RunError> {
        let stop = shutdown.child_token();
        let server = async {
            let served = platform::http::serve(self.listener, self.router, stop.clone()).await;
            stop.cancel();
            served
        };
        let consumer = async {
            let consumed = self.inbox.run(stop.clone()).await;
            stop.cancel();
            consumed
        };
        let (served, consumed) = tokio::join!(server, consumer);
        consumed?;
        served?;
        tracing::info!(service = S::NAME, "stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_hold_every_settings_list_once() {
        for list in ENV_VAR_LISTS {
            for name in *list {
                assert_eq!(ENV_VARS.iter().filter(|n| *n == name).count(), 1, "{name}");
            }
        }
        assert_eq!(ENV_VARS.len(), count_names(ENV_VAR_LISTS));
    }
}
