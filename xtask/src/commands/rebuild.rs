//! `cargo xtask rebuild <invoicing|shipping>`: a service's view rebuilt from the topic.
//!
//! Runs the procedure documented in `messaging/src/service.rs` against the
//! running stack: a new empty database owned by the service's role, a second
//! instance of the service on it in a new consumer group that reads the topic
//! from the earliest offset, a wait until it has caught up, and a comparison
//! of its view with the live instance's through both APIs. The rebuild
//! instance is stopped at the end (its offsets committed); its database stays,
//! ready for a cut-over or a `DROP DATABASE`.

use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;

use devinfra::InfraError;
use devinfra::infra::DevInfra;
use devinfra::interrupts::Interrupts;
use devinfra::process;
use devinfra::rebuild::{
    RebuildPlan, ViewComparison, compare_views, topic_records, wait_caught_up,
};
use devinfra::stack::{Profile, Service, Stack, StackError};
use orderflow_client::ApiClient;
use shared_events::topics::ORDERS as ORDERS_TOPIC;

/// How many order ids of each kind of difference are listed.
const SHOWN_DIFFERENCES: usize = 5;

/// Rebuilds `service`'s view from the topic's history next to the live one
/// and compares them; true when they are identical. `timeout` bounds the catch-up.
pub async fn rebuild(service: Service, timeout: Duration) -> Result<bool, StackError> {
    let mut interrupts = Interrupts::install()?;
    let infra = DevInfra::from_env()?;
    let settings = infra.current_settings()?;
    let stack = Stack::new(&infra, &settings)?;
    let Some(live) = stack.find(service, 1)? else {
        return Err(StackError::config(format!(
            "{service} is not running in {}; start the stack with `cargo xtask up`",
            stack.dir().display()
        )));
    };
    // The rebuild runs the same build (debug or release) as the live instance.
    let profile = process::command_line(live.pid())
        .map(|line| Profile::of_command_line(&line))
        .unwrap_or_default();
    let stack = stack.with_profile(profile);
    let plan = RebuildPlan::new(&stack, service, Utc::now())?;
    let client = ApiClient::new()?;

    let records = topic_records(&settings.kafka_bootstrap_servers, ORDERS_TOPIC).await?;
    eprintln!(
        "xtask: rebuilding the view of {service} from topic `{ORDERS_TOPIC}` ({records} records now)"
    );
    plan.create_database(&settings).await?;
    eprintln!(
        "xtask: created database {} owned by {}",
        plan.database, service.database
    );
    let started = Instant::now();
    let mut instance = stack.launch(plan.launch()).await?;
    eprintln!(
        "xtask: {} runs at {} (pid {}) in consumer group {}, from the earliest offset",
        instance.name(),
        instance.base_url(),
        instance.pid(),
        plan.group
    );

    let rebuild_url = instance.base_url();
    let live_url = live.base_url();
    let work = async {
        let caught_up =
            wait_caught_up(&client, service, &rebuild_url, &live_url, records, timeout).await?;
        eprintln!(
            "xtask: caught up after {:.1}s ({} records handled, {} rows); comparing",
            started.elapsed().as_secs_f64(),
            caught_up.handled,
            caught_up.rows
        );
        compare_views(&client, service, &live_url, &rebuild_url).await
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        signal = interrupts.recv() => Err(InfraError::Interrupted(signal.name()).into()),
    };
    eprintln!("xtask: stopping {}", instance.name());
    let stopped = instance.stop().await;
    let comparison = match outcome {
        Ok(comparison) => comparison,
        Err(e) => {
            eprintln!(
                "xtask: the rebuild did not finish; database {} is kept (see {})",
                plan.database,
                instance.log_file().display()
            );
            return Err(e);
        }
    };
    stopped?;
    report(
        &plan,
        &settings.postgres_admin_url,
        &comparison,
        records,
        instance.log_file(),
    )?;
    Ok(comparison.identical())
}

fn report(
    plan: &RebuildPlan,
    admin_url: &str,
    comparison: &ViewComparison,
    records: i64,
    log: &std::path::Path,
) -> Result<(), StackError> {
    let service = plan.service;
    let mut lines = vec![
        format!("Rebuilt the view of {service} from topic `{ORDERS_TOPIC}` ({records} records):"),
        format!("  database        {} (kept)", plan.database),
        format!(
            "  consumer group  {} (offsets committed at the end of the topic)",
            plan.group
        ),
        format!(
            "  rows            live {}, rebuilt {}",
            comparison.live, comparison.rebuilt
        ),
    ];
    if comparison.identical() {
        lines.push(
            "  result          IDENTICAL to the live view (ids and commit times aside)".to_owned(),
        );
    } else {
        lines.push("  result          DIFFERENT from the live view:".to_owned());
        for (what, ids) in [
            ("missing from the rebuild", &comparison.missing),
            ("only in the rebuild", &comparison.extra),
            ("with different content", &comparison.differing),
        ] {
            if !ids.is_empty() {
                let shown: Vec<&str> = ids
                    .iter()
                    .take(SHOWN_DIFFERENCES)
                    .map(String::as_str)
                    .collect();
                let more = ids.len().saturating_sub(SHOWN_DIFFERENCES);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                lines.push(format!(
                    "                  {} order(s) {what}: {}{more}",
                    ids.len(),
                    shown.join(", ")
                ));
            }
        }
        lines.push(
            "                  (orders placed while comparing show up here too; run again on a \
             quiet stack)"
                .to_owned(),
        );
    }
    lines.extend([
        format!("  log             {}", log.display()),
        String::new(),
        format!("To cut over, run {service} with these two settings (and stop the old instance);"),
        "its consumer group continues from the rebuild's committed offsets:".to_owned(),
        format!("  DATABASE_URL={}", plan.database_url),
        format!("  KAFKA_GROUP_ID={}", plan.group),
        "To discard the rebuild instead:".to_owned(),
        format!(
            "  psql '{admin_url}' -c 'DROP DATABASE \"{}\"'",
            plan.database
        ),
        String::new(),
    ]);
    let mut out = std::io::stdout().lock();
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e).into())
}
