//! Kafka principals and ACLs, on the real broker: each principal can do what
//! its role needs and nothing else, and a client without credentials gets
//! nothing.
//!
//! Each test provisions its own copy of the declared principals
//! ([`access::principals`] of a [`Scope`] with a fresh topic and a suffix on
//! every principal and group name), exactly as `cargo xtask` and compose
//! provision the real ones, so the roles tried here are the declaration's,
//! and tests never share a principal, a topic or a group.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use devinfra::kafka::access::{self, Principal, Scope};
use e2e::TestInfra;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use uuid::Uuid;

/// How long a read may wait for its record, or a refusal for its error.
const PATIENCE: Duration = Duration::from_secs(60);

/// A provisioned copy of the declared principals, on a topic of its own.
struct Provisioned {
    bootstrap: String,
    scope: Scope,
    principals: Vec<Principal>,
}

impl Provisioned {
    async fn new() -> anyhow::Result<Self> {
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

    fn principal(&self, name: &str) -> anyhow::Result<&Principal> {
        self.principals
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("{name} is not declared"))
    }

    /// A client of `service`'s principal, logged in with SCRAM as the service is.
    fn service(&self, service: &ServiceFacts) -> anyhow::Result<ClientConfig> {
        Ok(self.scram(self.principal(&self.scope.principal(service))?))
    }

    /// A client of the `orderflow-admin` tool's principal.
    fn operator(&self) -> anyhow::Result<ClientConfig> {
        Ok(self.scram(self.principal(&self.scope.operator())?))
    }

