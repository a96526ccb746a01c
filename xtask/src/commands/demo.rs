//! `cargo xtask demo`: everything the flow needs, running locally, and how to reach it.
//!
//! The demo is a sequence of steps, each starting one layer on top of the
//! previous one's settings. Today there is one layer, the infrastructure; the
//! services (order, invoicing, shipping) become the next step.

use crate::InfraError;
use crate::infra::{DevInfra, UpReport};

use super::infra::print_settings;

/// Starts the infrastructure (one Kafka node, PostgreSQL) and prints what runs and the settings.
pub async fn demo() -> Result<(), InfraError> {
    let infra = DevInfra::from_env()?;
    let report = infra.up(1).await?;
    print_running(&infra, &report)?;
    print_settings(&report.settings)
}

fn print_running(infra: &DevInfra, report: &UpReport) -> Result<(), InfraError> {
    eprintln!();
    eprintln!("Running (stop with `cargo xtask down`):");
    for component in infra.status()? {
        let label = if component.name.starts_with("kafka") {
            format!("{} (Apache Kafka {})", component.name, report.kafka_version)
        } else {
            format!("{} (PostgreSQL)", component.name)
        };
        let pid = component
            .pid
            .map_or_else(|| "not running".to_owned(), |pid| format!("pid {pid}"));
        eprintln!(
            "  {label:<32} {:<16} {pid:<11} log {}",
            component.address,
            component.log.display()
        );
    }
    eprintln!();
    eprintln!("Settings (also on stdout):");
    Ok(())
}
