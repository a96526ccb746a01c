//! Kafka client settings shared by every service, and explicit topic provisioning.
//!
//! Nothing in the flow relies on broker auto-creation: a topic auto-created by
//! the first producer or consumer gets the broker's default partition count,
//! which silently breaks the ordering and scaling the design depends on. Every
//! service calls [`ensure_topics`] at start-up, before producing or
//! subscribing: it checks that its topics are there, and creates only those
//! that are not (which only a principal allowed to create topics can: the
//! stack's provisioning creates them all first).

mod rebootstrap;

use std::time::{Duration, Instant};

use platform::config::KafkaAuth;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer as _};

pub use rebootstrap::{Rebootstrap, STATISTICS_INTERVAL_MS};

/// This crate's producers: idempotent ([`producer`]), and given their
/// bootstrap servers back when left without a broker ([`Rebootstrap`]).
pub type Producer = FutureProducer<Rebootstrap>;

/// Where the brokers are and how the orders topic is shaped.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaSettings {
    /// Kafka brokers.
    #[arg(
        id = "kafka_bootstrap_servers",
        long = "kafka-bootstrap-servers",
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:19092"
    )]
    pub bootstrap_servers: String,
    /// Who this service is to the brokers.
    #[command(flatten)]
    pub auth: platform::config::KafkaAuth,
    /// The topic order events are published to.
    #[arg(
        id = "orders_topic",
        long = "orders-topic",
        env = "ORDERS_TOPIC",
        default_value = shared_events::topics::ORDERS
    )]
    pub topic: String,
    /// Partitions of a topic this service has to create.
    #[arg(
        id = "orders_topic_partitions",
        long = "orders-topic-partitions",
        env = "ORDERS_TOPIC_PARTITIONS",
        default_value_t = shared_events::topics::ORDERS_PARTITIONS,
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub partitions: i32,
    /// Replication factor of a topic this service has to create.
    #[arg(
        id = "kafka_replication_factor",
        long = "kafka-replication-factor",
        env = "KAFKA_REPLICATION_FACTOR",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub replication_factor: i32,
    /// `min.insync.replicas` of a topic this service creates with a replication factor above 1 (unset: 2 when the factor is 3 or more, else 1)
    #[arg(
        id = "kafka_min_insync_replicas",
        long = "kafka-min-insync-replicas",
        env = "KAFKA_MIN_INSYNC_REPLICAS",
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub min_insync_replicas: Option<i32>,
    /// `retention.ms` of the orders topic when this service creates it, in hours: how long a stalled consumer may stay behind before its records are deleted (it then stops, never skips); keep it longer than any outage you plan to recover from
    #[arg(
        id = "orders_topic_retention",
        long = "orders-topic-retention-hours",
        env = "ORDERS_TOPIC_RETENTION_HOURS",
        default_value = "168",
        value_parser = retention_hours
    )]
    pub retention: Duration,
    /// The `client.id` of this service's Kafka clients, so that brokers and
    /// `kafka-consumer-groups --describe` name the service (each service's
    /// command line defaults it to the service's name; no variable sets it)
    #[arg(
        id = "kafka_client_id",
        long = "kafka-client-id",
        default_value = "orderflow"
    )]
    pub client_id: String,
}

impl KafkaSettings {
    /// Settings for a local broker, authenticating with `auth`, and the
    /// given topic (for tests and tools).
    pub fn local(bootstrap_servers: &str, auth: KafkaAuth, topic: &str) -> Self {
        KafkaSettings {
            bootstrap_servers: bootstrap_servers.to_owned(),
            auth,
            topic: topic.to_owned(),
            partitions: shared_events::topics::ORDERS_PARTITIONS,
            replication_factor: 1,
            min_insync_replicas: None,
            retention: Duration::from_secs(shared_events::topics::ORDERS_RETENTION_HOURS * 3600),
            client_id: "orderflow".to_owned(),
        }
    }

    /// `min.insync.replicas` for created topics: as set, else 2 when the
    /// replication factor is 3 or more (one replica may fail), else 1.
    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas
            .unwrap_or(if self.replication_factor >= 3 { 2 } else { 1 })
    }

    /// A client configuration pointing at the brokers, authenticated as this service.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in self.auth.client_properties() {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id)
            // A restarted broker is retried within 2 s rather than librdkafka's
            // 10 s ceiling: the few brokers of a cluster are worth reconnecting to.
            .set("reconnect.backoff.max.ms", "2000");
        config
    }

    /// The topic specification used when this service has to create `name`:
    /// the orders topic's partitions, replication and retention (a topic of
    /// another retention sets it with [`TopicSpec::retained_for`]).
    pub fn topic_spec(&self, name: &str) -> TopicSpec {
        TopicSpec {
            name: name.to_owned(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas(),
            retention: self.retention,
        }
    }
}

