//! A private Kafka node on free ports, driven through the library API the
//! end-to-end and chaos tests use: start, stop, restart on the same storage,
//! crash (SIGKILL), restart again. Needs Java and the Maven-resolved classpath,
//! which `cargo xtask test` has already set up; also on a machine with Docker,
//! where it says so in one line when they are missing.

use std::sync::Arc;
use std::time::Duration;

use devinfra::kafka::broker_ids;
use devinfra::prereq::{self, NativeNeeds};
use devinfra::process;
use devinfra::{DevInfra, InfraError, KafkaCluster, NodePorts};

#[tokio::test]
async fn a_private_broker_stops_restarts_and_survives_a_crash() -> Result<(), InfraError> {
    prereq::native_test(
        "a_private_broker_stops_restarts_and_survives_a_crash",
        "it stops, kills and restarts a broker process of its own",
        NativeNeeds::Kafka,
    )
    .await
    .unwrap_or_else(|unavailable| panic!("{unavailable}"));
    let runtime = Arc::new(DevInfra::from_env()?.kafka_runtime().await?);
    let dir = std::env::temp_dir().join(format!("xtask-private-broker-{}", uuid::Uuid::new_v4()));
    let mut cluster = KafkaCluster::new(runtime, &dir, NodePorts::free(1)?)?.kill_on_drop(true);
    let bootstrap = cluster.bootstrap_servers();

    cluster.start().await?;
    assert_eq!(
        broker_ids(&bootstrap, Duration::from_secs(5)).await?,
        vec![1]
    );
    let cluster_id = cluster.cluster_id().to_owned();

    let broker = cluster.broker_mut(1).expect("node 1 exists");
    let first = broker.pid().expect("node 1 runs after start");
    broker.stop().await?;
    assert_eq!(broker.pid(), None);
    assert!(!process::is_alive(first), "pid {first} survived stop");
    assert!(
        broker_ids(&bootstrap, Duration::from_secs(1))
            .await
            .is_err(),
        "a stopped broker answered a metadata request"
    );

    // Restart on the same storage: no new format, same cluster.
    broker.start().await?;
    let second = broker.pid().expect("node 1 runs after restart");
    assert_ne!(first, second);

    broker.kill()?;
    assert_eq!(broker.pid(), None);
    assert!(!process::is_alive(second), "pid {second} survived SIGKILL");

    // After a crash the node recovers its log and rejoins.
    broker.start().await?;
    assert_eq!(
        broker_ids(&bootstrap, Duration::from_secs(5)).await?,
        vec![1]
    );

    cluster.stop().await?;
    assert!(cluster.brokers().iter().all(|b| b.pid().is_none()));
    let reopened = KafkaCluster::open(&dir)?.expect("topology recorded");
    assert_eq!(reopened.cluster_id(), cluster_id);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
