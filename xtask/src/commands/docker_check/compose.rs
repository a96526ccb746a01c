//! The compose path, as a reader of the README runs it.
//!
//! Every step waits on a condition with a deadline (a service healthy, an
//! invoice listed, a rebalance settled), never a fixed time. Whatever
//! happens, the stack is taken down with its volumes at the end, and the
//! check then looks for anything of the project left on the engine.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use devinfra::interrupts::{Interrupts, interrupted_by};
use devinfra::wait::{Probe, until};
use serde_json::Value;
use shared_events::headers;
use shared_events::topics;

use super::{
    DockerCheckError, FLOW_WITHIN, HEALTHY_WITHIN, POLL, SCALE_WITHIN, command, output, readme,
    secs, shell,
};
use crate::commands::exit_code;

/// The profile of the extra shipping instances (docker-compose.yml).
const SCALE_PROFILE: &str = "scale";
/// The service that adds shipping instances without a host port.
const EXTRA_SHIPPING: &str = "shipping-service-extra";

/// Runs the compose path and takes the stack down, also when a step failed
/// or a signal came; returns the first failure.
pub async fn check(interrupts: &mut Interrupts) -> Result<ExitCode, DockerCheckError> {
    let project = project_name().await?;
    ensure_absent(&project, "already has").await?;

    // A signal drops the steps (which kills the command that runs, see
    // `command`); the stack is taken down all the same.
    let outcome = tokio::select! {
        result = run(&project) => result,
        signal = interrupts.recv() => Ok(interrupted_by(signal)),
    };
    if outcome.is_err() {
        eprintln!("xtask: the compose check failed; the services' last log lines:");
        // Best effort: the logs help, the failure is reported either way.
        let _ = stream(&[
            "docker",
            "compose",
            "--profile",
            SCALE_PROFILE,
            "logs",
            "--no-color",
            "--tail",
            "40",
        ])
        .await;
    }
    let down = down(&project).await;
    match (outcome, down) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(code), Ok(())) => Ok(code),
    }
}

/// The steps, in the README's order.
async fn run(project: &str) -> Result<ExitCode, DockerCheckError> {
    let started = Instant::now();
    let code = stream(&["docker", "compose", "up", "--build", "-d"]).await?;
    if code != ExitCode::SUCCESS {
        return Err(DockerCheckError::Check(
            "`docker compose up --build -d` failed (its output is above)".into(),
        ));
    }
    eprintln!("xtask: compose: built and started in {}s", secs(started));

    let started = Instant::now();
    let services = wait_healthy(None).await?;
    eprintln!(
        "xtask: compose: {} healthy in {}s",
        services.join(", "),
        secs(started)
    );
    shipping_on_its_own_port().await?;

    let readme = readme::read()?;
    let order = readmes_order(&readme).await?;
    pages_answer(&order).await?;
    scale_out(&readme).await?;
    topic_commands(&readme, &order).await?;
    eprintln!("xtask: compose: every step passed for project {project}");
    Ok(ExitCode::SUCCESS)
}

/// The compose project's name (docker-compose.yml's `name:`).
async fn project_name() -> Result<String, DockerCheckError> {
    let config = output(&["docker", "compose", "config", "--format", "json"]).await?;
    let config: Value = serde_json::from_str(&config).map_err(|e| {
        DockerCheckError::Check(format!("`docker compose config` printed no JSON: {e}"))
    })?;
    config["name"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| DockerCheckError::Check("docker-compose.yml names no project".into()))
}

/// Fails when the project has containers, volumes or networks on the engine.
async fn ensure_absent(project: &str, when: &str) -> Result<(), DockerCheckError> {
    let label = format!("label=com.docker.compose.project={project}");
    let mut found = Vec::new();
    for kind in ["container", "volume", "network"] {
        let args: Vec<&str> = match kind {
            "container" => vec![
                "docker",
                "ps",
                "-a",
                "--filter",
                &label,
                "--format",
                "{{.Names}}",
            ],
            _ => vec![
                "docker",
                kind,
                "ls",
                "--filter",
                &label,
                "--format",
                "{{.Name}}",
            ],
        };
        let names = output(&args).await?;
        found.extend(names.lines().map(|name| format!("{kind} {name}")));
    }
    if found.is_empty() {
        return Ok(());
    }
    let advice = if when == "already has" {
        "; the check ends with `down -v`, which would drop their data: run `docker compose down -v` yourself first"
    } else {
        ""
    };
    Err(DockerCheckError::Check(format!(
        "compose project {project} {when}: {}{advice}",
        found.join(", ")
    )))
}

