//! The demo (`cargo xtask demo`): the whole flow on this machine, shown with three orders.
//!
//! The demo starts what is missing (Kafka, PostgreSQL, the three services),
//! places three varied orders through the order API, waits until invoicing
//! and shipping have each recorded every one, and prints what each side made
//! of an order next to each other: the invoice has the customer's e-mail, the
//! billing address and prices; the shipment has the recipient, the shipping
//! address and the packing list, and nothing else. Then it cancels one order
//! and shows both sides following, prints the requests to try next and the
//! pages to open, and keeps the stack up until Ctrl-C (or returns at once
//! with `--no-wait`); its last line says to open order-service's pages.
//!
//! Every wait is a poll against a deadline on what the services answer; none
//! is a fixed sleep.

use std::collections::BTreeSet;

use devinfra::InfraError;
use devinfra::infra::{DevInfra, Running};
use devinfra::interrupts::{Interrupts, uninterrupted};
use devinfra::stack::{Profile, Stack, StackError, report_started};
use orderflow_client::ApiClient;

mod render;
mod samples;
mod walkthrough;

use render::{open_in_browser, running_section, show};
use walkthrough::walkthrough;

/// How `cargo xtask demo` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoOptions {
    /// Return after the walkthrough and leave the stack running.
    pub no_wait: bool,
    /// The profile the services are built with.
    pub profile: Profile,
}

/// Brings the stack up, walks three orders through it and prints what each
/// service recorded; then waits for Ctrl-C and stops what it started, or
/// with `no_wait` returns and leaves everything running.
pub async fn run(options: DemoOptions) -> Result<(), StackError> {
    let mut interrupts = Interrupts::install()?;
    let infra = DevInfra::from_env()?;
    let settings = infra.settings(1)?;
    let stack = Stack::new(&infra, &settings)?.with_profile(options.profile);
    let before = Before {
        infra: infra.running()?,
        services: stack
            .running()?
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
    };

    // A startup is not cancelled half-way (a server could come up after we
    // looked): an interrupt waits for the step to finish, then stops what it started.
    let (report, signal) = uninterrupted(infra.up(1), &mut interrupts).await;
    if let Some(signal) = signal {
        stop_what_we_started(&infra, &stack, &before).await?;
        return Err(InfraError::Interrupted(signal.name()).into());
    }
    let report = report?;
    let (services, signal) = uninterrupted(stack.up(), &mut interrupts).await;
    if let Some(signal) = signal {
        stop_what_we_started(&infra, &stack, &before).await?;
        return Err(InfraError::Interrupted(signal.name()).into());
    }
    let services = services?;
    report_started(&services);
    show(&running_section(&infra, &report, &services)?)?;

    let client = ApiClient::new()?;
    let walkthrough = tokio::select! {
        result = walkthrough(&client, &stack) => result,
        signal = interrupts.recv() => {
            stop_what_we_started(&infra, &stack, &before).await?;
            return Err(InfraError::Interrupted(signal.name()).into());
        }
    };
    if let Err(e) = walkthrough {
        eprintln!(
            "xtask: the demo failed; the stack keeps running so its logs in {} can be read. \
             `cargo xtask down` stops it.",
            stack.dir().display()
        );
        return Err(e);
    }

    if options.no_wait {
        show(&[
            "The stack keeps running in the background; `cargo xtask down` stops it.".to_owned(),
            open_in_browser(&stack),
        ])?;
        return Ok(());
    }
    show(&[
        "Running until Ctrl-C; then this demo stops what it started.".to_owned(),
        open_in_browser(&stack),
    ])?;
    let signal = interrupts.recv().await;
    eprintln!("xtask: {} received, stopping", signal.name());
    stop_what_we_started(&infra, &stack, &before).await
}

/// What ran before the demo started anything: that is left running.
#[derive(Debug)]
struct Before {
    infra: Running,
    services: BTreeSet<String>,
}

async fn stop_what_we_started(
    infra: &DevInfra,
    stack: &Stack,
    before: &Before,
) -> Result<(), StackError> {
    let services = stack
        .stop_where(|p| !before.services.contains(p.name()))
        .await;
    let kafka = if before.infra.kafka {
        Ok(())
    } else {
        infra.stop_kafka().await
    };
    let postgres = if before.infra.postgres {
        Ok(())
    } else {
        infra.stop_postgres().await
    };
    if before.infra.kafka || before.infra.postgres || !before.services.is_empty() {
        eprintln!("xtask: left running what was running before the demo");
    }
    services?;
    kafka.and(postgres)?;
    eprintln!("xtask: stopped");
    Ok(())
}
