//! Several KRaft nodes with a static controller quorum, started and stopped together.
//!
//! The cluster directory holds `cluster.json` (the cluster id and each node's
//! ports) and one `node-<id>` directory per node. The cluster id is chosen once
//! and reused, because every node's storage is formatted with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use serde::{Deserialize, Serialize};

use super::broker::{self, KafkaBroker, NodePorts, PROBE_INTERVAL, START_TIMEOUT};
use super::{FIRST_NODE_ID, KafkaRuntime, Replication, broker_ids, new_cluster_id};
use crate::wait::{self, Probe};
use crate::{InfraError, Startup};

/// What `cluster.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Topology {
    cluster_id: String,
    nodes: Vec<NodePorts>,
}

/// One to three Kafka nodes, each broker and controller, forming one cluster.
#[derive(Debug)]
pub struct KafkaCluster {
    dir: PathBuf,
    cluster_id: String,
    brokers: Vec<KafkaBroker>,
}

impl KafkaCluster {
    /// A cluster in `dir` with one node per entry of `ports`, ready to [`start`](Self::start).
    ///
    /// An existing cluster in `dir` keeps its id; it must have the same number
    /// of nodes, and nodes that are running must be asked for on the ports they run on.
    pub fn new(
        runtime: Arc<KafkaRuntime>,
        dir: impl Into<PathBuf>,
        ports: Vec<NodePorts>,
    ) -> Result<Self, InfraError> {
        let dir = dir.into();
        if ports.is_empty() {
            return Err(InfraError::Config(
                "a Kafka cluster needs at least one node".into(),
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| InfraError::io("create directory", &dir, e))?;
        let cluster_id = match read_topology(&dir)? {
            None => new_cluster_id(),
            Some(recorded) if recorded.nodes.len() != ports.len() => {
                return Err(InfraError::Config(format!(
                    "the Kafka cluster in {} was set up with {} node(s), not {}; stop it \
                     (`cargo xtask infra down`) and delete that directory to switch",
                    dir.display(),
                    recorded.nodes.len(),
                    ports.len()
                )));
            }
            Some(recorded) => {
                let running = Self::build(None, &dir, &recorded);
                for (broker, wanted) in running.brokers.iter().zip(&ports) {
                    if broker.pid().is_some() && broker.ports() != *wanted {
                        return Err(InfraError::Config(format!(
                            "Kafka node {} runs on port {}, not {}; stop it first \
                             (`cargo xtask infra down`) to change ports",
                            broker.node_id(),
                            broker.ports().client,
                            wanted.client
                        )));
                    }
                }
                recorded.cluster_id
            }
        };
        let topology = Topology {
            cluster_id,
            nodes: ports,
        };
        Ok(Self::build(Some(runtime), &dir, &topology))
    }

    /// The cluster recorded in `dir`, for status and stopping (it cannot be started);
    /// `None` if no cluster was ever started there.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Option<Self>, InfraError> {
        let dir = dir.into();
        Ok(read_topology(&dir)?.map(|topology| Self::build(None, &dir, &topology)))
    }

    fn build(runtime: Option<Arc<KafkaRuntime>>, dir: &Path, topology: &Topology) -> Self {
        let voters = topology
            .nodes
            .iter()
            .zip(FIRST_NODE_ID..)
            .map(|(ports, id)| format!("{id}@127.0.0.1:{}", ports.controller))
            .collect::<Vec<_>>()
            .join(",");
        let replication = Replication::for_nodes(topology.nodes.len());
        let brokers = topology
            .nodes
            .iter()
            .zip(FIRST_NODE_ID..)
            .map(|(ports, id)| {
                KafkaBroker::new(
                    runtime.clone(),
                    id,
                    dir.join(format!("node-{id}")),
                    *ports,
                    voters.clone(),
                    topology.cluster_id.clone(),
                    replication,
                )
            })
            .collect();
        KafkaCluster {
            dir: dir.to_path_buf(),
            cluster_id: topology.cluster_id.clone(),
            brokers,
        }
    }

    /// Creates the flow's topics, SCRAM principals and ACLs on this running
    /// cluster ([`super::access`]); idempotent, so every start does it.
    pub async fn provision(&self) -> Result<(), InfraError> {
        let replication = Replication::for_nodes(self.brokers.len());
        super::provision(
            &self.bootstrap_servers(),
            &super::access::Scope::flow(),
            shared_events::topics::ORDERS_PARTITIONS,
            i32::from(replication.factor),
        )
        .await?;
        Ok(())
    }

    /// Starts every node that is not running (formatting storage on first start)
    /// and waits until a metadata request lists all of them.
    pub async fn start(&mut self) -> Result<Startup, InfraError> {
        self.write_topology()?;
        let spawned = join_all(self.brokers.iter_mut().map(KafkaBroker::spawn)).await;
        let mut started_any = false;
        for result in spawned {
            started_any |= result?;
        }
        self.wait_ready(START_TIMEOUT).await?;
        Ok(if started_any {
            Startup::Started
        } else {
            Startup::AlreadyRunning
        })
    }

    /// Stops all nodes at once (stopping them one by one can leave the last
    /// ones waiting for a controller quorum that is already gone).
    pub async fn stop(&mut self) -> Result<(), InfraError> {
        let results = join_all(self.brokers.iter_mut().map(KafkaBroker::stop)).await;
        results.into_iter().collect()
    }

    /// Waits until a metadata request lists every node of the cluster.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), InfraError> {
        let bootstrap = self.bootstrap_servers();
        let mut expected: Vec<i32> = self
            .brokers
            .iter()
            .map(|b| i32::try_from(b.node_id()).unwrap_or(i32::MAX))
            .collect();
        expected.sort_unstable();
        let watched: Vec<_> = self.brokers.iter().map(KafkaBroker::watch).collect();
        let log = self.brokers.first().map(KafkaBroker::log_file);
        let what = format!("Kafka ({} node(s))", self.brokers.len());
        wait::until(&what, timeout, PROBE_INTERVAL, log, || {
            let bootstrap = bootstrap.clone();
            let expected = expected.clone();
            let watched = watched.clone();
            async move {
                if let Some(failure) = broker::exited(&watched) {
                    return Probe::Failed(failure);
                }
                match broker_ids(&bootstrap, Duration::from_secs(2)).await {
                    Ok(ids) if expected.iter().all(|id| ids.contains(id)) => Probe::Ready(()),
                    Ok(ids) => Probe::NotYet(format!(
                        "metadata lists brokers {ids:?}, waiting for {expected:?}"
                    )),
                    Err(e) => Probe::NotYet(format!("{e:#}")),
                }
            }
        })
        .await
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers
            .iter()
            .map(KafkaBroker::bootstrap_servers)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes, in node id order.
    pub fn brokers(&self) -> &[KafkaBroker] {
        &self.brokers
    }

    /// The node with this id (1-based), to stop, kill or restart it alone.
    pub fn broker_mut(&mut self, node_id: u32) -> Option<&mut KafkaBroker> {
        self.brokers.iter_mut().find(|b| b.node_id() == node_id)
    }

    /// The replication settings new topics get.
    pub fn replication(&self) -> Replication {
        Replication::for_nodes(self.brokers.len())
    }

    /// The KRaft cluster id every node's storage was formatted with.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes dropping the cluster SIGKILL its nodes (private clusters in tests).
    pub fn kill_on_drop(mut self, yes: bool) -> Self {
        for broker in &mut self.brokers {
            broker.kill_on_drop(yes);
        }
        self
    }

    fn write_topology(&self) -> Result<(), InfraError> {
        let topology = Topology {
            cluster_id: self.cluster_id.clone(),
            nodes: self.brokers.iter().map(KafkaBroker::ports).collect(),
        };
        let path = topology_file(&self.dir);
        let json = serde_json::to_string_pretty(&topology)
            .map_err(|e| InfraError::Config(format!("cannot encode {}: {e}", path.display())))?;
        fs::write(&path, json + "\n").map_err(|e| InfraError::io("write", &path, e))
    }
}

fn topology_file(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn read_topology(dir: &Path) -> Result<Option<Topology>, InfraError> {
    let path = topology_file(dir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InfraError::io("read", &path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        InfraError::Config(format!(
            "{} is damaged ({e}); delete {} to start afresh",
            path.display(),
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("xtask-cluster-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn nodes_share_one_static_quorum_and_cluster_id() {
        let dir = temp_dir();
        let topology = Topology {
            cluster_id: "q1VuGJm0R5WYCzsbPXH3dQ".into(),
            nodes: NodePorts::sequential(19092, 3).expect("ports"),
        };
        let cluster = KafkaCluster::build(None, &dir, &topology);
        assert_eq!(cluster.brokers().len(), 3);
        assert_eq!(
            cluster.bootstrap_servers(),
            "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
        );
        assert_eq!(cluster.brokers()[2].dir(), dir.join("node-3"));
        assert_eq!(cluster.replication().factor, 3);
    }

    #[test]
    fn a_recorded_cluster_cannot_change_its_node_count() {
        let dir = temp_dir();
        fs::create_dir_all(&dir).expect("dir");
        let topology = Topology {
            cluster_id: "q1VuGJm0R5WYCzsbPXH3dQ".into(),
            nodes: NodePorts::sequential(19092, 1).expect("ports"),
        };
        KafkaCluster::build(None, &dir, &topology)
            .write_topology()
            .expect("write");
        let opened = KafkaCluster::open(&dir).expect("open").expect("recorded");
        assert_eq!(opened.cluster_id(), "q1VuGJm0R5WYCzsbPXH3dQ");

        let runtime = Arc::new(KafkaRuntime::for_tests());
        let err = KafkaCluster::new(
            runtime,
            &dir,
            NodePorts::sequential(19092, 3).expect("ports"),
        )
        .expect_err("node count differs");
        assert!(err.to_string().contains("1 node(s), not 3"), "{err}");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn no_recorded_cluster_opens_as_none() {
        assert!(KafkaCluster::open(temp_dir()).expect("open").is_none());
    }
}
