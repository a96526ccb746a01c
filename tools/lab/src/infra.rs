//! The lab's own infrastructure: brokers and a PostgreSQL on free ports, in
//! a directory of the run, started when a scenario first needs them and
//! killed when the run is dropped (Ctrl-C) or stopped.
//!
//! - **One node** (broker and controller) for every scenario but replication,
//!   with a few broker settings of its own: retention checked every second
//!   and from the start, the log cleaner looking for work every half second
//!   (scenarios 9 and 10 wait for those), and a second listener whose
//!   advertised address is the `AckDroppingProxy` (scenario 6).
//! - **Three nodes** for replication and acks: three brokers, the controller quorum on
//!   node 1 only (as production runs controllers apart from brokers), so
//!   killing brokers 2 and 3 takes away replicas but never the cluster's
//!   ability to change its metadata. A broker that stops heartbeating is
//!   fenced after 4 s (Kafka's default is 9 s).
//! - **PostgreSQL** for the scenarios that count effects: one database per
//!   scenario, on the superuser.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use devinfra::kafka::{
    CLIENT_LISTENER, CONTROLLER_LISTENER, KafkaCluster, KafkaRuntime, NodePorts, security_settings,
};
use devinfra::postgres::{Postgres, quote_ident, quote_literal, with_database};
use devinfra::process;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};

use crate::error::{LabError, Step};
use crate::fault_proxy::AckDroppingProxy;

/// The single node's listener behind the proxy.
const PROXIED_LISTENER: &str = "PROXIED";

/// How long a broker of the three-node cluster may stay silent before the
/// controller fences it (and takes it out of every ISR).
pub(crate) const FENCE_AFTER_MS: u32 = 4_000;

/// The single node and the proxy in front of its second listener.
#[derive(Debug)]
pub(crate) struct SingleNode {
    cluster: KafkaCluster,
    proxy: AckDroppingProxy,
}

impl SingleNode {
    /// The broker's own address.
    pub(crate) fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// The address that reaches the broker through the proxy, for everything.
    pub(crate) fn proxied_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.proxy.port())
    }

    /// The fault-injecting proxy.
    pub(crate) fn proxy(&self) -> &AckDroppingProxy {
        &self.proxy
    }
}

/// Everything the lab has started, and what it needs to start more.
pub(crate) struct LabInfra {
    runtime: Arc<KafkaRuntime>,
    dir: PathBuf,
    single: Option<SingleNode>,
    three: Option<KafkaCluster>,
    postgres: Option<Postgres>,
}

impl LabInfra {
    /// Nothing started yet; everything will live under `dir`.
    pub(crate) fn new(runtime: Arc<KafkaRuntime>, dir: &Path) -> Self {
        LabInfra {
            runtime,
            dir: dir.to_path_buf(),
            single: None,
            three: None,
            postgres: None,
        }
    }

    /// Starts what `single`, `three` and `postgres` ask for and is not running, at once.
    pub(crate) async fn ensure(
        &mut self,
        single: bool,
        three: bool,
        postgres: bool,
    ) -> Result<(), LabError> {
        let start_single = async {
            if single && self.single.is_none() {
                eprintln!("lab: starting a Kafka node in {}", self.dir.display());
                return start_single(self.runtime.clone(), &self.dir.join("kafka-1"))
                    .await
                    .map(Some);
            }
            Ok(None)
        };
        let start_three = async {
            if three && self.three.is_none() {
                eprintln!("lab: starting three Kafka nodes in {}", self.dir.display());
                return start_three(self.runtime.clone(), &self.dir.join("kafka-3"))
                    .await
                    .map(Some);
            }
            Ok(None)
        };
        let start_postgres = async {
            if postgres && self.postgres.is_none() {
                eprintln!("lab: starting PostgreSQL in {}", self.dir.display());
                let mut server = Postgres::new(self.dir.join("postgres"), process::free_port()?);
                server.kill_on_drop(true);
                server.start().await?;
                return Ok::<_, LabError>(Some(server));
            }
            Ok(None)
        };
        let (single, three, postgres) = tokio::join!(start_single, start_three, start_postgres);
        // Keep whatever started, so that stopping the lab stops it even when
        // another part failed.
        let mut failure = None;
        match single {
            Ok(started) => self.single = self.single.take().or(started),
            Err(e) => failure = Some(e),
        }
        match three {
            Ok(started) => self.three = self.three.take().or(started),
            Err(e) => failure = failure.or(Some(e)),
        }
        match postgres {
            Ok(started) => self.postgres = self.postgres.take().or(started),
            Err(e) => failure = failure.or(Some(e)),
        }
        failure.map_or(Ok(()), Err)
    }

    /// The single node (started by [`Self::ensure`]).
    pub(crate) fn single(&self) -> Result<&SingleNode, LabError> {
        self.single
            .as_ref()
            .ok_or_else(|| not_started("the single Kafka node"))
    }

    /// The three-node cluster (started by [`Self::ensure`]).
    pub(crate) fn three(&mut self) -> Result<&mut KafkaCluster, LabError> {
        self.three
            .as_mut()
            .ok_or_else(|| not_started("the three-node Kafka cluster"))
    }

