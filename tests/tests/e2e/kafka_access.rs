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

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use devinfra::kafka::access::{self, Operation, Principal, Resource, Scope};
use e2e::TestInfra;
use e2e::events::placed;
use e2e::services::{EventProducer, ServiceUnderTest, consumer_config, init_logs, wait_until};
use invoicing_service::Invoicing;
use platform::config::KafkaAuth;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use reqwest::StatusCode;
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

/// How a test reads: as a member of its group, or with partitions assigned
/// by hand (librdkafka still wants a `group.id` for that, but joins nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Subscribed,
    Assigned,
}

/// Reads `topics` in `group` (subscribed, or assigned from the start) and
/// polls until a record keyed `key` arrives or a consumer error does;
/// commits what it read when subscribed.
async fn read(
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
        read(
            &consumer,
            &group,
            Reading::Subscribed,
            &[&topic, &retry],
            &order,
        )
        .await
        .with_context(|| format!("{} reads the orders topic in its group", service.name))?;
        let replay = format!("replay-{}", Uuid::new_v4());
        produce(&operator, &retry, &replay)
            .await
            .context("orderflow-admin writes a retry topic")?;
        read(
            &consumer,
            &group,
            Reading::Subscribed,
            &[&topic, &retry],
            &replay,
        )
        .await
        .with_context(|| format!("{} reads its retry topic", service.name))?;
        let letter = format!("letter-{}", Uuid::new_v4());
        produce(&consumer, &dead_letters, &letter)
            .await
            .with_context(|| format!("{} writes its dead-letter topic", service.name))?;
        read(
            &operator,
            &p.scope.operator_group(),
            Reading::Subscribed,
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
    // Neither as a member of its own group nor assigned directly. A member
    // is told it is refused; an assigned reader is not (librdkafka keeps
    // asking for the topic's metadata, which the broker refuses, and fetches
    // nothing), so it gets nothing within the read's patience.
    let own_group = p.group(&SHIPPING_SERVICE)?;
    for reading in [Reading::Subscribed, Reading::Assigned] {
        let letters = [invoicing_letters.as_str()];
        match read(&shipping, &own_group, reading, &letters, &letter).await {
            Err(e) if refused(&e) => {}
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut))
                if reading == Reading::Assigned => {}
            Err(e) => bail!("shipping's read ({reading:?}) ended otherwise than refused: {e}"),
            Ok(_) => bail!("shipping read invoicing's dead letter {letter}"),
        }
    }
    match topic_metadata(shipping.clone(), &invoicing_letters).await {
        Err(e) if refused(&e) => {}
        other => bail!("shipping asking for {invoicing_letters}'s metadata: {other:?}"),
    }
    // The same read by the principal whose role it is, the operator's tool,
    // works: the refusal is the ACL's (invoicing itself only writes there).
    read(
        &p.operator()?,
        &p.scope.operator_group(),
        Reading::Assigned,
        &[&invoicing_letters],
        &letter,
    )
    .await?;
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
    let results = admin.create_topics(&[topic], &admin_options()).await?;
    only_result(results, name)
}

/// Deletes `name` with `config`; the result for it.
async fn delete_topic(
    config: &ClientConfig,
    name: &str,
) -> anyhow::Result<Result<(), RDKafkaErrorCode>> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let results = admin.delete_topics(&[name], &admin_options()).await?;
    only_result(results, name)
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(PATIENCE))
}

/// The broker's answer for the one topic of an admin request about `name`.
fn only_result(
    results: Vec<TopicResult>,
    name: &str,
) -> anyhow::Result<Result<(), RDKafkaErrorCode>> {
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

/// A metadata request for `topic` with `config`: its partition count, or
/// the broker's refusal.
async fn topic_metadata(config: ClientConfig, topic: &str) -> Result<usize, KafkaError> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_refused_its_reads_stalls_until_the_acl_is_back_and_dead_letters_nothing()
-> anyhow::Result<()> {
    init_logs();
    let p = Provisioned::new().await?;
    let infra = TestInfra::acquire().await?;
    let topic = p.scope.topic.clone();
    let principal = p.principal(&p.scope.principal(&INVOICING_SERVICE))?;
    let read_orders = principal
        .grants
        .iter()
        .find(|g| {
            g.resource == Resource::Topic && g.name == topic && g.operation == Operation::Read
        })
        .cloned()
        .ok_or_else(|| anyhow!("{} is not declared to read {topic}", principal.name))?;
    // invoicing as it runs: its own principal, its own group.
    let (database_url, _pool) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let mut config =
        consumer_config::<Invoicing>(&infra, &database_url, &topic, &p.group(&INVOICING_SERVICE)?);
    config.kafka.auth = KafkaAuth::sasl(
        access::SCRAM_MECHANISM,
        &principal.name,
        &principal.password,
    );
    let service = ServiceUnderTest::start::<Invoicing>(config).await?;
    let producer = EventProducer::new(&infra, &topic)?;
    let invoiced = |order: Uuid| {
        let service = &service;
        async move {
            let (_, _, page) = service.get(&format!("/invoices?order_id={order}")).await?;
            anyhow::Ok(
                page["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 1),
            )
        }
    };
    let before = Uuid::now_v7();
    producer.send(&placed(before)).await?;
    wait_until("the invoice of the order before the revocation", || {
        invoiced(before)
    })
    .await?;

    // An operator's mistake: invoicing's principal may no longer read the topic.
    devinfra::kafka::revoke(&p.bootstrap, &principal.name, &read_orders).await?;
    wait_until(
        "invoicing to report not ready, naming the topic",
        || async {
            let (status, _, body) = service.get("/health/ready").await?;
            Ok(status == StatusCode::SERVICE_UNAVAILABLE && body.to_string().contains(&topic))
        },
    )
    .await?;
    // Sent while refused: it waits in the topic, neither read nor skipped.
    let during = Uuid::now_v7();
    producer.send(&placed(during)).await?;

    devinfra::kafka::grant(&p.bootstrap, &principal.name, &read_orders).await?;
    wait_until("the invoice of the order sent while refused", || {
        invoiced(during)
    })
    .await?;
    wait_until("invoicing to report ready again", || async {
        Ok(service.get("/health/ready").await?.0 == StatusCode::OK)
    })
    .await?;
    ensure!(
        service.metric("inbox_dead_lettered").await? == 0,
        "the refusal was blamed on a record"
    );
    service.stop().await
}

#[test]
fn the_admin_tool_logs_in_as_its_declared_principal() {
    assert_eq!(orderflow_admin::cli::PRINCIPAL, access::OPERATOR);
}
