//! The trace backend: a Zipkin server as a plain process.
//!
//! Zipkin's server is one executable jar on Maven Central, resolved from
//! `infra/zipkin/pom.xml` like Kafka's jars, and run on the system JDK with
//! in-memory storage on loopback: its UI is `http://127.0.0.1:<port>/zipkin/`
//! and its query API `/api/v2/...`.
//!
//! The services export their spans with OpenTelemetry over OTLP/HTTP, which
//! Zipkin's released server does not read; the `otlp-receiver` crate
//! (`tools/otlp-receiver`) stands in front of it and forwards them in
//! Zipkin's model. `cargo xtask up --tracing` runs both, on [`DEFAULT_PORT`]
//! and [`DEFAULT_OTLP_PORT`]. docker-compose.yml runs Jaeger instead, which
//! reads OTLP itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::kafka::maven_classpath;
use crate::process::{self, PidFile, Signal};
use crate::{InfraError, prereq};

/// Where the pom lives, relative to the workspace root.
const POM: &str = "infra/zipkin/pom.xml";

/// How long Zipkin may take to answer `/health` (a JVM start on a busy 2-core machine).
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The default port of Zipkin's UI and API (`ZIPKIN_PORT`).
pub const DEFAULT_PORT: u16 = 9411;

/// The default port of the OTLP/HTTP receiver in front of Zipkin
/// (`OTLP_PORT`), OTLP's own default.
pub const DEFAULT_OTLP_PORT: u16 = 4318;

/// A Zipkin server started by us, in `dir`, on a loopback port.
#[derive(Debug)]
pub struct Zipkin {
    port: u16,
    pid: u32,
    pid_file: PidFile,
    log: PathBuf,
    jar: PathBuf,
    child: Option<Child>,
}

impl Zipkin {
    /// The pid file of a Zipkin in `dir`.
    fn pid_file(dir: &Path) -> PidFile {
        PidFile::new(dir.join("zipkin.pid"))
    }

    /// Resolves the jar, starts Zipkin on `port` with its files in `dir`
    /// (`zipkin.log`, `zipkin.pid`, the cached jar path), detached, and
    /// returns once `/health` answers; a Zipkin already running there is
    /// reused.
    pub async fn start(workspace_root: &Path, dir: &Path, port: u16) -> Result<Zipkin, InfraError> {
        std::fs::create_dir_all(dir).map_err(|e| InfraError::io("create directory", dir, e))?;
        let jar = PathBuf::from(
            maven_classpath(
                &workspace_root.join(POM),
                &dir.join("jar"),
                "the Zipkin server",
            )
            .await?,
        );
        let log = dir.join("zipkin.log");
        let pid_file = Self::pid_file(dir);
        if let Some(pid) = pid_file.read().filter(|&pid| is_zipkin(pid, &jar)) {
            let running = Zipkin {
                port,
                pid,
                pid_file,
                log,
                jar,
                child: None,
            };
            running.wait_ready().await?;
            return Ok(running);
        }
        process::ensure_port_free(port, "Zipkin", Some("ZIPKIN_PORT"))?;
        let java = prereq::java()
            .await
            .map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
        let (out, err) = process::append_log(&log)?;
        let mut command = std::process::Command::new(&java);
        command
            .args(["-Xms128m", "-Xmx256m", "-Djava.awt.headless=true", "-jar"])
            .arg(&jar)
            .arg(format!("--armeria.ports[0].port={port}"))
            .arg("--armeria.ports[0].ip=127.0.0.1")
            .arg("--armeria.ports[0].protocols=http")
            .env("STORAGE_TYPE", "mem")
            .env("COLLECTOR_SCRIBE_ENABLED", "false")
            // Zipkin turns on its Kafka collector when it sees
            // KAFKA_BOOTSTRAP_SERVERS, which the tests' environment sets for
            // the services; the brokers take authenticated clients only, and
            // Zipkin's collector, refused, stops the server. It collects
            // over HTTP here, nothing else.
            .env("COLLECTOR_KAFKA_ENABLED", "false")
            .env_remove("KAFKA_BOOTSTRAP_SERVERS")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        process::detach(&mut command);
        let child = command.spawn().map_err(|e| InfraError::Spawn {
            program: java.display().to_string(),
            source: e,
        })?;
        let mut zipkin = Zipkin {
            port,
            pid: child.id(),
            pid_file,
            log,
            jar,
            child: Some(child),
        };
        zipkin.pid_file.write(zipkin.pid)?;
        if let Err(e) = zipkin.wait_ready().await {
            let _ = zipkin.stop().await;
            return Err(e);
        }
        Ok(zipkin)
    }

    /// The Zipkin whose pid file is in `dir`, if it runs.
    pub fn find(dir: &Path, port: u16) -> Option<Zipkin> {
        let jar = std::fs::read_to_string(dir.join("jar").join("classpath.txt")).ok()?;
        let jar = PathBuf::from(jar.trim());
        let pid_file = Self::pid_file(dir);
        let pid = pid_file.read().filter(|&pid| is_zipkin(pid, &jar))?;
        Some(Zipkin {
            port,
            pid,
            pid_file,
            log: dir.join("zipkin.log"),
            jar,
            child: None,
        })
    }

    /// `http://127.0.0.1:<port>`: the API's base and, under `/zipkin/`, the UI.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    async fn wait_ready(&self) -> Result<(), InfraError> {
        let health = format!("{}/health", self.url());
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            let ok = client
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if !process::is_alive(self.pid) || tokio::time::Instant::now() >= deadline {
                return Err(InfraError::Config(format!(
                    "Zipkin (pid {}) did not answer {health} within {}s; see {}",
                    self.pid,
                    READY_TIMEOUT.as_secs(),
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s) and removes its pid file.
    pub async fn stop(&mut self) -> Result<(), InfraError> {
        let jar = self.jar.clone();
        let pid = self.pid;
        process::terminate_owned(
            "Zipkin",
            pid,
            || is_zipkin(pid, &jar),
            Signal::Term,
            Duration::from_secs(10),
            self.child.as_mut(),
        )
        .await?;
        self.pid_file.remove()
    }
}

/// Whether `pid` runs Zipkin's `jar`.
fn is_zipkin(pid: u32, jar: &Path) -> bool {
    process::command_line(pid).is_some_and(|line| line.contains(&*jar.to_string_lossy()))
}
