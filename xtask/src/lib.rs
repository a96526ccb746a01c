//! The dev tool of the order flow (`cargo xtask`), as a library.
//!
//! The flow needs a real Kafka and a real PostgreSQL. Where Docker is not
//! available, this crate runs both as plain processes on loopback: Kafka's
//! official jars (resolved by Maven from `infra/kafka/pom.xml`) on the system
//! JDK in KRaft mode, and PostgreSQL from the system's server binaries with a
//! private data directory. The `cargo xtask` binary is a thin command line over
//! [`commands`]; the end-to-end tests and the chaos and benchmark commands use
//! the same building blocks directly: a [`KafkaCluster`] whose [`KafkaBroker`]s
//! can be stopped, killed and restarted one by one, and a [`Postgres`] server.
//! [`DevInfra`] puts one of each under the infra directory and reports the
//! [`Settings`] that services and tests connect with. On top of that,
//! [`stack`] runs the three services as plain background processes (built
//! once, started detached, found again by pid file, stopped with a drain), the
//! same way for `cargo xtask up`, `demo` and `rebuild`, and for the chaos and
//! benchmark runs; [`rebuild`] rebuilds a consumer's view from the topic.

pub mod bench;
pub mod chaos;
pub mod commands;
pub mod error;
pub mod infra;
pub mod kafka;
pub mod postgres;
pub mod prereq;
mod private;
pub mod process;
pub mod rebuild;
pub mod stack;
pub mod wait;

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
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
