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
        let (cpu, memory_bytes) = cpu_and_memory();
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
            memory_gib: memory_bytes as f64 / 1024.0 / 1024.0 / 1024.0,
            kernel: rustix::system::uname()
                .release()
                .to_string_lossy()
                .trim()
                .to_owned(),
            os,
            rustc: first_line(Path::new("rustc"), "--version").await,
            java,
            postgres,
            kafka: kafka.to_owned(),
            librdkafka,
        }
    }
}

/// The CPU's model name and the memory in bytes, from procfs ("unknown" and 0 without it).
fn cpu_and_memory() -> (String, u64) {
    #[cfg(target_os = "linux")]
    {
        use procfs::Current as _;
        let cpu = procfs::CpuInfo::current()
            .ok()
            .and_then(|info| info.model_name(0).map(|model| model.trim().to_owned()));
        let memory = procfs::Meminfo::current().map_or(0, |info| info.mem_total);
        (cpu.unwrap_or_else(|| "unknown".into()), memory)
    }
    #[cfg(not(target_os = "linux"))]
    {
        ("unknown".into(), 0)
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
