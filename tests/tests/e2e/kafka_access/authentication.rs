//! A client without credentials is refused.

use std::time::Duration;

use anyhow::ensure;
use devinfra::kafka::access::{self};
use platform::services::ORDER_SERVICE;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use super::{Provisioned, produce};

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