    /// A new empty database `name` with `settings` as its sessions'
    /// defaults, and a superuser pool on it.
    pub(crate) async fn database(
        &self,
        name: &str,
        settings: &[(&str, &str)],
    ) -> Result<PgPool, LabError> {
        let server = self
            .postgres
            .as_ref()
            .ok_or_else(|| not_started("PostgreSQL"))?;
        let step = format!("creating database {name}");
        let mut admin = PgConnection::connect(&server.admin_url())
            .await
            .step(&step)?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote_ident(name)
        )))
        .execute(&mut admin)
        .await
        .step(&step)?;
        for (setting, value) in settings {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER DATABASE {} SET {setting} = {}",
                quote_ident(name),
                quote_literal(value)
            )))
            .execute(&mut admin)
            .await
            .step(&step)?;
        }
        admin.close().await.step(&step)?;
        PgPoolOptions::new()
            .max_connections(8)
            .connect(&with_database(&server.admin_url(), name))
            .await
            .step(format!("connecting to database {name}"))
    }

    /// Stops everything that was started: Kafka with a controlled shutdown,
    /// PostgreSQL with a fast one. Reports but does not fail on problems.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut three) = self.three.take()
            && let Err(e) = three.stop().await
        {
            eprintln!("lab: stopping the three-node cluster: {e}");
        }
        if let Some(mut single) = self.single.take()
            && let Err(e) = single.cluster.stop().await
        {
            eprintln!("lab: stopping the Kafka node: {e}");
        }
        if let Some(mut postgres) = self.postgres.take()
            && let Err(e) = postgres.stop().await
        {
            eprintln!("lab: stopping PostgreSQL: {e}");
        }
    }
}

fn not_started(what: &str) -> LabError {
    LabError::Infra(devinfra::InfraError::Config(format!(
        "{what} of the lab was not started"
    )))
}

/// One node with the lab's broker settings and a second listener behind the proxy.
async fn start_single(runtime: Arc<KafkaRuntime>, dir: &Path) -> Result<SingleNode, LabError> {
    let ports = NodePorts::free(1)?;
    let [proxied, proxy_port] = <[u16; 2]>::try_from(process::free_ports(2)?)
        .map_err(|_| not_started("a port for the proxy"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", proxy_port))
        .await
        .map_err(|source| LabError::Proxy {
            step: format!("binding 127.0.0.1:{proxy_port}"),
            source,
        })?;
    let broker = SocketAddr::from(([127, 0, 0, 1], proxied));
    let proxy = AckDroppingProxy::start(listener, broker)?;
    let mut cluster = KafkaCluster::new(runtime, dir, ports.clone())?.kill_on_drop(true);
    let node = ports[0];
    let mut properties = vec![
        (
            "listeners".to_owned(),
            format!(
                "{CLIENT_LISTENER}://127.0.0.1:{},{CONTROLLER_LISTENER}://127.0.0.1:{},{PROXIED_LISTENER}://127.0.0.1:{proxied}",
                node.client, node.controller
            ),
        ),
        (
            "advertised.listeners".to_owned(),
            format!(
                "{CLIENT_LISTENER}://127.0.0.1:{},{PROXIED_LISTENER}://127.0.0.1:{}",
                node.client,
                proxy.port()
            ),
        ),
    ];
    // The proxied listener authenticates like the client listener.
    properties.extend(security_settings(&[CLIENT_LISTENER, PROXIED_LISTENER]));
    let tuning = vec![
        // Scenario 9: retention is checked every second, from the start
        // (Kafka: every 5 minutes, the first time 30 s after start-up).
        ("log.retention.check.interval.ms", "1000".into()),
        ("log.initial.task.delay.ms", "1000".into()),
        // Scenario 10: the cleaner looks for dirty logs every 500 ms (Kafka: 15 s).
        ("log.cleaner.backoff.ms", "500".into()),
    ];
    properties.extend(owned(tuning));
    if let Some(broker) = cluster.broker_mut(devinfra::kafka::FIRST_NODE_ID) {
        broker.set_properties(properties);
    }
    cluster.start().await?;
    Ok(SingleNode { cluster, proxy })
}

/// Three brokers; the controller quorum on node 1 alone.
async fn start_three(runtime: Arc<KafkaRuntime>, dir: &Path) -> Result<KafkaCluster, LabError> {
    let ports = NodePorts::free(3)?;
    let mut cluster = KafkaCluster::new(runtime, dir, ports.clone())?.kill_on_drop(true);
    let voters = format!("1@127.0.0.1:{}", ports[0].controller);
    for (node_ports, id) in ports.iter().zip(devinfra::kafka::FIRST_NODE_ID..) {
        let mut properties = vec![
            ("controller.quorum.voters", voters.clone()),
            ("broker.session.timeout.ms", FENCE_AFTER_MS.to_string()),
            ("broker.heartbeat.interval.ms", "500".into()),
        ];
        if id != devinfra::kafka::FIRST_NODE_ID {
            properties.push(("process.roles", "broker".into()));
            properties.push((
                "listeners",
                format!("{CLIENT_LISTENER}://127.0.0.1:{}", node_ports.client),
            ));
        }
        if let Some(broker) = cluster.broker_mut(id) {
            broker.set_properties(owned(properties));
        }
    }
    cluster.start().await?;
    Ok(cluster)
}

fn owned(properties: Vec<(&str, String)>) -> Vec<(String, String)> {
    properties
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}
