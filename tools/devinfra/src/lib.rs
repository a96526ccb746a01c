//! The flow's development infrastructure as supervised local processes.
//!
//! The flow needs a real Kafka and a real PostgreSQL. Where Docker is not
//! available, this crate runs both as plain processes on loopback: Kafka's
//! official jars (resolved by Maven from `infra/kafka/pom.xml`) on the system
//! JDK in KRaft mode, and PostgreSQL from the system's server binaries with a
//! private data directory. A [`KafkaCluster`] of [`KafkaBroker`]s that can be
//! stopped, killed and restarted one by one, and a [`Postgres`] server, are
//! the building blocks; [`DevInfra`] puts one of each under the infra
//! directory and reports the [`Settings`] that services and tests connect
//! with. On top of that, [`stack`] runs the three services as plain
//! background processes (built once, started detached, found again by pid
//! file, stopped with a drain), [`private`] gives a chaos or benchmark run
//! infrastructure of its own, [`rebuild`] rebuilds a consumer's view from
//! the topic, [`zipkin`] runs the trace backend (Zipkin; the OTLP receiver
//! in front of it is the `otlp-receiver` crate), and [`contract_tools`]
//! installs the tools that check the API and event contracts. `cargo xtask`,
//! the chaos and benchmark runs and the end-to-end tests all run the flow on
//! these.

pub mod contract_tools;
pub mod error;
pub mod infra;
pub mod interrupts;
pub mod kafka;
pub mod postgres;
pub mod prereq;
pub mod private;
pub mod process;
pub mod rebuild;
pub mod stack;
pub mod wait;
pub mod zipkin;

use std::path::{Path, PathBuf};

pub use error::InfraError;
pub use infra::{DevInfra, Settings};
pub use kafka::{KafkaBroker, KafkaCluster, KafkaRuntime, NodePorts};
pub use postgres::Postgres;
pub use process::free_port;
pub use stack::{Service, ServiceProcess, Stack, StackError};

/// Whether a start call launched a process or found it already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// A process was launched now.
    Started,
    /// It was running already (and is ready).
    AlreadyRunning,
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives in `<root>/tools/devinfra`.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}
