//! A single-node Kafka of one test's own, which it may stop and start
//! without disturbing the other tests: a native one, also where the rest
//! runs in containers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use devinfra::process::{self, Signal};
use uuid::Uuid;

/// A private one-node cluster in a directory of its own.
pub struct PrivateKafka {
    /// The cluster, for stopping and starting its node.
    pub cluster: devinfra::KafkaCluster,
    dir: PathBuf,
}

impl PrivateKafka {
    /// Starts it; `test` names the test for the one line a machine without
    /// a JDK and Maven gets instead.
    pub async fn start(test: &str) -> anyhow::Result<Self> {
        devinfra::prereq::native_test(
            test,
            "it stops and restarts a broker of its own",
            devinfra::prereq::NativeNeeds::Kafka,
        )
        .await?;
        let runtime = Arc::new(devinfra::DevInfra::from_env()?.kafka_runtime().await?);
        let dir = std::env::temp_dir().join(format!("e2e-kafka-{}", Uuid::new_v4().simple()));
        let mut cluster =
            devinfra::KafkaCluster::new(runtime, &dir, devinfra::NodePorts::free(1)?)?
                .kill_on_drop(true);
        cluster.start().await?;
        Ok(PrivateKafka { cluster, dir })
    }

    /// Its bootstrap servers.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Stops its node (SIGTERM, a controlled shutdown) and starts it again.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let node = self.cluster.broker_mut(1).context("node 1")?;
        node.stop().await?;
        node.start().await?;
        Ok(())
    }

    /// Freezes its node (SIGSTOP) for `pause`, then lets it go on (SIGCONT),
    /// as a long pause of its JVM or of its machine would.
    pub async fn freeze(&mut self, pause: Duration) -> anyhow::Result<()> {
        let pid = self
            .cluster
            .broker_mut(1)
            .and_then(|node| node.pid())
            .context("node 1 is not running")?;
        process::send_signal(pid, Signal::Stop)?;
        tokio::time::sleep(pause).await;
        process::send_signal(pid, Signal::Cont)?;
        Ok(())
    }

    /// Cuts its broker off from its controller for `pause` (the kernel
    /// drops every packet to the controller's port; needs root and
    /// iptables), while the broker goes on serving clients: its heartbeats
    /// fail, the controller fences it once its session (9 s) has passed, and
    /// it stays fenced until its heartbeats get through again.
    pub async fn cut_from_controller(&mut self, pause: Duration) -> anyhow::Result<()> {
        let port = self
            .cluster
            .broker_mut(1)
            .context("node 1")?
            .ports()
            .controller
            .to_string();
        let rule = [
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "--dport",
            &port,
            "-j",
            "DROP",
        ];
        iptables("-I", &rule)?;
        tokio::time::sleep(pause).await;
        iptables("-D", &rule)
    }

    /// Stops it and removes its directory.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.cluster.stop().await?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Runs `iptables <action> <rule>`.
fn iptables(action: &str, rule: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new("iptables")
        .arg(action)
        .args(rule)
        .status()
        .context("running iptables")?;
    anyhow::ensure!(
        status.success(),
        "iptables {action} {}: {status}",
        rule.join(" ")
    );
    Ok(())
}
