//! One KRaft node: its directory, configuration, process and readiness.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    CONTROLLER_LISTENER, KafkaRuntime, Replication, broker_ids, broker_settings, security_settings,
};
use crate::InfraError;
use crate::process::{self, PidFile, Signal};
use crate::wait::{self, Probe};

/// Heap of one node: enough for development traffic, small enough for three on a laptop.
const HEAP: &str = "512m";

/// How long a node gets to finish a controlled shutdown before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How long a starting node may take to answer metadata requests.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How often readiness is probed.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// The name of a node's client listener (SASL: see [`security_settings`]).
pub const CLIENT_LISTENER: &str = "CLIENT";

/// The name of the listener without authentication that only the
/// benchmark's private broker has ([`unauthenticated_listener`]).
pub const UNAUTHENTICATED_LISTENER: &str = "UNAUTHENTICATED";

/// The properties that give a node on `node` a second client listener on
/// `port` without authentication (`PLAINTEXT`), for the benchmark alone: it
/// measures what SASL/SCRAM costs by running the same clients through both
/// listeners of one broker. Its clients are `User:ANONYMOUS`, and the
/// authorizer stays on, so they may do nothing until an ACL allows it; the
/// brokers keep talking to each other on the authenticated listener. No
/// other broker of the project has this listener.
pub fn unauthenticated_listener(node: NodePorts, port: u16) -> Vec<(String, String)> {
    let protocols: String = security_settings(&[CLIENT_LISTENER])
        .into_iter()
        .find(|(key, _)| key == "listener.security.protocol.map")
        .map(|(_, map)| map)
        .unwrap_or_default();
    vec![
        (
            "listeners".into(),
            format!(
                "{CLIENT_LISTENER}://127.0.0.1:{},{CONTROLLER_LISTENER}://127.0.0.1:{},\
                 {UNAUTHENTICATED_LISTENER}://127.0.0.1:{port}",
                node.client, node.controller
            ),
        ),
        (
            "advertised.listeners".into(),
            format!(
                "{CLIENT_LISTENER}://127.0.0.1:{},{UNAUTHENTICATED_LISTENER}://127.0.0.1:{port}",
                node.client
            ),
        ),
        (
            "listener.security.protocol.map".into(),
            format!("{protocols},{UNAUTHENTICATED_LISTENER}:PLAINTEXT"),
        ),
    ]
}

/// The two loopback ports of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodePorts {
    /// Where clients connect (the `CLIENT` listener).
    pub client: u16,
    /// Where the controllers talk to each other (the `CONTROLLER` listener).
    pub controller: u16,
}

impl NodePorts {
    /// Node i gets `base + 2i` for clients and `base + 2i + 1` for its controller
    /// (19092/19093, 19094/19095, ...).
    pub fn sequential(base: u16, nodes: usize) -> Result<Vec<NodePorts>, InfraError> {
        (0..nodes)
            .map(|i| {
                let offset = u16::try_from(2 * i).ok();
                let client = offset.and_then(|o| base.checked_add(o));
                let controller = client.and_then(|c| c.checked_add(1));
                match (client, controller) {
                    (Some(client), Some(controller)) => Ok(NodePorts { client, controller }),
                    _ => Err(InfraError::Config(format!(
                        "Kafka port {base} leaves no room for {nodes} nodes"
                    ))),
                }
            })
            .collect()
    }

    /// Ports the OS reports free right now, for private clusters in tests.
    pub fn free(nodes: usize) -> Result<Vec<NodePorts>, InfraError> {
        let ports = process::free_ports(nodes * 2)?;
        Ok(ports
            .chunks_exact(2)
            .map(|pair| NodePorts {
                client: pair[0],
                controller: pair[1],
            })
            .collect())
    }
}

/// One Kafka node, broker and controller in one JVM, started detached.
///
/// Built by [`super::KafkaCluster`], which hands each node the cluster id and
/// the controller quorum. The process outlives this value unless
/// [`KafkaBroker::kill_on_drop`] is set (private brokers in tests).
#[derive(Debug)]
pub struct KafkaBroker {
    runtime: Option<Arc<KafkaRuntime>>,
    node_id: u32,
    dir: PathBuf,
    ports: NodePorts,
    voters: String,
    cluster_id: String,
    replication: Replication,
    child: Option<Child>,
    kill_on_drop: bool,
    overrides: Vec<(String, String)>,
}

impl KafkaBroker {
    pub(crate) fn new(
        runtime: Option<Arc<KafkaRuntime>>,
        node_id: u32,
        dir: PathBuf,
        ports: NodePorts,
        voters: String,
        cluster_id: String,
        replication: Replication,
    ) -> Self {
        KafkaBroker {
            runtime,
            node_id,
            dir,
            ports,
            voters,
            cluster_id,
            replication,
            child: None,
            kill_on_drop: false,
            overrides: Vec::new(),
        }
    }

