//! `cargo xtask up|down|status`: the infrastructure and the three services together.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use devinfra::infra::{DevInfra, port_from_env};
use devinfra::process::{self, PidFile, Signal};
use devinfra::stack::{Profile, ServiceProcess, Stack, StackError, build_binary, report_started};
use devinfra::zipkin::{self, Zipkin};
use devinfra::{InfraError, workspace_root};

use super::infra::{print_settings, print_status};

/// Starts the infrastructure (`nodes` Kafka nodes) and the three services
/// unless they run, and returns once all are ready; prints the settings and
/// the services' URLs as `NAME=value` on stdout, and the pages to open on stderr.
///
/// With `tracing`, Zipkin and the OTLP receiver in front of it are started
/// first (see `devinfra::zipkin` and the `otlp-receiver` crate) and the services get
/// `OTEL_EXPORTER_OTLP_ENDPOINT`; `ZIPKIN_URL` is printed too. Services that
/// already run keep their environment: `down` first to switch tracing on.
pub async fn up(nodes: usize, profile: Profile, tracing: bool) -> Result<(), StackError> {
    let infra = DevInfra::from_env()?;
    let report = infra.up(nodes).await?;
    let mut stack = Stack::new(&infra, &report.settings)?.with_profile(profile);
    let mut zipkin_url = None;
    if tracing {
        let (zipkin, otlp) = start_tracing(&infra, profile).await?;
        stack = stack.with_env(vec![(
            platform::telemetry::OTLP_ENDPOINT_VAR.to_owned(),
            otlp,
        )]);
        zipkin_url = Some(zipkin);
    }
    let services = stack.up().await?;
    report_started(&services);
    print_settings(&report.settings)?;
    print_service_urls(&services)?;
    eprintln!("xtask: the pages, to open in a browser:");
    for (what, url) in stack.page_urls() {
        eprintln!("  {what:<10} {url}");
    }
    if let Some(url) = zipkin_url {
        println!("ZIPKIN_URL={url}/zipkin/");
    }
    Ok(())
}

/// Where the trace backend keeps its files: `<infra dir>/zipkin`.
fn tracing_dir(infra: &DevInfra) -> PathBuf {
    infra.dir().join("zipkin")
}

/// The OTLP receiver's package and binary (`tools/otlp-receiver`).
const RECEIVER: &str = "otlp-receiver";

/// Starts Zipkin and the OTLP receiver (its binary built with `profile`, like
/// the services, and run detached) unless they run; returns Zipkin's URL and
/// the receiver's.
async fn start_tracing(infra: &DevInfra, profile: Profile) -> Result<(String, String), StackError> {
    let dir = tracing_dir(infra);
    let zipkin_port = port_from_env("ZIPKIN_PORT", zipkin::DEFAULT_PORT)?;
    let otlp_port = port_from_env("OTLP_PORT", zipkin::DEFAULT_OTLP_PORT)?;
    let zipkin = Zipkin::start(&workspace_root(), &dir, zipkin_port).await?;
    eprintln!(
        "xtask: Zipkin runs (pid {}), log {}",
        zipkin.pid(),
        zipkin.log().display()
    );
    let otlp = format!("http://127.0.0.1:{otlp_port}");
    let pid_file = PidFile::new(dir.join("otlp-receiver.pid"));
    let running = pid_file.read().is_some_and(is_receiver);
    if !running {
        process::ensure_port_free(otlp_port, "the OTLP receiver", Some("OTLP_PORT"))?;
        let exe = build_binary(RECEIVER, profile).await?;
        let log = dir.join("otlp-receiver.log");
        let (out, err) = process::append_log(&log)?;
        let mut command = std::process::Command::new(&exe);
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{otlp_port}"))
            .arg("--zipkin")
            .arg(zipkin.url())
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        process::detach(&mut command);
        let child = command.spawn().map_err(|e| InfraError::Spawn {
            program: exe.display().to_string(),
            source: e,
        })?;
        pid_file.write(child.id())?;
        eprintln!(
            "xtask: OTLP receiver on {otlp} (pid {}), forwarding to Zipkin",
            child.id()
        );
    }
    Ok((zipkin.url(), otlp))
}

/// Whether `pid` is an OTLP receiver of ours (its binary's path names it).
fn is_receiver(pid: u32) -> bool {
    process::command_line(pid).is_some_and(|line| line.contains(RECEIVER))
}

/// Stops the OTLP receiver and Zipkin, if they run.
async fn stop_tracing(infra: &DevInfra) -> Result<(), StackError> {
    let dir = tracing_dir(infra);
    let pid_file = PidFile::new(dir.join("otlp-receiver.pid"));
    if let Some(pid) = pid_file.read() {
        process::terminate_owned(
            "the OTLP receiver",
            pid,
            || is_receiver(pid),
            Signal::Term,
            Duration::from_secs(5),
            None,
        )
        .await?;
        pid_file.remove()?;
    }
    if let Some(mut zipkin) = Zipkin::find(&dir, zipkin::DEFAULT_PORT) {
        zipkin.stop().await?;
        eprintln!("xtask: stopped Zipkin");
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
    stop_tracing(&infra).await?;
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
        .filter(|s| s.name() == s.service().name)
        .try_for_each(|s| writeln!(out, "{}={}", s.service().url_var(), s.base_url()))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e).into())
}
