//! Apache Kafka as plain JVM processes, in KRaft mode.
//!
//! [`KafkaRuntime`] is the JVM plus the classpath Maven resolves from
//! `infra/kafka/pom.xml` (the official broker jars of one pinned release).
//! [`KafkaCluster`] is 1 or 3 nodes, each broker and controller, with a static
//! controller quorum; [`KafkaBroker`] is one of them, which a test or a chaos
//! run can stop, kill and start again on its own. Storage is formatted on a
//! node's first start; after that a restart finds its data where it left it.
//!
//! "Ready" always means a metadata request answered by the cluster lists the
//! brokers we expect, never that a process exists or a port accepts connections.

pub mod access;
mod acl;
mod broker;
mod cluster;
mod runtime;
mod settings;
mod tools;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

pub use acl::{AclError, SCRAM_ITERATIONS, add_principal, grant, provision, revoke};
pub use broker::{
    CLIENT_LISTENER, KafkaBroker, NodePorts, UNAUTHENTICATED_LISTENER, unauthenticated_listener,
};
pub use cluster::KafkaCluster;
pub(crate) use runtime::maven_classpath;
pub use runtime::{KafkaRuntime, pinned_version};
pub use settings::{
    CONTROLLER_LISTENER, FIRST_NODE_ID, broker_settings, image_env_var, security_settings,
    single_node_image_env,
};
pub use tools::{KafkaTool, watch_args};

use crate::InfraError;

/// Replication settings for topics created on a cluster of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Copies of every partition (`default.replication.factor` and the internal topics).
    pub factor: u16,
    /// Copies that must acknowledge an `acks=all` write (`min.insync.replicas`).
    pub min_insync: u16,
}

impl Replication {
    /// RF 3 with min ISR 2 from three nodes on (one node may fail without
    /// losing acknowledged writes); everything on a single copy for one node.
    pub fn for_nodes(nodes: usize) -> Self {
        match nodes {
            0 | 1 => Replication {
                factor: 1,
                min_insync: 1,
            },
            2 => Replication {
                factor: 2,
                min_insync: 1,
            },
            _ => Replication {
                factor: 3,
                min_insync: 2,
            },
        }
    }
}

/// The ids of the brokers the cluster behind `bootstrap_servers` reports in a metadata response.
pub async fn broker_ids(
    bootstrap_servers: &str,
    timeout: Duration,
) -> Result<Vec<i32>, InfraError> {
    let bootstrap = bootstrap_servers.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = access::admin_client_config(&bootstrap)
            .set("socket.connection.setup.timeout.ms", "2000")
            .set("reconnect.backoff.max.ms", "500")
            .create()?;
        let metadata = consumer.fetch_metadata(None, timeout)?;
        let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    })
    .await?
}

/// Records of `topic` that `consumer`'s group has not committed yet: end
/// offset minus committed offset, summed over partitions (a partition without
/// a committed offset counts from its start). Reading a group's committed
/// offsets does not join the group. Blocking; the coordinator answers
/// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS for a moment after a
/// group's first commit or a broker restart, so callers retry errors.
pub fn group_lag(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<i64> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut wanted = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        wanted.add_partition(topic, partition.id());
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut lag = 0;
    for element in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(topic, element.partition(), timeout)?;
        let done = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => low,
        };
        lag += (high - done).max(0);
    }
    Ok(lag)
}

/// A new KRaft cluster id: 16 random bytes in URL-safe base64 without padding,
/// never starting with '-' (Kafka's own generator skips those, as they read like flags).
pub fn new_cluster_id() -> String {
    loop {
        let id = base64_url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_matches_the_rfc_4648_vectors_without_padding() {
        assert_eq!(base64_url(b""), "");
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(b"foo"), "Zm9v");
        assert_eq!(base64_url(b"foob"), "Zm9vYg");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        for _ in 0..100 {
            let id = new_cluster_id();
            assert_eq!(id.len(), 22);
            assert!(!id.starts_with('-'));
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn three_nodes_tolerate_one_failure() {
        assert_eq!(
            Replication::for_nodes(3),
            Replication {
                factor: 3,
                min_insync: 2
            }
        );
        assert_eq!(Replication::for_nodes(1).factor, 1);
    }
}
