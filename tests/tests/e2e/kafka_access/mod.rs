//! Kafka principals and ACLs, on the real broker: each principal can do what
//! its role needs and nothing else, and a client without credentials gets
//! nothing.
//!
//! Each test provisions its own copy of the declared principals
//! ([`access::principals`] of a [`Scope`] with a fresh topic and a suffix on
//! every principal and group name), exactly as `cargo xtask` and compose
//! provision the real ones, so the roles tried here are the declaration's,
//! and tests never share a principal, a topic or a group. One test runs
//! invoicing itself as its principal and takes an ACL away from it: Kafka
//! refusing the service is the service's fault, never a record's.

mod authentication;
mod lost_acl;
mod principals;
mod topic_admin;

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use devinfra::kafka::access::{self, Principal, Scope};
use e2e::TestInfra;
use platform::services::ServiceFacts;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use uuid::Uuid;

/// How long a read may wait for its record, or a refusal for its error.
pub(super) const PATIENCE: Duration = Duration::from_secs(60);

/// A provisioned copy of the declared principals, on a topic of its own.
pub(super) struct Provisioned {
    bootstrap: String,
    scope: Scope,
    principals: Vec<Principal>,
}

impl Provisioned {
    pub(super) async fn new() -> anyhow::Result<Self> {
        let infra = TestInfra::acquire().await?;
        let suffix = format!("-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let scope = Scope {
            topic: format!("e2e-{}", Uuid::new_v4()),
            suffix,
        };
        let bootstrap = infra.kafka_bootstrap_servers().to_owned();
        // Replication -1: the broker's default.
        devinfra::kafka::provision(&bootstrap, &scope, 1, -1)
            .await
            .context("provisioning the principals")?;
        Ok(Provisioned {
            bootstrap,
            principals: access::principals(&scope),
            scope,
        })
    }

    pub(super) fn principal(&self, name: &str) -> anyhow::Result<&Principal> {
        self.principals
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("{name} is not declared"))
    }

    /// A client of `service`'s principal, logged in with SCRAM as the service is.
    pub(super) fn service(&self, service: &ServiceFacts) -> anyhow::Result<ClientConfig> {
        Ok(self.scram(self.principal(&self.scope.principal(service))?))
    }

    /// A client of the `orderflow-admin` tool's principal.
    pub(super) fn operator(&self) -> anyhow::Result<ClientConfig> {
        Ok(self.scram(self.principal(&self.scope.operator())?))
    }

    pub(super) fn scram(&self, principal: &Principal) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("security.protocol", access::SECURITY_PROTOCOL)
            .set("sasl.mechanism", access::SCRAM_MECHANISM)
            .set("sasl.username", &principal.name)
            .set("sasl.password", &principal.password)
            .set("log_level", "3");
        config
    }

    pub(super) fn group(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        self.scope
            .group(service)
            .ok_or_else(|| anyhow!("{} has no group", service.name))
    }

    pub(super) fn dead_letters(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        Ok(shared_events::topics::dead_letter(
            &self.scope.topic,
            &self.group(service)?,
        ))
    }

    pub(super) fn retry(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        Ok(shared_events::topics::retry(
            &self.scope.topic,
            &self.group(service)?,
        ))
    }
}

/// Produces one record under `key` to `topic` with `config` (idempotent,
/// `acks=all`, as the relay and the dead-letter producer do).
pub(super) async fn produce(
    config: &ClientConfig,
    topic: &str,
    key: &str,
) -> Result<(), KafkaError> {
    let producer: FutureProducer = config
        .clone()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create()?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload("{}"),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// How a test reads: as a member of its group, or with partitions assigned
/// by hand (librdkafka still wants a `group.id` for that, but joins nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    Subscribed,
    Assigned,
}

/// Reads `topics` in `group` (subscribed, or assigned from the start) and
/// polls until a record keyed `key` arrives or a consumer error does;
/// commits what it read when subscribed.
pub(super) async fn read(
    config: &ClientConfig,
    group: &str,
    reading: Reading,
    topics: &[&str],
    key: &str,
) -> Result<OwnedMessage, KafkaError> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let (key, subscribe) = (key.to_owned(), reading == Reading::Subscribed);
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        if subscribe {
            consumer.subscribe(&names)?;
        } else {
            let mut assignment = TopicPartitionList::new();
            for topic in &names {
                assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)?;
            }
            consumer.assign(&assignment)?;
        }
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(message)) if message.key() == Some(key.as_bytes()) => {
                    let message = message.detach();
                    if subscribe {
                        consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)?;
                    }
                    return Ok(message);
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(_)) | None => {}
            }
        }
        Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::OperationTimedOut,
        ))
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// The broker's error code in a refused operation.
pub(super) fn code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// Whether `error` is an authorisation refusal (of the topic or the group).
pub(super) fn refused(error: &KafkaError) -> bool {
    matches!(
        code(error),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

/// A metadata request for `topic` with `config`: its partition count, or
/// the broker's refusal.
pub(super) async fn topic_metadata(config: ClientConfig, topic: &str) -> Result<usize, KafkaError> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) => match t.error() {
                Some(error) => Err(KafkaError::MetadataFetch(error.into())),
                None => Ok(t.partitions().len()),
            },
            None => Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopic)),
        }
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}