    fn scram(&self, principal: &Principal) -> ClientConfig {
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

    fn group(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        self.scope
            .group(service)
            .ok_or_else(|| anyhow!("{} has no group", service.name))
    }

    fn dead_letters(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        Ok(shared_events::topics::dead_letter(
            &self.scope.topic,
            &self.group(service)?,
        ))
    }

    fn retry(&self, service: &ServiceFacts) -> anyhow::Result<String> {
        Ok(shared_events::topics::retry(
            &self.scope.topic,
            &self.group(service)?,
        ))
    }
}

/// Produces one record under `key` to `topic` with `config` (idempotent,
/// `acks=all`, as the relay and the dead-letter producer do).
async fn produce(config: &ClientConfig, topic: &str, key: &str) -> Result<(), KafkaError> {
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

/// Subscribes to `topics` in `group` (or, without one, reads them assigned
/// from the start) and polls until a record keyed `key` arrives or a
/// consumer error does; commits what it read in a group.
async fn read(
    config: &ClientConfig,
    group: Option<&str>,
    topics: &[&str],
    key: &str,
) -> Result<OwnedMessage, KafkaError> {
    let mut config = config.clone();
    config
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    if let Some(group) = group {
        config.set("group.id", group);
    }
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let (key, subscribe) = (key.to_owned(), group.is_some());
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
fn code(error: &KafkaError) -> Option<RDKafkaErrorCode> {
    error.rdkafka_error_code()
}

/// Whether `error` is an authorisation refusal (of the topic or the group).
fn refused(error: &KafkaError) -> bool {
    matches!(
        code(error),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_principal_can_do_what_its_role_needs() -> anyhow::Result<()> {
    let p = Provisioned::new().await?;
    let topic = p.scope.topic.clone();
    let order = Uuid::now_v7().to_string();
    produce(&p.service(&ORDER_SERVICE)?, &topic, &order)
        .await
        .context("order-service writes the orders topic")?;
    let operator = p.operator()?;
    for service in [INVOICING_SERVICE, SHIPPING_SERVICE] {
        let consumer = p.service(&service)?;
        let (group, retry, dead_letters) = (
            p.group(&service)?,
            p.retry(&service)?,
            p.dead_letters(&service)?,
        );
        read(&consumer, Some(&group), &[&topic, &retry], &order)
            .await
            .with_context(|| format!("{} reads the orders topic in its group", service.name))?;
        let replay = format!("replay-{}", Uuid::new_v4());
        produce(&operator, &retry, &replay)
            .await
            .context("orderflow-admin writes a retry topic")?;
        read(&consumer, Some(&group), &[&topic, &retry], &replay)
            .await
            .with_context(|| format!("{} reads its retry topic", service.name))?;
        let letter = format!("letter-{}", Uuid::new_v4());
        produce(&consumer, &dead_letters, &letter)
            .await
            .with_context(|| format!("{} writes its dead-letter topic", service.name))?;
        read(
            &operator,
            Some(&p.scope.operator_group()),
            &[&dead_letters],
            &letter,
        )
        .await
        .context("orderflow-admin reads a dead-letter topic")?;
        // The tool watches a group's progress: its committed offsets.
        let (mut config, group_id, watched) = (operator.clone(), group.clone(), topic.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let reader: BaseConsumer = config.set("group.id", &group_id).create()?;
            let mut partitions = TopicPartitionList::new();
            partitions.add_partition(&watched, 0);
            let committed = reader.committed_offsets(partitions, Duration::from_secs(20))?;
            ensure!(
                committed
                    .elements()
                    .iter()
                    .any(|e| e.offset() == rdkafka::Offset::Offset(1)),
                "the group's commit is visible to orderflow-admin: {committed:?}"
            );
            Ok(())
        })
        .await?
        .context("orderflow-admin describes a consumer group")?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_cannot_read_invoicings_dead_letters() -> anyhow::Result<()> {
    let p = Provisioned::new().await?;
    let invoicing_letters = p.dead_letters(&INVOICING_SERVICE)?;
    let letter = format!("letter-{}", Uuid::new_v4());
    produce(&p.service(&INVOICING_SERVICE)?, &invoicing_letters, &letter).await?;
    let shipping = p.service(&SHIPPING_SERVICE)?;
    // Neither in its own group nor assigned directly.
    let own_group = p.group(&SHIPPING_SERVICE)?;
    for group in [Some(own_group.as_str()), None] {
        match read(&shipping, group, &[&invoicing_letters], &letter).await {
            Err(e) if refused(&e) => {}
            Err(e) => bail!("shipping's read ended otherwise than refused: {e}"),
            Ok(_) => bail!("shipping read invoicing's dead letter {letter}"),
        }
    }
    // The same read as invoicing's own principal works: the refusal is the ACL's.
    let invoicing = p.service(&INVOICING_SERVICE)?;
    read(&invoicing, None, &[&invoicing_letters], &letter).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoicing_cannot_write_to_orders() -> anyhow::Result<()> {
    let p = Provisioned::new().await?;
    let forged = Uuid::now_v7().to_string();
    match produce(&p.service(&INVOICING_SERVICE)?, &p.scope.topic, &forged).await {
        Err(e) if refused(&e) => {}
        Err(e) => bail!("invoicing's write ended otherwise than refused: {e}"),
        Ok(()) => bail!("invoicing wrote a forged record to the orders topic"),
    }
    // Nor can shipping, nor orderflow-admin's replays reach another
    // consumer's retry topic through a dead-letter topic it may only read.
    match produce(&p.service(&SHIPPING_SERVICE)?, &p.scope.topic, &forged).await {
        Err(e) if refused(&e) => {}
        other => bail!("shipping's write to the orders topic: {other:?}"),
    }
    match produce(
        &p.operator()?,
        &p.dead_letters(&INVOICING_SERVICE)?,
        &forged,
    )
    .await
    {
        Err(e) if refused(&e) => {}
        other => bail!("orderflow-admin's write to a dead-letter topic: {other:?}"),
    }
    // order-service, whose role it is, can.
    produce(&p.service(&ORDER_SERVICE)?, &p.scope.topic, &forged).await?;
    Ok(())
}

/// Creates `name` with `config`; the result for it.
async fn create_topic(
    config: &ClientConfig,
    name: &str,
) -> anyhow::Result<Result<(), RDKafkaErrorCode>> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(-1));
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        )
        .await?;
    Ok(results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no result for {name}"))?
        .map(|_| ())
        .map_err(|(_, code)| code))
}

/// Deletes `name` with `config`; the result for it.
async fn delete_topic(
    config: &ClientConfig,
    name: &str,
) -> anyhow::Result<Result<(), RDKafkaErrorCode>> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let results = admin
        .delete_topics(
            &[name],
            &AdminOptions::new().operation_timeout(Some(PATIENCE)),
        )
        .await?;
    Ok(results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no result for {name}"))?
        .map(|_| ())
        .map_err(|(_, code)| code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_principal_but_the_admin_can_create_or_delete_a_topic() -> anyhow::Result<()> {
    let p = Provisioned::new().await?;
    let admin = access::admin_client_config(&p.bootstrap);
    let scratch = format!("e2e-scratch-{}", Uuid::new_v4());
    for principal in &p.principals {
        let config = p.scram(principal);
        let created = create_topic(&config, &scratch).await?;
        ensure!(
            matches!(created, Err(RDKafkaErrorCode::TopicAuthorizationFailed)),
            "{} creating a topic: {created:?}",
            principal.name
        );
        // Its own topics included: the dead-letter topic it writes.
        for topic in access::topics(&p.scope) {
            let topic = topic.name;
            let deleted = delete_topic(&config, &topic).await?;
            ensure!(
                matches!(deleted, Err(RDKafkaErrorCode::TopicAuthorizationFailed)),
                "{} deleting {topic}: {deleted:?}",
                principal.name
            );
        }
    }
    create_topic(&admin, &scratch)
        .await?
        .map_err(|code| anyhow!("the admin creating a topic: {code}"))?;
    delete_topic(&admin, &scratch)
        .await?
        .map_err(|code| anyhow!("the admin deleting a topic: {code}"))?;
    Ok(())
}

/// A metadata request with `config`: the brokers it lists.
async fn metadata(config: ClientConfig) -> Result<usize, KafkaError> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        Ok(metadata.brokers().len())
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_client_is_refused() -> anyhow::Result<()> {
    let p = Provisioned::new().await?;
    let mut anonymous = ClientConfig::new();
    anonymous
        .set("bootstrap.servers", &p.bootstrap)
        .set("log_level", "0");
    let result = metadata(anonymous.clone()).await;
    ensure!(result.is_err(), "a client without credentials: {result:?}");
    let forged = anonymous
        .clone()
        .set("security.protocol", access::SECURITY_PROTOCOL)
        .set("sasl.mechanism", access::SCRAM_MECHANISM)
        .set("sasl.username", p.scope.principal(&ORDER_SERVICE))
        .set("sasl.password", "not-the-password")
        .to_owned();
    let result = metadata(forged).await;
    ensure!(result.is_err(), "a wrong password: {result:?}");
    let produced = produce(&anonymous, &p.scope.topic, "forged").await;
    ensure!(produced.is_err(), "an unauthenticated write: {produced:?}");
    // The same request with the right credentials is answered.
    let brokers = metadata(p.service(&ORDER_SERVICE)?).await?;
    ensure!(brokers >= 1, "the broker lists itself");
    Ok(())
}

#[test]
fn the_admin_tool_logs_in_as_its_declared_principal() {
    assert_eq!(orderflow_admin::cli::PRINCIPAL, access::OPERATOR);
}
