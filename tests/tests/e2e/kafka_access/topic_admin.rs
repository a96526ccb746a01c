//! Only the admin principal creates or deletes topics.

use anyhow::{anyhow, ensure};
use devinfra::kafka::access::{self};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication, TopicResult};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use uuid::Uuid;

use super::{PATIENCE, Provisioned};

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