    /// Extra `server.properties` entries for this node, each replacing the
    /// default of the same name or added after them; written at the next
    /// start. For private nodes that need a setting the shared list does not
    /// have (the lab's extra listener, a quick log cleaner, a broker-only role).
    pub fn set_properties(&mut self, properties: Vec<(String, String)>) {
        self.overrides = properties;
    }

    /// Formats storage on first start, spawns the node detached and waits until
    /// a metadata request to it lists this node. Already running: only waits.
    pub async fn start(&mut self) -> Result<(), InfraError> {
        self.spawn().await?;
        self.wait_ready(START_TIMEOUT).await
    }

    /// Stops the node: SIGTERM (controlled shutdown), then SIGKILL after a grace period.
    pub async fn stop(&mut self) -> Result<(), InfraError> {
        if let Some(pid) = self.pid() {
            let what = self.what();
            let marker = self.marker();
            process::terminate(
                &what,
                pid,
                &marker,
                Signal::Term,
                STOP_GRACE,
                self.child.as_mut(),
            )
            .await?;
        }
        self.child = None;
        self.pid_file().remove()
    }

    /// SIGKILL, no shutdown at all: a crash, for fault injection.
    pub fn kill(&mut self) -> Result<(), InfraError> {
        if let Some(pid) = self.pid() {
            process::kill_now(&self.what(), pid, &self.marker(), self.child.as_mut())?;
        }
        self.child = None;
        self.pid_file().remove()
    }

