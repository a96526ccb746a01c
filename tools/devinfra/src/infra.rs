//! The development infrastructure: one Kafka cluster and one PostgreSQL server
//! under one directory, and the settings the services and tests connect with.
//!
//! Layout of the infra directory (default `<repo>/.infra`, or `INFRA_DIR`):
//!
//! ```text
//! kafka/classpath.txt, classpath.key   the broker classpath, keyed by the pom's hash
//! kafka/cluster.json                   cluster id and each node's ports
//! kafka/node-<id>/                     server.properties, data/, logs/, kafka.pid
//! postgres/data/                       the PostgreSQL data directory (postmaster.pid)
//! postgres/postgres.log                the server log
//! ```

use std::env;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use platform::services;

use crate::kafka::{KafkaCluster, KafkaRuntime, NodePorts};
use crate::postgres::{Postgres, service_databases};
use crate::process::DirLock;
use crate::{InfraError, Startup, prereq, workspace_root};

/// Kafka's first client port unless `INFRA_KAFKA_PORT` says otherwise (controller: +1, next node: +2).
pub const DEFAULT_KAFKA_PORT: u16 = services::LOCAL_KAFKA_PORT;

/// PostgreSQL's port unless `INFRA_PG_PORT` says otherwise.
pub const DEFAULT_POSTGRES_PORT: u16 = services::LOCAL_POSTGRES_PORT;

/// Name of the variable holding the Kafka bootstrap servers.
pub const KAFKA_BOOTSTRAP_SERVERS: &str = "KAFKA_BOOTSTRAP_SERVERS";

/// Name of the variable holding the PostgreSQL superuser URL.
pub const POSTGRES_ADMIN_URL: &str = "POSTGRES_ADMIN_URL";

/// Where the services and tests find the infrastructure: the five `NAME=value` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `KAFKA_BOOTSTRAP_SERVERS`: every broker's address, comma-separated.
    pub kafka_bootstrap_servers: String,
    /// `POSTGRES_ADMIN_URL`: the superuser, for creating test databases.
    pub postgres_admin_url: String,
    /// `<SERVICE>_DATABASE_URL` for each service, in the flow's order.
    pub service_database_urls: Vec<(String, String)>,
}

impl Settings {
    /// The settings as environment variables, in the documented order.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            (
                KAFKA_BOOTSTRAP_SERVERS.to_owned(),
                self.kafka_bootstrap_servers.clone(),
            ),
            (
                POSTGRES_ADMIN_URL.to_owned(),
                self.postgres_admin_url.clone(),
            ),
        ];
        vars.extend(self.service_database_urls.iter().cloned());
        vars
    }

    /// The settings from this process's environment, when at least Kafka and
    /// the PostgreSQL admin URL are given (the service URLs are optional).
    pub fn from_env() -> Option<Settings> {
        let kafka = env::var(KAFKA_BOOTSTRAP_SERVERS).ok()?;
        let admin = env::var(POSTGRES_ADMIN_URL).ok()?;
        let services = service_databases()
            .filter_map(|s| {
                let name = service_url_var(s);
                env::var(&name).ok().map(|url| (name, url))
            })
            .collect();
        Some(Settings {
            kafka_bootstrap_servers: kafka,
            postgres_admin_url: admin,
            service_database_urls: services,
        })
    }
}

/// The variable holding the URL of a service's database, e.g.
/// `ORDERS_DATABASE_URL` (see [`platform::services::ServiceFacts::database_url_var`]).
pub fn service_url_var(database: &str) -> String {
    services::database_url_var(database)
}

/// What [`DevInfra::up`] did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// Where to connect.
    pub settings: Settings,
    /// The Kafka release that runs.
    pub kafka_version: String,
    /// Whether Kafka was started now or found running.
    pub kafka: Startup,
    /// Whether PostgreSQL was started now or found running.
    pub postgres: Startup,
}

/// Which components run right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Running {
    /// At least one Kafka node runs.
    pub kafka: bool,
    /// The PostgreSQL server runs.
    pub postgres: bool,
}

/// One line of `cargo xtask infra status`.
#[derive(Debug, Clone)]
pub struct ComponentStatus {
    /// E.g. "kafka node 1" or "postgres".
    pub name: String,
    /// The pid when running.
    pub pid: Option<u32>,
    /// Where it listens.
    pub address: String,
    /// When it was started.
    pub since: Option<SystemTime>,
    /// Its log file.
    pub log: PathBuf,
}

/// The Kafka cluster and PostgreSQL server of local development, under one directory.
#[derive(Debug, Clone)]
pub struct DevInfra {
    dir: PathBuf,
    kafka_port: u16,
    postgres_port: u16,
}

