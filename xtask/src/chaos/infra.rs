//! The private infrastructure a chaos run owns: a Kafka cluster, a PostgreSQL
//! server and the three services, on free ports in a directory of its own, so
//! a developer's `cargo xtask up` stack is never touched and every fault lands
//! only on processes this run started.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::ChaosError;
use crate::infra::{Settings, service_url_var};
use crate::kafka::{KafkaCluster, KafkaRuntime, NodePorts};
use crate::postgres::{Postgres, SERVICE_DATABASES};
use crate::process;
use crate::stack::{Profile, Service, ServicePorts, Stack};

/// Kafka, PostgreSQL and the services of one chaos run.
#[derive(Debug)]
pub(crate) struct ChaosInfra {
    dir: PathBuf,
    pub(crate) cluster: KafkaCluster,
    pub(crate) postgres: Postgres,
    pub(crate) settings: Settings,
    pub(crate) stack: Stack,
    pub(crate) pools: Pools,
    stopped: bool,
}

/// Connections for the audit: each service's own database, and the superuser.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) orders: PgPool,
    pub(crate) invoicing: PgPool,
    pub(crate) shipping: PgPool,
    pub(crate) admin: PgPool,
}

impl ChaosInfra {
    /// Starts `nodes` Kafka nodes and PostgreSQL in `dir`, then the services
    /// (built with `profile`), and returns once every service is ready.
    pub(crate) async fn start(
        runtime: Arc<KafkaRuntime>,
        dir: &Path,
        nodes: usize,
        profile: Profile,
    ) -> Result<Self, ChaosError> {
        let mut cluster = KafkaCluster::new(runtime, dir.join("kafka"), NodePorts::free(nodes)?)?
            .kill_on_drop(true);
        let mut postgres = Postgres::new(dir.join("postgres"), process::free_port()?);
        postgres.kill_on_drop(true);
        let (kafka, pg) = tokio::join!(cluster.start(), async {
            postgres.start().await?;
            for service in SERVICE_DATABASES {
                postgres.provision_service(service).await?;
            }
            Ok::<_, crate::InfraError>(())
        });
        kafka?;
        pg?;
        let settings = Settings {
            kafka_bootstrap_servers: cluster.bootstrap_servers(),
            postgres_admin_url: postgres.admin_url(),
            service_database_urls: SERVICE_DATABASES
                .iter()
                .map(|s| (service_url_var(s), postgres.service_url(s)))
                .collect(),
        };
        let ports = process::free_ports(3)?;
        let ports = ServicePorts {
            order: ports[0],
            invoicing: ports[1],
            shipping: ports[2],
        };
        let stack = Stack::in_dir(dir.join("services"), &settings, ports).with_profile(profile);
        let mut infra = ChaosInfra {
            dir: dir.to_path_buf(),
            pools: Pools::connect(&stack, &settings).await?,
            cluster,
            postgres,
            settings,
            stack,
            stopped: false,
        };
        if let Err(e) = infra.stack.up().await {
            infra.stop().await;
            return Err(e.into());
        }
        Ok(infra)
    }

    /// Where its logs are.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The base URL of `service`'s first instance.
    pub(crate) fn url(&self, service: Service) -> String {
        self.stack.base_url(service)
    }

    /// Stops the services (draining), then Kafka and PostgreSQL; reports but
    /// does not fail on problems, so it can run after an error too.
    pub(crate) async fn stop(&mut self) {
        self.stopped = true;
        self.pools.close().await;
        if let Err(e) = self.stack.stop_all().await {
            eprintln!("chaos: stopping the services: {e}");
        }
        if let Err(e) = self.cluster.stop().await {
            eprintln!("chaos: stopping Kafka: {e}");
        }
        if let Err(e) = self.postgres.stop().await {
            eprintln!("chaos: stopping PostgreSQL: {e}");
        }
    }
}

impl Drop for ChaosInfra {
    /// A run dropped half-way (Ctrl-C, an error) kills its services; Kafka
    /// and PostgreSQL are killed by their own `kill_on_drop`.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        for mut instance in self.stack.running().unwrap_or_default() {
            if let Err(e) = instance.kill() {
                eprintln!("chaos: killing {}: {e}", instance.name());
            }
        }
    }
}

impl Pools {
    async fn connect(stack: &Stack, settings: &Settings) -> Result<Self, ChaosError> {
        let pool = |url: String| async move {
            PgPoolOptions::new()
                .max_connections(4)
                .connect(&url)
                .await
                .map_err(ChaosError::Database)
        };
        Ok(Pools {
            orders: pool(stack.database_url(Service::Order)?).await?,
            invoicing: pool(stack.database_url(Service::Invoicing)?).await?,
            shipping: pool(stack.database_url(Service::Shipping)?).await?,
            admin: pool(settings.postgres_admin_url.clone()).await?,
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