    /// `127.0.0.1:<client port>`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.ports.client)
    }

    /// The node id (1-based).
    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    /// The node's ports.
    pub fn ports(&self) -> NodePorts {
        self.ports
    }

    /// The node's directory (config, data, logs, pid file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The broker's main log file.
    pub fn log_file(&self) -> PathBuf {
        self.logs_dir().join("server.log")
    }

    /// The pid of the running node, if it runs (checked against pid reuse).
    pub fn pid(&self) -> Option<u32> {
        let pid = match &self.child {
            Some(child) => child.id(),
            None => self.pid_file().read()?,
        };
        process::is_ours(pid, &self.marker()).then_some(pid)
    }

    /// When the running node was started (its pid file's time).
    pub fn started_at(&self) -> Option<SystemTime> {
        self.pid()?;
        self.pid_file().modified()
    }

    /// Makes dropping this value SIGKILL the node (for private brokers in tests).
    pub fn kill_on_drop(&mut self, yes: bool) {
        self.kill_on_drop = yes;
    }

    /// Waits until a metadata request to this node lists it.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), InfraError> {
        let bootstrap = self.bootstrap_servers();
        let node_id = i32::try_from(self.node_id).unwrap_or(i32::MAX);
        let watched = vec![self.watch()];
        wait::until(
            &self.what(),
            timeout,
            PROBE_INTERVAL,
            Some(self.log_file()),
            || {
                let bootstrap = bootstrap.clone();
                let watched = watched.clone();
                async move {
                    if let Some(failure) = exited(&watched) {
                        return Probe::Failed(failure);
                    }
                    match broker_ids(&bootstrap, Duration::from_secs(2)).await {
                        Ok(ids) if ids.contains(&node_id) => Probe::Ready(()),
                        Ok(ids) => Probe::NotYet(format!("metadata lists brokers {ids:?}")),
                        Err(e) => Probe::NotYet(format!("{e:#}")),
                    }
                }
            },
        )
        .await
    }

    /// Writes the config, formats storage if needed and spawns the JVM; true if
    /// a process was started, false if the node was already running.
    pub(crate) async fn spawn(&mut self) -> Result<bool, InfraError> {
        if self.pid().is_some() {
            return Ok(false);
        }
        let runtime = self.runtime.clone().ok_or_else(|| {
            InfraError::Config(format!(
                "{} was opened for inspection only and cannot be started",
                self.what()
            ))
        })?;
        process::ensure_port_free(
            self.ports.client,
            "the Kafka client listener",
            Some("INFRA_KAFKA_PORT"),
        )?;
        process::ensure_port_free(
            self.ports.controller,
            "the Kafka controller listener",
            Some("INFRA_KAFKA_PORT"),
        )?;
        for dir in [self.dir.clone(), self.data_dir(), self.logs_dir()] {
            fs::create_dir_all(&dir).map_err(|e| InfraError::io("create directory", &dir, e))?;
        }
        let config = self.config_file();
        fs::write(&config, self.server_properties())
            .map_err(|e| InfraError::io("write", &config, e))?;
        if !self.data_dir().join("meta.properties").exists() {
            self.format(&runtime).await?;
        }

        let stdout_path = self.logs_dir().join("stdout.log");
        let (stdout, stderr) = process::append_log(&stdout_path)?;
        let error_file = format!(
            "-XX:ErrorFile={}",
            self.logs_dir().join("hs_err_pid%p.log").display()
        );
        let jvm_args = [
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            error_file.as_str(),
        ];
        let mut command = runtime.java_command(HEAP, &self.logs_dir(), jvm_args, "kafka.Kafka");
        command
            .arg(&config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        process::detach(&mut command);
        let child = command.spawn().map_err(|e| InfraError::Spawn {
            program: runtime.java().display().to_string(),
            source: e,
        })?;
        self.pid_file().write(child.id())?;
        self.child = Some(child);
        Ok(true)
    }

    /// Runs `kafka.tools.StorageTool format` with the cluster id (first start only).
    async fn format(&self, runtime: &KafkaRuntime) -> Result<(), InfraError> {
        let no_jvm_args: [&str; 0] = [];
        let mut command = runtime.java_command(
            "256m",
            &self.logs_dir(),
            no_jvm_args,
            "kafka.tools.StorageTool",
        );
        command
            .args(["format", "-t", &self.cluster_id, "-c"])
            .arg(self.config_file())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            // Own process group: a Ctrl-C must not leave storage half-formatted.
            .process_group(0);
        let output = tokio::process::Command::from(command)
            .output()
            .await
            .map_err(|e| InfraError::Spawn {
                program: "kafka.tools.StorageTool".into(),
                source: e,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(InfraError::CommandFailed {
                command: format!("kafka.tools.StorageTool format (node {})", self.node_id),
                status: output.status.to_string(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    /// The node's `server.properties`: its identity, listeners and the shared
    /// [`broker_settings`], then [`Self::set_properties`]' entries.
    fn server_properties(&self) -> String {
        let mut properties: Vec<(String, String)> = vec![
            ("process.roles".into(), "broker,controller".into()),
            ("node.id".into(), self.node_id.to_string()),
            ("controller.quorum.voters".into(), self.voters.clone()),
            (
                "listeners".into(),
                format!(
                    "{CLIENT_LISTENER}://127.0.0.1:{},{CONTROLLER_LISTENER}://127.0.0.1:{}",
                    self.ports.client, self.ports.controller
                ),
            ),
            ("advertised.listeners".into(), self.advertised_listener()),
            (
                "controller.listener.names".into(),
                CONTROLLER_LISTENER.into(),
            ),
            ("log.dirs".into(), self.data_dir().display().to_string()),
        ];
        properties.extend(security_settings(&[CLIENT_LISTENER]));
        properties.extend(
            broker_settings(self.replication)
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value)),
        );
        for (key, value) in &self.overrides {
            match properties.iter_mut().find(|(k, _)| k == key) {
                Some(entry) => entry.1.clone_from(value),
                None => properties.push((key.clone(), value.clone())),
            }
        }
        let mut p = String::new();
        for (key, value) in properties {
            let _ = writeln!(p, "{key}={value}");
        }
        p
    }

    fn advertised_listener(&self) -> String {
        format!("{CLIENT_LISTENER}://127.0.0.1:{}", self.ports.client)
    }

    fn what(&self) -> String {
        format!("Kafka node {}", self.node_id)
    }

    /// The path on the JVM's command line that proves a pid is this node.
    fn marker(&self) -> PathBuf {
        self.config_file()
    }

    pub(crate) fn watch(&self) -> Watched {
        Watched {
            what: self.what(),
            pid: self.pid(),
            marker: self.marker(),
            log: self.logs_dir().join("stdout.log"),
            server_log: self.log_file(),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn pid_file(&self) -> PidFile {
        PidFile::new(self.dir.join("kafka.pid"))
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if self.kill_on_drop {
            // Best effort: a test that failed half-way must not leave a JVM behind.
            let _ = self.kill();
        }
    }
}

/// What a readiness probe needs to notice that a node died while starting.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    what: String,
    pid: Option<u32>,
    marker: PathBuf,
    log: PathBuf,
    server_log: PathBuf,
}

/// The first watched node whose process is gone, as an error pointing at its logs.
pub(crate) fn exited(watched: &[Watched]) -> Option<InfraError> {
    watched.iter().find_map(|w| {
        let pid = w.pid?;
        if process::is_ours(pid, &w.marker) {
            return None;
        }
        // A JVM that failed early writes to stdout; a broker that failed later, to server.log.
        let log = if fs::metadata(&w.log).map(|m| m.len() > 0).unwrap_or(false) {
            w.log.clone()
        } else {
            w.server_log.clone()
        };
        Some(InfraError::Exited {
            what: w.what.clone(),
            status: format!("pid {pid} is gone"),
            log,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::FIRST_NODE_ID;

    fn node(ports: NodePorts, voters: &str, replication: Replication) -> KafkaBroker {
        KafkaBroker::new(
            None,
            2,
            PathBuf::from("/infra/kafka/node-2"),
            ports,
            voters.into(),
            "AAAAAAAAAAAAAAAAAAAAAA".into(),
            replication,
        )
    }

    #[test]
    fn sequential_ports_pair_client_and_controller() {
        let ports = NodePorts::sequential(19092, 3).expect("ports");
        assert_eq!(
            ports,
            vec![
                NodePorts {
                    client: 19092,
                    controller: 19093
                },
                NodePorts {
                    client: 19094,
                    controller: 19095
                },
                NodePorts {
                    client: 19096,
                    controller: 19097
                },
            ]
        );
        assert!(NodePorts::sequential(65534, 2).is_err());
    }

    #[test]
    fn server_properties_hold_the_quorum_listeners_and_replication() {
        let ports = NodePorts {
            client: 19094,
            controller: 19095,
        };
        let voters = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097";
        let props = node(ports, voters, Replication::for_nodes(3)).server_properties();
        for expected in [
            "process.roles=broker,controller",
            "node.id=2",
            "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097",
            "listeners=CLIENT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095",
            "advertised.listeners=CLIENT://127.0.0.1:19094",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name=CLIENT",
            "allow.everyone.if.no.acl.found=false",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "log.dirs=/infra/kafka/node-2/data",
            "auto.create.topics.enable=false",
            "default.replication.factor=3",
            "min.insync.replicas=2",
            "offsets.topic.replication.factor=3",
            "transaction.state.log.replication.factor=3",
            "transaction.state.log.min.isr=2",
            "group.initial.rebalance.delay.ms=0",
        ] {
            assert!(
                props.lines().any(|l| l == expected),
                "missing {expected}:\n{props}"
            );
        }
    }

    #[test]
    fn a_single_node_runs_the_settings_compose_and_the_test_container_get() {
        let ports = NodePorts {
            client: 19092,
            controller: 19093,
        };
        let mut single = node(ports, "1@127.0.0.1:19093", Replication::for_nodes(1));
        single.node_id = FIRST_NODE_ID;
        let props = single.server_properties();
        let expected = std::iter::once(("node.id", FIRST_NODE_ID.to_string()))
            .chain(broker_settings(Replication::for_nodes(1)));
        for (key, value) in expected {
            let line = format!("{key}={value}");
            assert!(props.lines().any(|l| l == line), "missing {line}:\n{props}");
        }
    }

    #[test]
    fn set_properties_replace_defaults_and_add_new_entries() {
        let ports = NodePorts {
            client: 19094,
            controller: 19095,
        };
        let mut broker = node(ports, "1@127.0.0.1:19093", Replication::for_nodes(3));
        broker.set_properties(vec![
            ("process.roles".into(), "broker".into()),
            ("log.cleaner.backoff.ms".into(), "500".into()),
        ]);
        let props = broker.server_properties();
        let lines: Vec<&str> = props.lines().collect();
        assert!(lines.contains(&"process.roles=broker"), "{props}");
        assert!(
            !lines.contains(&"process.roles=broker,controller"),
            "{props}"
        );
        assert_eq!(lines.last(), Some(&"log.cleaner.backoff.ms=500"));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("process.roles="))
                .count(),
            1
        );
    }

    #[test]
    fn only_a_node_given_it_has_the_unauthenticated_listener() {
        let ports = NodePorts {
            client: 19094,
            controller: 19095,
        };
        let mut broker = node(ports, "1@127.0.0.1:19093", Replication::for_nodes(1));
        assert!(
            !broker
                .server_properties()
                .contains(UNAUTHENTICATED_LISTENER),
            "a node has no unauthenticated listener unless it is given one"
        );
        broker.set_properties(unauthenticated_listener(ports, 19099));
        let props = broker.server_properties();
        for expected in [
            "listeners=CLIENT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095,UNAUTHENTICATED://127.0.0.1:19099",
            "advertised.listeners=CLIENT://127.0.0.1:19094,UNAUTHENTICATED://127.0.0.1:19099",
            "listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT,UNAUTHENTICATED:PLAINTEXT",
            // The brokers keep talking on SASL; ANONYMOUS gets no blanket allowance.
            "inter.broker.listener.name=CLIENT",
            "allow.everyone.if.no.acl.found=false",
        ] {
            assert!(
                props.lines().any(|l| l == expected),
                "missing {expected}:\n{props}"
            );
        }
        assert!(!props.contains("ANONYMOUS"), "{props}");
    }

    #[tokio::test]
    async fn a_broker_without_a_runtime_refuses_to_start() {
        let mut broker = node(
            NodePorts {
                client: 1,
                controller: 2,
            },
            "2@127.0.0.1:2",
            Replication::for_nodes(1),
        );
        let err = broker.spawn().await.expect_err("no runtime");
        assert!(err.to_string().contains("inspection only"), "{err}");
    }
}