/// `down -v` (the extra instances' profile included), then nothing of the project left.
async fn down(project: &str) -> Result<(), DockerCheckError> {
    let started = Instant::now();
    let code = stream(&[
        "docker",
        "compose",
        "--profile",
        SCALE_PROFILE,
        "down",
        "-v",
    ])
    .await?;
    if code != ExitCode::SUCCESS {
        return Err(DockerCheckError::Check(
            "`docker compose down -v` failed".into(),
        ));
    }
    ensure_absent(project, "left after `down -v`").await?;
    eprintln!(
        "xtask: compose: down -v in {}s, no container, volume or network of {project} left",
        secs(started)
    );
    Ok(())
}

/// Runs a command with its output shown; returns its exit status.
async fn stream(args: &[&str]) -> Result<ExitCode, DockerCheckError> {
    eprintln!("xtask: {}", args.join(" "));
    let status = command(args)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .await
        .map_err(|e| DockerCheckError::Spawn {
            program: args.join(" "),
            source: e,
        })?;
    Ok(exit_code(status))
}

/// One container as `docker compose ps` shows it.
#[derive(Debug)]
struct Container {
    service: String,
    state: String,
    health: String,
    exit_code: i64,
}

/// The project's containers (with `profile`'s services when given).
async fn ps(profile: Option<&str>) -> Result<Vec<Container>, DockerCheckError> {
    let mut args = vec!["docker", "compose"];
    if let Some(profile) = profile {
        args.extend(["--profile", profile]);
    }
    args.extend(["ps", "-a", "--format", "json"]);
    let text = output(&args).await?;
    // One object per line (Compose 2.21 and later), or one array before.
    let values: Vec<Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).unwrap_or_default()
    } else {
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    Ok(values
        .iter()
        .map(|v| Container {
            service: v["Service"].as_str().unwrap_or_default().to_owned(),
            state: v["State"].as_str().unwrap_or_default().to_owned(),
            health: v["Health"].as_str().unwrap_or_default().to_owned(),
            exit_code: v["ExitCode"].as_i64().unwrap_or(-1),
        })
        .collect())
}

/// Waits until every long-running container is healthy and every one-shot
/// one exited with 0 (`profile`'s services included when given); returns
/// the healthy services.
async fn wait_healthy(profile: Option<&str>) -> Result<Vec<String>, DockerCheckError> {
    let services = until(
        "every compose service healthy",
        HEALTHY_WITHIN,
        POLL,
        None,
        || async move {
            let containers = match ps(profile).await {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => return Probe::NotYet("no containers yet".into()),
                Err(e) => return Probe::NotYet(e.to_string()),
            };
            let mut waiting = Vec::new();
            for c in &containers {
                match (c.state.as_str(), c.health.as_str()) {
                    (_, "healthy") => {}
                    ("exited", "") if c.exit_code == 0 => {}
                    ("exited", _) if c.exit_code != 0 => {
                        return Probe::Failed(devinfra::InfraError::Config(format!(
                            "{} exited with status {}",
                            c.service, c.exit_code
                        )));
                    }
                    (state, health) => waiting.push(format!("{} {state} {health}", c.service)),
                }
            }
            if waiting.is_empty() {
                Probe::Ready(
                    containers
                        .iter()
                        .filter(|c| c.health == "healthy")
                        .map(|c| c.service.clone())
                        .collect(),
                )
            } else {
                Probe::NotYet(waiting.join(", "))
            }
        },
    )
    .await?;
    Ok(services)
}

/// shipping-service answers on 8083, the one port the README and the pages
/// use (a published port range let the engine move it on each recreate).
async fn shipping_on_its_own_port() -> Result<(), DockerCheckError> {
    let port = output(&["docker", "compose", "port", "shipping-service", "8083"]).await?;
    if port.trim() != "127.0.0.1:8083" {
        return Err(DockerCheckError::Check(format!(
            "shipping-service is published on {}, not 127.0.0.1:8083",
            port.trim()
        )));
    }
    eprintln!("xtask: compose: shipping-service is published on 127.0.0.1:8083");
    Ok(())
}

