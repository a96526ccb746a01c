//! The machine the numbers come from: CPU, cores, memory, kernel, and the
//! versions of everything measured. Absolute numbers mean little without it.

use std::path::Path;

use devinfra::prereq;

/// A description of this machine and the software under test.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) os: String,
    pub(crate) rustc: String,
    pub(crate) java: String,
    pub(crate) postgres: String,
    pub(crate) kafka: String,
    pub(crate) librdkafka: String,
}

impl Machine {
    /// Reads /proc and asks each tool for its version; `kafka` is the broker's release.
    pub(crate) async fn describe(kafka: &str) -> Self {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown".into());
        let postgres = match prereq::postgres_bin_dir() {
            Ok(bin) => first_line(&bin.join("postgres"), "--version").await,
            Err(_) => "unknown".into(),
        };
        let java = match prereq::java().await {
            Ok(java) => first_line(&java, "-version").await,
            Err(_) => "unknown".into(),
        };
        let (_, librdkafka) = rdkafka::util::get_rdkafka_version();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os,
            rustc: first_line(Path::new("rustc"), "--version").await,
            java,
            postgres,
            kafka: kafka.to_owned(),
            librdkafka,
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first line `program arg` prints (stdout, else stderr, as `java -version` does).
async fn first_line(program: &Path, arg: &str) -> String {
    let Ok(output) = tokio::process::Command::new(program)
        .arg(arg)
        .output()
        .await
    else {
        return "unknown".into();
    };
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or("unknown")
        .trim()
        .to_owned()
}
