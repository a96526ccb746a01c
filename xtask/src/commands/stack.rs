//! `cargo xtask up|down|status`: the infrastructure and the three services together.

use std::io::Write as _;

use devinfra::InfraError;
use devinfra::infra::DevInfra;
use devinfra::stack::{Profile, ServiceProcess, Stack, StackError, report_started};

use super::infra::{print_settings, print_status};

/// Starts the infrastructure (`nodes` Kafka nodes) and the three services
/// unless they run, and returns once all are ready; prints the settings and
/// the services' URLs as `NAME=value` on stdout, and the pages to open on stderr.
pub async fn up(nodes: usize, profile: Profile) -> Result<(), StackError> {
    let infra = DevInfra::from_env()?;
    let report = infra.up(nodes).await?;
    let stack = Stack::new(&infra, &report.settings)?.with_profile(profile);
    let services = stack.up().await?;
    report_started(&services);
    print_settings(&report.settings)?;
    print_service_urls(&services)?;
    eprintln!("xtask: the pages, to open in a browser:");
    for (what, url) in stack.page_urls() {
        eprintln!("  {what:<10} {url}");
    }
    Ok(())
}

/// Stops the services (SIGTERM: they drain), then Kafka and PostgreSQL, and
/// returns when no process of the stack is left.
pub async fn down() -> Result<(), StackError> {
    let infra = DevInfra::from_env()?;
    let stack = Stack::new(&infra, &infra.current_settings()?)?;
    if stack.dir().is_dir() {
        let _lock = stack.lock().await?;
        let stopped = stack.stop_all().await?;
        if stopped > 0 {
            eprintln!("xtask: stopped {stopped} service instance(s)");
        }
    }
    super::infra_down().await?;
    Ok(())
}

/// Prints each component and service instance: running or not, pid, address, since when, log.
pub async fn status() -> Result<(), StackError> {
    let infra = DevInfra::from_env()?;
    let stack = Stack::new(&infra, &infra.current_settings()?)?;
    let mut rows = infra.status()?;
    rows.extend(stack.status()?);
    print_status(&rows)?;
    Ok(())
}

/// Writes `ORDER_SERVICE_URL=...` and the others as `NAME=value` lines on stdout.
fn print_service_urls(services: &[ServiceProcess]) -> Result<(), StackError> {
    let mut out = std::io::stdout().lock();
    services
        .iter()
        .filter(|s| s.name() == s.service().binary())
        .try_for_each(|s| writeln!(out, "{}={}", s.service().url_var(), s.base_url()))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e).into())
}
