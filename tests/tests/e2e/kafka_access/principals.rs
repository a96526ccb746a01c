//! Each principal can do what its role needs and nothing of another's; the admin
//! tool logs in as its declared principal.

use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use devinfra::kafka::access::{self};
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use uuid::Uuid;

use super::{Provisioned, Reading, produce, read, refused, topic_metadata};

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

#[test]
fn the_admin_tool_logs_in_as_its_declared_principal() {
    assert_eq!(orderflow_admin::cli::PRINCIPAL, access::OPERATOR);
}