impl DevInfra {
    /// From `INFRA_DIR` (default `<repo>/.infra`), `INFRA_KAFKA_PORT` and `INFRA_PG_PORT`.
    pub fn from_env() -> Result<Self, InfraError> {
        let dir = match env::var_os("INFRA_DIR") {
            Some(dir) if !dir.is_empty() => absolute(Path::new(&dir))?,
            _ => workspace_root().join(".infra"),
        };
        Ok(DevInfra::new(
            dir,
            port_from_env("INFRA_KAFKA_PORT", DEFAULT_KAFKA_PORT)?,
            port_from_env("INFRA_PG_PORT", DEFAULT_POSTGRES_PORT)?,
        ))
    }

    /// Infrastructure in `dir` with Kafka's first client port and PostgreSQL's port.
    pub fn new(dir: impl Into<PathBuf>, kafka_port: u16, postgres_port: u16) -> Self {
        // Processes are recognised by the paths on their command line, so the
        // directory is used exactly as given (not canonicalised) every time.
        DevInfra {
            dir: dir.into(),
            kafka_port,
            postgres_port,
        }
    }

    /// The infra directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kafka's directory (cluster, nodes, classpath cache).
    pub fn kafka_dir(&self) -> PathBuf {
        self.dir.join("kafka")
    }

    /// PostgreSQL's directory.
    pub fn postgres_dir(&self) -> PathBuf {
        self.dir.join("postgres")
    }

    /// The Kafka JVM runtime, resolved with Maven unless cached.
    pub async fn kafka_runtime(&self) -> Result<KafkaRuntime, InfraError> {
        KafkaRuntime::resolve(&workspace_root(), &self.kafka_dir()).await
    }

    /// The PostgreSQL server.
    pub fn postgres(&self) -> Postgres {
        Postgres::new(self.postgres_dir(), self.postgres_port)
    }

    /// The settings for a cluster of `nodes` Kafka nodes.
    pub fn settings(&self, nodes: usize) -> Result<Settings, InfraError> {
        let kafka = NodePorts::sequential(self.kafka_port, nodes)?
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.client))
            .collect::<Vec<_>>()
            .join(",");
        let postgres = self.postgres();
        Ok(Settings {
            kafka_bootstrap_servers: kafka,
            postgres_admin_url: postgres.admin_url(),
            service_database_urls: postgres.service_database_urls(),
        })
    }

    /// The settings for the cluster as configured in the infra directory (its
    /// node count), or for one node when no cluster was created yet.
    pub fn current_settings(&self) -> Result<Settings, InfraError> {
        let nodes = KafkaCluster::open(self.kafka_dir())?.map_or(1, |c| c.brokers().len());
        self.settings(nodes.max(1))
    }

    /// Starts Kafka (`nodes` nodes) and PostgreSQL unless they run, creates the
    /// flow's topics, Kafka principals and ACLs and the service roles and
    /// databases, and returns once both answer requests.
    pub async fn up(&self, nodes: usize) -> Result<UpReport, InfraError> {
        prereq::check().await?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| InfraError::io("create directory", &self.dir, e))?;
        let _lock = self.lock().await?;
        let runtime = Arc::new(self.kafka_runtime().await?);
        let kafka_version = runtime.version().to_owned();
        let ports = NodePorts::sequential(self.kafka_port, nodes)?;
        let mut cluster = KafkaCluster::new(runtime, self.kafka_dir(), ports)?;
        let mut postgres = self.postgres();
        eprintln!(
            "xtask: starting Kafka {kafka_version} ({nodes} node(s)) and PostgreSQL in {}",
            self.dir.display()
        );
        let started = std::time::Instant::now();
        let kafka = async {
            let startup = cluster.start().await?;
            cluster.provision().await?;
            Ok::<_, InfraError>(startup)
        };
        let (kafka, postgres) = tokio::join!(kafka, async {
            let startup = postgres.start().await?;
            postgres.provision_services().await?;
            Ok::<_, InfraError>(startup)
        });
        let (kafka, postgres) = (kafka?, postgres?);
        eprintln!(
            "xtask: Kafka {}, PostgreSQL {} ({:.1}s)",
            describe(kafka),
            describe(postgres),
            started.elapsed().as_secs_f64()
        );
        Ok(UpReport {
            settings: self.settings(nodes)?,
            kafka_version,
            kafka,
            postgres,
        })
    }

    /// Stops Kafka, then PostgreSQL, and waits until their processes are gone.
    pub async fn down(&self) -> Result<(), InfraError> {
        let kafka = self.stop_kafka().await;
        let postgres = self.stop_postgres().await;
        kafka.and(postgres)
    }

    /// Stops every Kafka node that runs.
    pub async fn stop_kafka(&self) -> Result<(), InfraError> {
        let Some(mut cluster) = KafkaCluster::open(self.kafka_dir())? else {
            return Ok(());
        };
        let _lock = self.lock().await?;
        let running = cluster
            .brokers()
            .iter()
            .filter(|b| b.pid().is_some())
            .count();
        if running > 0 {
            eprintln!("xtask: stopping Kafka ({running} node(s))");
            cluster.stop().await?;
        }
        Ok(())
    }

    /// Stops PostgreSQL if it runs.
    pub async fn stop_postgres(&self) -> Result<(), InfraError> {
        let mut postgres = self.postgres();
        if postgres.pid().is_some() {
            let _lock = self.lock().await?;
            eprintln!("xtask: stopping PostgreSQL");
            postgres.stop().await?;
        }
        Ok(())
    }

    /// Serialises starting and stopping between `cargo xtask` runs sharing this directory.
    async fn lock(&self) -> Result<DirLock, InfraError> {
        DirLock::acquire(&self.dir.join(".lock")).await
    }

    /// Which components run now.
    pub fn running(&self) -> Result<Running, InfraError> {
        let kafka = KafkaCluster::open(self.kafka_dir())?
            .is_some_and(|c| c.brokers().iter().any(|b| b.pid().is_some()));
        Ok(Running {
            kafka,
            postgres: self.postgres().pid().is_some(),
        })
    }

    /// Every component: running or not, pid, address, since when, log.
    pub fn status(&self) -> Result<Vec<ComponentStatus>, InfraError> {
        let mut lines = Vec::new();
        match KafkaCluster::open(self.kafka_dir())? {
            Some(cluster) => {
                for broker in cluster.brokers() {
                    lines.push(ComponentStatus {
                        name: format!("kafka node {}", broker.node_id()),
                        pid: broker.pid(),
                        address: broker.bootstrap_servers(),
                        since: broker.started_at(),
                        log: broker.log_file(),
                    });
                }
            }
            None => lines.push(ComponentStatus {
                name: "kafka".into(),
                pid: None,
                address: format!("127.0.0.1:{}", self.kafka_port),
                since: None,
                log: self.kafka_dir(),
            }),
        }
        let postgres = self.postgres();
        lines.push(ComponentStatus {
            name: "postgres".into(),
            pid: postgres.pid(),
            address: postgres
                .listening_port()
                .map(|port| format!("127.0.0.1:{port}"))
                .unwrap_or_else(|| postgres.address()),
            since: postgres.started_at(),
            log: postgres.log_file(),
        });
        Ok(lines)
    }
}