/// How the producers (the relay's, the dead letters') batch and time out.
#[derive(Debug, Clone, clap::Args)]
pub struct ProducerSettings {
    /// How long the producer waits to fill a batch; 0, since the relay batches itself and waits for each batch's delivery reports (BENCHMARKS.md, tuning)
    #[arg(
        id = "kafka_linger_ms",
        long = "kafka-linger-ms",
        env = "KAFKA_LINGER_MS",
        default_value_t = 0
    )]
    pub linger_ms: u32,
    /// Largest batch of records per partition, in bytes.
    #[arg(
        id = "kafka_batch_size",
        long = "kafka-batch-size",
        env = "KAFKA_BATCH_SIZE",
        default_value_t = 1_000_000
    )]
    pub batch_size: u32,
    /// A record not delivered by then fails (the relay tries it again).
    #[arg(
        id = "kafka_message_timeout_ms",
        long = "kafka-message-timeout-ms",
        env = "KAFKA_MESSAGE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub message_timeout_ms: u32,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        ProducerSettings {
            linger_ms: 0,
            batch_size: 1_000_000,
            message_timeout_ms: 30_000,
        }
    }
}

/// An idempotent producer: `enable.idempotence=true`, `acks=all`. Retries
/// inside librdkafka can then neither duplicate nor reorder records of a
/// partition. Keys pick partitions as Kafka's Java client does
/// ([`shared_events::topics::PARTITIONER`]).
pub fn producer(
    kafka: &KafkaSettings,
    settings: &ProducerSettings,
) -> Result<Producer, KafkaError> {
    let rebootstrap = Rebootstrap::new(&kafka.bootstrap_servers);
    let binder = rebootstrap.binder();
    let producer: Producer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", shared_events::topics::PARTITIONER)
        .set("linger.ms", settings.linger_ms.to_string())
        .set("batch.size", settings.batch_size.to_string())
        .set(
            "message.timeout.ms",
            settings.message_timeout_ms.to_string(),
        )
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .create_with_context(rebootstrap)?;
    binder.attach(producer.client());
    Ok(producer)
}

/// The broker's refusal in `error` when it refuses this principal's request
/// (a missing ACL, a credential that no longer logs in): the service's own
/// fault, never a record's, so it stalls and reports it instead of moving on.
pub fn denied(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code().filter(|code| {
        matches!(
            code,
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
        )
    })
}

/// An idempotent [`producer`] that is replaced by a new one after a fatal error.
///
/// An idempotent producer keeps a producer id and a sequence number per
/// partition; when librdkafka can no longer vouch for them (the broker fenced
/// the producer id, a sequence gap it cannot repair), it raises a *fatal*
/// error: from then on every send fails at once with `Fatal`, and no retry of
/// that instance ever succeeds. The only way out is a new instance, with a
/// new producer id. Every user checks after a failed send
/// ([`RebuildingProducer::rebuild_if_fatal`]); the first to see the fatal
/// error replaces the instance, counts it, and the failed records are simply
/// sent again through the new one (the relay's rows stay in the outbox, a
/// dead letter is retried by the inbox), so nothing is lost and nothing
/// reordered: the old instance has nothing in flight once its sends failed.
#[derive(Clone)]
pub struct RebuildingProducer {
    shared: std::sync::Arc<SharedProducer>,
}

struct SharedProducer {
    kafka: KafkaSettings,
    settings: ProducerSettings,
    current: std::sync::RwLock<Producer>,
    rebuilds: prometheus_client::metrics::counter::Counter,
}

impl RebuildingProducer {
    /// Creates the producer; `rebuilds` counts the instances replaced after
    /// a fatal error (register it on the service's `/metrics`).
    pub fn new(
        kafka: &KafkaSettings,
        settings: &ProducerSettings,
        rebuilds: prometheus_client::metrics::counter::Counter,
    ) -> Result<Self, KafkaError> {
        Ok(RebuildingProducer {
            shared: std::sync::Arc::new(SharedProducer {
                current: std::sync::RwLock::new(producer(kafka, settings)?),
                kafka: kafka.clone(),
                settings: settings.clone(),
                rebuilds,
            }),
        })
    }