/// The README's order: placed with its curl command, then its invoice and
/// shipment, then its cancel reaching both. Returns the order's id.
async fn readmes_order(readme: &str) -> Result<String, DockerCheckError> {
    let started = Instant::now();
    let place = readme::command(readme, "curl -si http://127.0.0.1:8081/orders -H")?;
    let answer = shell(&place, &[]).await?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(answer.as_str(), |(_, body)| body);
    let order = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            DockerCheckError::Check(format!("the README's order was not placed: {answer}"))
        })?;
    eprintln!("xtask: compose: the README's curl placed order {order}");

    let lines = [
        readme::command(
            readme,
            "curl -s \"http://127.0.0.1:8082/invoices?order_id=$ORDER\"",
        )?,
        readme::command(
            readme,
            "curl -s \"http://127.0.0.1:8083/shipments?order_id=$ORDER\"",
        )?,
    ];
    reaches_both(&lines, &order, ["open", "pending"]).await?;
    eprintln!(
        "xtask: compose: invoiced and shipped {}s after it was placed",
        secs(started)
    );

    let started = Instant::now();
    let cancel = readme::command(
        readme,
        "curl -s -X POST http://127.0.0.1:8081/orders/$ORDER/cancel",
    )?;
    shell(&cancel, &[("ORDER", &order)]).await?;
    reaches_both(&lines, &order, ["cancelled", "cancelled"]).await?;
    eprintln!(
        "xtask: compose: the cancel reached both {}s after it was sent",
        secs(started)
    );
    Ok(order)
}

/// Waits until the README's invoice and shipment commands (`lines`) each
/// list one item for `order`, with the status `want`.
async fn reaches_both(
    lines: &[String; 2],
    order: &str,
    want: [&str; 2],
) -> Result<(), DockerCheckError> {
    let what = format!("the order's invoice {} and shipment {}", want[0], want[1]);
    until(&what, FLOW_WITHIN, POLL, None, || async move {
        let mut seen = Vec::new();
        for line in lines {
            match shell(line, &[("ORDER", order)]).await {
                Ok(answer) => seen.push(only_item_status(&answer)),
                Err(e) => return Probe::NotYet(e.to_string()),
            }
        }
        if seen.iter().zip(want).all(|(s, w)| s.as_deref() == Some(w)) {
            Probe::Ready(())
        } else {
            Probe::NotYet(format!("saw {seen:?}"))
        }
    })
    .await?;
    Ok(())
}

/// The status of the one item of a list answer (`{ "items": [...] }`).
fn only_item_status(answer: &str) -> Option<String> {
    let list: Value = serde_json::from_str(answer).ok()?;
    match list["items"].as_array()?.as_slice() {
        [item] => item["status"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// Each service's start page, and the order's page, answer 200.
async fn pages_answer(order: &str) -> Result<(), DockerCheckError> {
    for url in [
        "http://127.0.0.1:8081/".to_owned(),
        format!("http://127.0.0.1:8081/order/{order}"),
        "http://127.0.0.1:8082/".to_owned(),
        "http://127.0.0.1:8083/".to_owned(),
    ] {
        let code = output(&["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", &url]).await?;
        if code.trim() != "200" {
            return Err(DockerCheckError::Check(format!(
                "{url} answered {}",
                code.trim()
            )));
        }
    }
    eprintln!("xtask: compose: the pages answer");
    Ok(())
}

/// The README's scale-out: one more shipping instance, in shipping's group,
/// and the orders topic's partitions split between the two.
async fn scale_out(readme: &str) -> Result<(), DockerCheckError> {
    let started = Instant::now();
    let up = readme::command(
        readme,
        &format!("docker compose --profile {SCALE_PROFILE} up -d"),
    )?;
    shell(&up, &[]).await?;
    wait_healthy(Some(SCALE_PROFILE)).await?;
    let describe = readme::without_tty(&readme::command(
        readme,
        "docker compose exec kafka /opt/kafka/bin/kafka-consumer-groups.sh",
    )?);
    let members = until(
        "shipping's partitions split between two instances",
        SCALE_WITHIN,
        POLL,
        None,
        || {
            let describe = describe.clone();
            async move {
                let table = match shell(&describe, &[]).await {
                    Ok(table) => table,
                    Err(e) => return Probe::NotYet(e.to_string()),
                };
                let members = partitions_per_member(&table, topics::ORDERS);
                let half = usize::try_from(topics::ORDERS_PARTITIONS / 2).unwrap_or(0);
                if members.len() == 2 && members.values().all(|&n| n == half) {
                    Probe::Ready(members)
                } else if members.is_empty() {
                    // No member row at all: say what the tool printed instead.
                    Probe::NotYet(format!(
                        "no member holds a partition; the tool printed: {}",
                        table.trim()
                    ))
                } else {
                    Probe::NotYet(format!("partitions per member: {members:?}"))
                }
            }
        },
    )
    .await?;
    eprintln!(
        "xtask: compose: {EXTRA_SHIPPING} joined; shipping's partitions split {:?} in {}s",
        members.values().collect::<Vec<_>>(),
        secs(started)
    );
    Ok(())
}

/// From `kafka-consumer-groups.sh --describe`: how many of `topic`'s
/// partitions each member (CONSUMER-ID) holds; unassigned ones (`-`) aside.
fn partitions_per_member(table: &str, topic: &str) -> BTreeMap<String, usize> {
    let mut members = BTreeMap::new();
    let mut header: Vec<&str> = Vec::new();
    for line in table.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.first() == Some(&"GROUP") {
            header = columns;
            continue;
        }
        let column = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| columns.get(i).copied())
        };
        if let (Some(t), Some(member)) = (column("TOPIC"), column("CONSUMER-ID"))
            && t == topic
            && member != "-"
        {
            *members.entry(member.to_owned()).or_insert(0) += 1;
        }
    }
    members
}

