//! The private infrastructure one chaos or benchmark run owns: a Kafka
//! cluster, a PostgreSQL with commit timestamps on, and the three services, on
//! free ports in a directory of its own, so a developer's `cargo xtask up`
//! stack is never measured, disturbed or killed by mistake, and every fault
//! lands only on processes the run started.
//!
//! PostgreSQL runs with `track_commit_timestamp = on`: every row's commit time
//! is then `pg_xact_commit_timestamp(xmin)`, the exact moment its transaction
//! committed, on the one clock of the one server that holds all three
//! databases. That is what the benchmark's end-to-end latencies and the chaos
//! run's recovery times are measured between, without changing any service's schema.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use platform::services::{self, INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};

use crate::InfraError;
use crate::infra::Settings;
use crate::kafka::{KafkaCluster, KafkaRuntime, NodePorts, unauthenticated_listener};
use crate::postgres::{Postgres, with_database};
use crate::process;
use crate::stack::{
    Launch, Profile, Service, ServicePorts, ServiceProcess, Stack, StackError, instance_name,
};

/// How long a restart waits for a killed instance's port to be released.
const PORT_RELEASE: Duration = Duration::from_secs(15);

/// What a private run starts: how many Kafka nodes, and how the services are built and run.
#[derive(Debug, Clone, Default)]
pub struct PrivatePlan {
    /// Kafka nodes (1, or 3 for replication).
    pub nodes: usize,
    /// Debug or release binaries.
    pub profile: Profile,
    /// Cargo features the services are built with (`package/feature`).
    pub features: Vec<String>,
    /// Settings added to every service's environment (the tuning knobs).
    pub knobs: Vec<(String, String)>,
}

/// Kafka, PostgreSQL and the services of one chaos or benchmark run.
#[derive(Debug)]
pub struct PrivateInfra {
    dir: PathBuf,
    /// The run's Kafka cluster.
    pub cluster: KafkaCluster,
    /// The run's PostgreSQL (commit timestamps on).
    pub postgres: Postgres,
    /// Where the services connect.
    pub settings: Settings,
    /// The run's services.
    pub stack: Stack,
    /// Superuser pools on each database.
    pub pools: Pools,
    /// Settings added to every service's environment (the tuning knobs).
    knobs: Vec<(String, String)>,
    unauthenticated_bootstrap: Option<String>,
    stopped: bool,
}

/// Superuser connections to each service's database (the superuser may read
/// commit timestamps, and connect where PUBLIC may not) and to `postgres`.
#[derive(Debug, Clone)]
pub struct Pools {
    /// order-service's database.
    pub orders: PgPool,
    /// invoicing-service's database.
    pub invoicing: PgPool,
    /// shipping-service's database.
    pub shipping: PgPool,
    /// The `postgres` database (server-wide views such as `pg_stat_activity`).
    pub admin: PgPool,
}

impl PrivateInfra {
    /// Starts `plan.nodes` Kafka nodes and PostgreSQL in `dir`, then the
    /// services (built with the plan's profile and features, every instance
    /// with its knobs in its environment), and returns once every service is ready.
    pub async fn start(
        runtime: Arc<KafkaRuntime>,
        dir: &Path,
        plan: PrivatePlan,
    ) -> Result<Self, StackError> {
        Self::start_with(runtime, dir, plan, false).await
    }

    /// [`Self::start`], with every Kafka node given a second client listener
    /// without authentication ([`crate::kafka::unauthenticated_listener`],
    /// its addresses in [`Self::unauthenticated_bootstrap`]): what the
    /// benchmark measures the cost of SCRAM against, and nothing else uses.
    /// Its clients may do nothing until the run grants `User:ANONYMOUS` ACLs.
    pub async fn start_with_unauthenticated_listener(
        runtime: Arc<KafkaRuntime>,
        dir: &Path,
        plan: PrivatePlan,
    ) -> Result<Self, StackError> {
        Self::start_with(runtime, dir, plan, true).await
    }

    async fn start_with(
        runtime: Arc<KafkaRuntime>,
        dir: &Path,
        plan: PrivatePlan,
        unauthenticated_listener: bool,
    ) -> Result<Self, StackError> {
        let PrivatePlan {
            nodes,
            profile,
            features,
            knobs,
        } = plan;
        let mut cluster = KafkaCluster::new(runtime, dir.join("kafka"), NodePorts::free(nodes)?)?
            .kill_on_drop(true);
        let unauthenticated_bootstrap = if unauthenticated_listener {
            Some(add_unauthenticated_listeners(&mut cluster)?)
        } else {
            None
        };
        let mut postgres = Postgres::new(dir.join("postgres"), process::free_port()?);
        postgres.kill_on_drop(true);
        let (kafka, pg) = tokio::join!(cluster.start(), start_postgres(&mut postgres));
        kafka?;
        pg?;
        cluster.provision().await?;
        let settings = Settings {
            kafka_bootstrap_servers: cluster.bootstrap_servers(),
            postgres_admin_url: postgres.admin_url(),
            service_database_urls: postgres.service_database_urls(),
        };
        let ports = ServicePorts::free()?;
        let stack = Stack::in_dir(dir.join("services"), &settings, ports)
            .with_profile(profile)
            .with_features(features);
        stack.build().await?;
        let pools = Pools::connect(&settings).await?;
        let mut infra = PrivateInfra {
            dir: dir.to_path_buf(),
            cluster,
            postgres,
            settings,
            stack,
            pools,
            knobs,
            unauthenticated_bootstrap,
            stopped: false,
        };
        let started = futures::future::join_all(
            services::ALL
                .iter()
                .map(|service| infra.launch(*service, Vec::new())),
        )
        .await;
        if let Err(e) = started.into_iter().collect::<Result<Vec<_>, _>>() {
            infra.stop().await;
            return Err(e);
        }
        Ok(infra)
    }