    /// The producer instance to send through now (a cheap handle).
    pub fn current(&self) -> Producer {
        self.shared
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// When the current instance has raised a fatal error, replaces it with a
    /// new one and returns that error's description; `Ok(None)` when it has
    /// none (or another caller replaced it already). Fails only when the new
    /// instance cannot be created; the fatal one is kept until a later call
    /// succeeds.
    pub fn rebuild_if_fatal(&self) -> Result<Option<String>, KafkaError> {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((code, reason)) = current.client().fatal_error() else {
            return Ok(None);
        };
        let fresh = producer(&self.shared.kafka, &self.shared.settings)?;
        let fatal = std::mem::replace(&mut *current, fresh);
        drop(current);
        self.shared.rebuilds.inc();
        // Destroying an instance waits for its background threads; not on
        // the async worker that called us.
        std::thread::spawn(move || drop(fatal));
        Ok(Some(format!("{code:?}: {reason}")))
    }

    /// Makes the current instance raise a fatal error, as a fenced idempotent
    /// producer does (librdkafka's `rd_kafka_test_fatal_error`): for tests.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fatal_error(&self, reason: &str) {
        let reason = std::ffi::CString::new(reason.replace('\0', " ")).unwrap_or_default();
        let current = self.current();
        // SAFETY: the client pointer is valid while `current` lives; the
        // function copies the reason.
        unsafe {
            rdkafka_sys::rd_kafka_test_fatal_error(
                current.client().native_ptr(),
                rdkafka_sys::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__FENCED,
                reason.as_ptr(),
            );
        }
    }
}

impl std::fmt::Debug for RebuildingProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebuildingProducer")
            .field("rebuilds", &self.shared.rebuilds.get())
            .finish_non_exhaustive()
    }
}

/// A topic to create if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// `min.insync.replicas` (only set when the replication factor is above 1).
    pub min_insync_replicas: i32,
    /// `retention.ms`: records older than this are deleted.
    pub retention: Duration,
}

impl TopicSpec {
    /// The same topic with `partitions` partitions.
    pub fn with_partitions(self, partitions: i32) -> Self {
        TopicSpec { partitions, ..self }
    }

    /// The same topic, its records kept for `retention`.
    pub fn retained_for(self, retention: Duration) -> Self {
        TopicSpec { retention, ..self }
    }
}

/// Parses a topic retention given in hours (`_RETENTION_HOURS` variables):
/// a whole number of hours, at least 1 (a topic that keeps nothing would
/// delete records before anyone reads them).
pub fn retention_hours(value: &str) -> Result<Duration, String> {
    match platform::config::hours(value)? {
        zero if zero.is_zero() => Err(
            "a retention of 0 hours would delete records before they are read; give 1 or more"
                .to_owned(),
        ),
        hours => Ok(hours),
    }
}

/// Why topics could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin request failed.
    #[error("topic {topic} could not be created")]
    Create {
        /// The topic.
        topic: String,
        /// The cause.
        source: KafkaError,
    },
    /// The brokers did not show the topic with its partitions in time.
    #[error("topic {topic} did not appear with {partitions} partitions within {waited:?}")]
    NotReady {
        /// The topic.
        topic: String,
        /// The expected partition count.
        partitions: i32,
        /// How long we waited.
        waited: Duration,
    },
    /// The Kafka client could not be created.
    #[error("the Kafka admin client failed")]
    Client(#[from] KafkaError),
}

/// The partition count of `topic` as the cluster's metadata shows it.
pub async fn partition_count(kafka: &KafkaSettings, topic: &str) -> Result<i32, TopicError> {
    let config = kafka.client_config();
    let name = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let metadata = consumer.fetch_metadata(Some(&name), Duration::from_secs(10))?;
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
            .ok_or(TopicError::NotReady {
                topic: name.clone(),
                partitions: 1,
                waited: Duration::from_secs(10),
            })
    })
    .await
    .map_err(|_| TopicError::Client(KafkaError::Canceled))?
}