/// The README's topic commands: the console consumer on `orders` shows the
/// order's records with their keys and headers, the one on a dead-letter
/// topic runs, and the record size limit is raised.
async fn topic_commands(readme: &str, order: &str) -> Result<(), DockerCheckError> {
    let consumers: Vec<String> = readme::commands(
        readme,
        "docker compose exec kafka /opt/kafka/bin/kafka-console-consumer.sh",
    )
    .iter()
    .map(|c| readme::without_tty(c))
    .collect();
    let [orders, dead_letters] = consumers.as_slice() else {
        return Err(DockerCheckError::Check(format!(
            "the README's Docker section should show two console consumers (orders, a dead-letter topic), not {}",
            consumers.len()
        )));
    };
    // The README's commands run until Ctrl-C; here until the order's two
    // records (placed, cancelled) have been read, or a quiet topic times out.
    let records = shell(
        &format!("{orders} --max-messages 2 --timeout-ms 60000"),
        &[],
    )
    .await?;
    let header = format!("{}:", headers::EVENT_TYPE);
    if !(records.contains(order) && records.contains(&header)) {
        return Err(DockerCheckError::Check(format!(
            "the console consumer did not show the order's key {order} and its {header} header: {records}"
        )));
    }
    shell(&format!("{dead_letters} --timeout-ms 10000"), &[]).await?;
    // The record-size example, not the README's other kafka-configs
    // commands (the credential rotation of "Security model" comes first).
    let alter = readme::commands(
        readme,
        "docker compose exec kafka /opt/kafka/bin/kafka-configs.sh",
    )
    .into_iter()
    .find(|c| c.contains("--entity-type topics") && c.contains("max.message.bytes"))
    .map(|c| readme::without_tty(&c))
    .ok_or_else(|| {
        DockerCheckError::Check(
            "README.md has no kafka-configs command raising a topic's max.message.bytes".into(),
        )
    })?;
    shell(&alter, &[]).await?;
    let described = shell(
        &format!(
            "{} --describe",
            alter.split(" --alter").next().unwrap_or_default()
        )
        .replace(
            " --describe",
            " --describe --entity-type topics --entity-name orders",
        ),
        &[],
    )
    .await?;
    if !described.contains("max.message.bytes=2097152") {
        return Err(DockerCheckError::Check(format!(
            "the README's kafka-configs command did not raise max.message.bytes: {described}"
        )));
    }
    eprintln!("xtask: compose: the README's topic commands work");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_partitions_are_counted_from_the_describe_table() {
        let table = "\
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                  HOST            CLIENT-ID
shipping        orders          0          1               1               0               rdkafka-a                                    /172.18.0.6     rdkafka
shipping        orders          1          0               0               0               rdkafka-a                                    /172.18.0.6     rdkafka
shipping        orders          2          0               0               0               rdkafka-b                                    /172.18.0.7     rdkafka
shipping        orders.retry    0          0               0               0               rdkafka-b                                    /172.18.0.7     rdkafka
shipping        orders          3          0               0               0               -                                            -               -
";
        let members = partitions_per_member(table, "orders");
        assert_eq!(
            members.into_iter().collect::<Vec<_>>(),
            [("rdkafka-a".to_owned(), 2), ("rdkafka-b".to_owned(), 1)]
        );
    }

    #[test]
    fn only_one_item_has_a_status() {
        assert_eq!(
            only_item_status(r#"{"items":[{"status":"open"}],"next_cursor":null}"#).as_deref(),
            Some("open")
        );
        assert_eq!(only_item_status(r#"{"items":[]}"#), None);
        assert_eq!(only_item_status("not json"), None);
    }
}