fn describe(startup: Startup) -> &'static str {
    match startup {
        Startup::Started => "started",
        Startup::AlreadyRunning => "already running",
    }
}

/// A port from the variable `name`, or `default` when it is unset or empty.
pub fn port_from_env(name: &str, default: u16) -> Result<u16, InfraError> {
    match env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|_| InfraError::Config(format!("{name}={value} is not a port number"))),
        _ => Ok(default),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, InfraError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    env::current_dir()
        .map(|cwd| cwd.join(path))
        .map_err(|e| InfraError::io("read the current directory", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_the_five_documented_variables() {
        let infra = DevInfra::new("/nonexistent/infra", 19092, 15432);
        let vars = infra.settings(1).expect("settings").env_vars();
        let expected = [
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            (
                "POSTGRES_ADMIN_URL",
                "postgres://postgres:postgres@127.0.0.1:15432/postgres",
            ),
            (
                "ORDERS_DATABASE_URL",
                "postgres://orders:orders@127.0.0.1:15432/orders",
            ),
            (
                "INVOICING_DATABASE_URL",
                "postgres://invoicing:invoicing@127.0.0.1:15432/invoicing",
            ),
            (
                "SHIPPING_DATABASE_URL",
                "postgres://shipping:shipping@127.0.0.1:15432/shipping",
            ),
        ];
        let actual: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn three_nodes_are_all_bootstrap_servers() {
        let infra = DevInfra::new("/nonexistent/infra", 19092, 15432);
        assert_eq!(
            infra.settings(3).expect("settings").kafka_bootstrap_servers,
            "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
        );
    }

    #[test]
    fn nothing_runs_in_an_empty_directory() {
        let infra = DevInfra::new("/nonexistent/infra", 19092, 15432);
        assert_eq!(infra.running().expect("running"), Running::default());
        let status = infra.status().expect("status");
        assert!(status.iter().all(|s| s.pid.is_none()));
    }
}
