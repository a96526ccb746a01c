//! The thirteen experiments, one module each. Every one creates its own topics
//! (and database, where it counts effects in PostgreSQL) on the lab's
//! infrastructure, runs, and returns its [`Outcome`]: the setup with this
//! run's sizes, its tables of counts, and the verdict those counts give
//! for each of its claims (see the `claims` module).

mod acks;
mod batch_commits;
mod commit_timing;
mod compaction;
mod crashing_consumer;
mod idempotence;
mod key_order;
mod parallelism;
mod pubsub;
mod pull;
mod replication;
mod retention;
mod transactions;
mod when_to_send;

use crate::{Lab, LabError, Outcome, Scenario};

/// Runs `scenario` on `lab`'s infrastructure.
pub(crate) async fn run(scenario: Scenario, lab: &mut Lab) -> Result<Outcome, LabError> {
    match scenario {
        Scenario::PubSub => pubsub::run(lab).await,
        Scenario::Parallelism => parallelism::run(lab).await,
        Scenario::KeyOrder => key_order::run(lab).await,
        Scenario::CommitTiming => commit_timing::run(lab).await,
        Scenario::BatchCommits => batch_commits::run(lab).await,
        Scenario::Idempotence => idempotence::run(lab).await,
        Scenario::Transactions => transactions::run(lab).await,
        Scenario::Replication => replication::run(lab).await,
        Scenario::Retention => retention::run(lab).await,
        Scenario::Compaction => compaction::run(lab).await,
        Scenario::Pull => pull::run(lab).await,
        Scenario::WhenToSend => when_to_send::run(lab).await,
        Scenario::Acks => acks::run(lab).await,
    }
}

/// Sends every (key, value) of `records` to `topic`, all in flight at
/// once, and waits for every acknowledgement.
pub(crate) async fn write_all(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    records: impl IntoIterator<Item = (String, String)>,
) -> Result<(), LabError> {
    use crate::error::Step;
    let sends = records
        .into_iter()
        .map(|(key, value)| async move { crate::kafka::send(producer, topic, &key, &value).await });
    for result in futures::future::join_all(sends).await {
        result.step(format!("writing to {topic}"))?;
    }
    Ok(())
}
