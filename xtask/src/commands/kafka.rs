//! `cargo xtask topic watch` and `cargo xtask kafka <tool>`: Kafka's own
//! command-line tools, run natively on the classpath the broker runs on (the
//! twins of the README's `docker compose exec kafka ...` commands).

use std::process::ExitCode;

use devinfra::InfraError;
use devinfra::infra::DevInfra;
use devinfra::interrupts::{Interrupts, interrupted_by, wait_passing_on};
use devinfra::kafka::{KafkaTool, access, watch_args};

use super::exit_code;

/// Prints the records of `topic` (key, headers, value) as they arrive, from
/// the start with `from_beginning`, until Ctrl-C.
pub async fn watch_topic(topic: &str, from_beginning: bool) -> Result<ExitCode, InfraError> {
    let infra = DevInfra::from_env()?;
    let bootstrap = infra.current_settings()?.kafka_bootstrap_servers;
    run(
        &infra,
        KafkaTool::ConsoleConsumer,
        watch_args(&bootstrap, topic, from_beginning),
    )
    .await
}

/// Runs `tool` with `args`, adding `--bootstrap-server` of the local cluster
/// unless `args` name one; its exit status is ours.
pub async fn kafka_tool(tool: KafkaTool, args: Vec<String>) -> Result<ExitCode, InfraError> {
    let infra = DevInfra::from_env()?;
    let mut all = Vec::with_capacity(args.len() + 2);
    if !args.iter().any(|a| a.starts_with("--bootstrap-server")) {
        all.push("--bootstrap-server".to_owned());
        all.push(infra.current_settings()?.kafka_bootstrap_servers);
    }
    all.extend(args);
    run(&infra, tool, all).await
}

async fn run(
    infra: &DevInfra,
    tool: KafkaTool,
    mut args: Vec<String>,
) -> Result<ExitCode, InfraError> {
    let mut interrupts = Interrupts::install()?;
    let runtime = infra.kafka_runtime().await?;
    // The brokers take only authenticated clients: the tools log in as the
    // administrative principal, unless the arguments name a client config.
    let configured = args.iter().any(|a| {
        ["--command-config", "--consumer.config", "--producer.config"]
            .iter()
            .any(|option| a.starts_with(option))
    });
    if !configured {
        let properties = infra.kafka_dir().join("admin.properties");
        std::fs::write(&properties, access::admin_client_properties())
            .map_err(|e| InfraError::io("write", &properties, e))?;
        args.push("--command-config".to_owned());
        args.push(properties.display().to_string());
    }
    let mut command = tokio::process::Command::from(runtime.tool_command(tool));
    command.args(&args);
    eprintln!("xtask: {} {}", tool.script(), args.join(" "));
    let mut child = command.spawn().map_err(|e| InfraError::Spawn {
        program: tool.script().to_owned(),
        source: e,
    })?;
    let (status, interrupted) = wait_passing_on(&mut child, tool.script(), &mut interrupts).await?;
    Ok(match interrupted {
        // The console consumer runs until it is interrupted: that is its normal end.
        Some(_) if tool == KafkaTool::ConsoleConsumer => ExitCode::SUCCESS,
        Some(signal) => interrupted_by(signal),
        None => exit_code(status),
    })
}