    /// Where the logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The base URL of `service`'s first instance.
    pub fn url(&self, service: Service) -> String {
        self.stack.base_url(service)
    }

    /// Starts the first instance of `service` with the knobs and then `extra`
    /// in its environment (later entries win).
    pub async fn launch(
        &self,
        service: Service,
        extra: Vec<(String, String)>,
    ) -> Result<ServiceProcess, StackError> {
        let mut env = self.knobs.clone();
        env.extend(extra);
        let port = self.stack.ports().port(service);
        // After a kill the port can stay taken for a moment (see wait_port_free);
        // if it stays taken longer, the launch says by whom.
        process::wait_port_free(port, PORT_RELEASE).await;
        self.stack
            .launch(Launch {
                service,
                name: instance_name(service, 1),
                port: Some(port),
                env,
            })
            .await
    }

    /// The running first instance of `service`.
    pub fn instance(&self, service: Service) -> Result<ServiceProcess, StackError> {
        self.stack
            .find(service, 1)?
            .ok_or_else(|| StackError::config(format!("{service} is not running")))
    }

    /// The nodes' listeners without authentication, when started with
    /// [`Self::start_with_unauthenticated_listener`] (comma-separated, like
    /// `KAFKA_BOOTSTRAP_SERVERS`).
    pub fn unauthenticated_bootstrap(&self) -> Option<&str> {
        self.unauthenticated_bootstrap.as_deref()
    }

    /// The knobs every service was started with.
    pub fn knobs(&self) -> &[(String, String)] {
        &self.knobs
    }

    /// Stops the services (draining), then Kafka and PostgreSQL; reports but
    /// does not fail on problems, so it can run after an error too.
    pub async fn stop(&mut self) {
        self.stopped = true;
        self.pools.close().await;
        if let Err(e) = self.stack.stop_all().await {
            eprintln!("xtask: stopping the services: {e}");
        }
        if let Err(e) = self.cluster.stop().await {
            eprintln!("xtask: stopping Kafka: {e}");
        }
        if let Err(e) = self.postgres.stop().await {
            eprintln!("xtask: stopping PostgreSQL: {e}");
        }
    }
}

impl Drop for PrivateInfra {
    /// A run dropped half-way (Ctrl-C, an error) kills its services; Kafka
    /// and PostgreSQL are killed by their own `kill_on_drop`.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        for mut instance in self.stack.running().unwrap_or_default() {
            if let Err(e) = instance.kill() {
                eprintln!("xtask: killing {}: {e}", instance.name());
            }
        }
    }
}

/// Gives every node of `cluster` (not started yet) a listener without
/// authentication on a free port; returns their addresses.
fn add_unauthenticated_listeners(cluster: &mut KafkaCluster) -> Result<String, InfraError> {
    let nodes: Vec<(u32, NodePorts)> = cluster
        .brokers()
        .iter()
        .map(|b| (b.node_id(), b.ports()))
        .collect();
    let taken: Vec<u16> = nodes
        .iter()
        .flat_map(|(_, p)| [p.client, p.controller])
        .collect();
    // Drawn with the nodes' own ports excluded, as those are free until the nodes start.
    let ports: Vec<u16> = process::free_ports(nodes.len() + taken.len())?
        .into_iter()
        .filter(|port| !taken.contains(port))
        .take(nodes.len())
        .collect();
    let mut addresses = Vec::with_capacity(nodes.len());
    for ((id, node), port) in nodes.into_iter().zip(ports) {
        if let Some(broker) = cluster.broker_mut(id) {
            broker.set_properties(unauthenticated_listener(node, port));
            addresses.push(format!("127.0.0.1:{port}"));
        }
    }
    Ok(addresses.join(","))
}

/// Starts the server, turns commit timestamps on (a server setting: one
/// restart), and creates the services' roles and databases.
async fn start_postgres(postgres: &mut Postgres) -> Result<(), InfraError> {
    postgres.start().await?;
    let mut admin = PgConnection::connect(&postgres.admin_url()).await?;
    sqlx::raw_sql("ALTER SYSTEM SET track_commit_timestamp = on")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    postgres.restart().await?;
    postgres.provision_services().await
}

impl Pools {
    async fn connect(settings: &Settings) -> Result<Self, InfraError> {
        let pool = |database: &str| {
            let url = with_database(&settings.postgres_admin_url, database);
            async move {
                Ok::<_, InfraError>(
                    PgPoolOptions::new()
                        .max_connections(4)
                        .connect(&url)
                        .await?,
                )
            }
        };
        Ok(Pools {
            orders: pool(ORDER_SERVICE.database).await?,
            invoicing: pool(INVOICING_SERVICE.database).await?,
            shipping: pool(SHIPPING_SERVICE.database).await?,
            admin: pool("postgres").await?,
        })
    }

    async fn close(&self) {
        tokio::join!(
            self.orders.close(),
            self.invoicing.close(),
            self.shipping.close(),
            self.admin.close()
        );
    }
}