/// Creates each topic that the cluster's metadata does not show yet, then
/// waits until it shows every one, a created one with a leader for each of
/// its partitions. An existing topic is left as it is (a smaller partition
/// count is logged, never changed silently), and is not waited for: a
/// partition of it without a leader (its broker away) must not keep a
/// service from starting on the others.
///
/// Where the brokers authorise requests, only the administrative principal
/// may create topics: the stack's provisioning creates every topic of the
/// flow before a service starts, so a service only finds its topics here
/// and never asks to create one. Were one missing, its creation is refused
/// (`TopicError::Create`, "authorization failed") and the caller retries
/// until provisioning has made it.
pub async fn ensure_topics(kafka: &KafkaSettings, topics: &[TopicSpec]) -> Result<(), TopicError> {
    let config = kafka.client_config();
    let wanted = topics.to_vec();
    let missing = tokio::task::spawn_blocking(move || missing_topics(config, &wanted))
        .await
        .map_err(|_| TopicError::Client(KafkaError::Canceled))??;
    if !missing.is_empty() {
        create_topics(kafka, &missing).await?;
    }
    let config = kafka.client_config();
    let topics = topics.to_vec();
    let created: Vec<String> = missing.into_iter().map(|t| t.name).collect();
    tokio::task::spawn_blocking(move || {
        wait_for_topics(config, &topics, &created, Duration::from_secs(30))
    })
    .await
    .map_err(|_| TopicError::Client(KafkaError::Canceled))?
}

/// The topics of `topics` that the cluster's metadata does not show.
fn missing_topics(
    config: ClientConfig,
    topics: &[TopicSpec],
) -> Result<Vec<TopicSpec>, TopicError> {
    let consumer: BaseConsumer = config.create()?;
    let mut missing = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(&topic.name), Duration::from_secs(10))?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic.name && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            missing.push(topic.clone());
        }
    }
    Ok(missing)
}

/// Asks the cluster to create `topics`; one that exists by now is fine.
async fn create_topics(kafka: &KafkaSettings, topics: &[TopicSpec]) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
    let isr: Vec<String> = topics
        .iter()
        .map(|t| t.min_insync_replicas.to_string())
        .collect();
    let retention: Vec<String> = topics
        .iter()
        .map(|t| t.retention.as_millis().to_string())
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(isr.iter().zip(&retention))
        .map(|(t, (isr, retention))| {
            let topic = NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(t.replication_factor),
            )
            .set("retention.ms", retention);
            if t.replication_factor > 1 {
                topic.set("min.insync.replicas", isr)
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new_topics, &options).await?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "topic exists")
            }
            Err((name, code)) => {
                return Err(TopicError::Create {
                    topic: name,
                    source: KafkaError::AdminOp(code),
                });
            }
        }
    }
    Ok(())
}

/// [`ensure_topics`], retried with capped backoff until it succeeds or
/// `shutdown` fires (then `false`). Services call this before producing or
/// subscribing, so a broker that is still starting delays them instead of
/// crashing them.
pub async fn ensure_topics_patiently(
    kafka: &KafkaSettings,
    topics: &[TopicSpec],
    max_backoff: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let mut backoff = crate::backoff::Backoff::new(Duration::from_millis(200), max_backoff);
    loop {
        match ensure_topics(kafka, topics).await {
            Ok(()) => return true,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %platform::error::chain(&e), retry_in = ?delay, "topics not ready; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(delay) => {},
                }
            }
        }
    }
}

/// Blocks until every topic shows up in the metadata, those just `created`
/// with a leader for each partition. A topic that already existed with
/// fewer partitions than configured is used as it is, with a warning:
/// repartitioning would move keys.
fn wait_for_topics(
    config: ClientConfig,
    topics: &[TopicSpec],
    created: &[String],
    timeout: Duration,
) -> Result<(), TopicError> {
    let consumer: BaseConsumer = config.create()?;
    let started = Instant::now();
    for topic in topics {
        let needs_leaders = created.contains(&topic.name);
        loop {
            let partitions = consumer
                .fetch_metadata(Some(&topic.name), Duration::from_secs(5))
                .ok()
                .and_then(|md| {
                    md.topics()
                        .iter()
                        .find(|t| t.name() == topic.name && t.error().is_none())
                        .filter(|t| !t.partitions().is_empty())
                        .filter(|t| {
                            !needs_leaders || t.partitions().iter().all(|p| p.leader() >= 0)
                        })
                        .map(|t| t.partitions().len() as i32)
                });
            match partitions {
                Some(n) => {
                    if n < topic.partitions {
                        tracing::warn!(topic = %topic.name, partitions = n, configured = topic.partitions,
                            "topic exists with fewer partitions than configured; using it as it is");
                    }
                    break;
                }
                None if started.elapsed() > timeout => {
                    return Err(TopicError::NotReady {
                        topic: topic.name.clone(),
                        partitions: topic.partitions,
                        waited: started.elapsed(),
                    });
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_retention_of_zero_hours_is_refused_and_one_hour_taken() {
        assert!(super::retention_hours("0").is_err());
        assert_eq!(super::retention_hours("1"), Ok(Duration::from_secs(3600)));
    }
}
