//! A consumer refused its reads stalls until the ACL is back, dead-lettering nothing.

use anyhow::{anyhow, ensure};
use devinfra::kafka::access::{self, Operation, Resource};
use e2e::TestInfra;
use e2e::events::placed;
use e2e::services::{EventProducer, ServiceUnderTest, consumer_config, init_logs, wait_until};
use invoicing_service::Invoicing;
use platform::config::KafkaAuth;
use platform::services::INVOICING_SERVICE;
use reqwest::StatusCode;
use uuid::Uuid;

use super::Provisioned;

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
