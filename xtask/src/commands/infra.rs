//! `cargo xtask infra up|down|status`.

use std::io::Write as _;
use std::time::SystemTime;

use chrono::{DateTime, Local};

use devinfra::InfraError;
use devinfra::infra::{ComponentStatus, DevInfra, Settings};
use devinfra::stack::{Stack, StackError};

/// Starts Kafka (`nodes` nodes) and PostgreSQL unless they run, then prints the settings.
pub async fn infra_up(nodes: usize) -> Result<(), InfraError> {
    let infra = DevInfra::from_env()?;
    let report = infra.up(nodes).await?;
    print_settings(&report.settings)?;
    Ok(())
}

/// Stops Kafka, then PostgreSQL; returns when their processes are gone.
pub async fn infra_down() -> Result<(), InfraError> {
    let infra = DevInfra::from_env()?;
    let before = infra.running()?;
    infra.down().await?;
    if before.kafka || before.postgres {
        eprintln!("xtask: stopped");
    } else {
        eprintln!("xtask: nothing was running in {}", infra.dir().display());
    }
    warn_about_running_services(&infra);
    Ok(())
}

/// Prints each component and service instance: running or not, pid, address, since when, log.
pub async fn infra_status() -> Result<(), StackError> {
    super::status().await
}

/// Writes the status table on stdout.
pub(super) fn print_status(rows: &[ComponentStatus]) -> Result<(), InfraError> {
    let mut out = std::io::stdout().lock();
    let result = write_status(&mut out, rows, SystemTime::now());
    result.map_err(|e| InfraError::io("write", "stdout", e))
}

/// Services left without their infrastructure retry forever; say how to stop them.
fn warn_about_running_services(infra: &DevInfra) {
    let running = infra
        .current_settings()
        .map_err(StackError::from)
        .and_then(|settings| Stack::new(infra, &settings))
        .and_then(|stack| stack.running());
    if let Ok(running) = running
        && !running.is_empty()
    {
        let names: Vec<&str> = running.iter().map(|p| p.name()).collect();
        eprintln!(
            "xtask: still running: {}; `cargo xtask down` stops them",
            names.join(", ")
        );
    }
}

/// Writes the settings as `NAME=value` lines on stdout.
pub(super) fn print_settings(settings: &Settings) -> Result<(), InfraError> {
    let mut out = std::io::stdout().lock();
    settings
        .env_vars()
        .iter()
        .try_for_each(|(name, value)| writeln!(out, "{name}={value}"))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e))
}

fn write_status(
    out: &mut impl std::io::Write,
    rows: &[ComponentStatus],
    now: SystemTime,
) -> std::io::Result<()> {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let (state, pid, since) = match row.pid {
                Some(pid) => (
                    "running",
                    pid.to_string(),
                    row.since
                        .map_or_else(|| "-".to_owned(), |t| describe_since(t, now)),
                ),
                None => ("stopped", "-".to_owned(), "-".to_owned()),
            };
            [
                row.name.clone(),
                state.to_owned(),
                pid,
                row.address.clone(),
                since,
                row.log.display().to_string(),
            ]
        })
        .collect();
    let header = ["COMPONENT", "STATE", "PID", "ADDRESS", "SINCE", "LOG"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

fn describe_since(since: SystemTime, now: SystemTime) -> String {
    let local: DateTime<Local> = since.into();
    let age = now.duration_since(since).map(|d| d.as_secs()).unwrap_or(0);
    let age = match age {
        0..60 => format!("{age}s"),
        60..3600 => format!("{}m{:02}s", age / 60, age % 60),
        _ => format!("{}h{:02}m", age / 3600, (age % 3600) / 60),
    };
    format!("{} ({age} ago)", local.format("%Y-%m-%d %H:%M:%S %:z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn status_shows_state_pid_address_and_age() {
        let now = SystemTime::now();
        let rows = vec![
            ComponentStatus {
                name: "kafka node 1".into(),
                pid: Some(4242),
                address: "127.0.0.1:19092".into(),
                since: Some(now - Duration::from_secs(125)),
                log: PathBuf::from("/infra/kafka/node-1/logs/server.log"),
            },
            ComponentStatus {
                name: "postgres".into(),
                pid: None,
                address: "127.0.0.1:15432".into(),
                since: None,
                log: PathBuf::from("/infra/postgres/postgres.log"),
            },
        ];
        let mut out = Vec::new();
        write_status(&mut out, &rows, now).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("kafka node 1  running  4242"),
            "{text}"
        );
        assert!(lines[1].contains("127.0.0.1:19092"), "{text}");
        assert!(lines[1].contains("(2m05s ago)"), "{text}");
        assert!(lines[1].ends_with("server.log"), "{text}");
        assert!(lines[2].starts_with("postgres      stopped  -"), "{text}");
    }
}
