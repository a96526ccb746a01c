//! The tools the infrastructure runs on, found before anything starts.
//!
//! Without Docker, Kafka needs a JDK (17 or newer) and Maven to fetch the broker
//! jars, and PostgreSQL needs its server binaries. (Building the Kafka client,
//! librdkafka, needs only the C toolchain cargo already uses.) Each check that
//! fails becomes one line naming the tool and the command that installs it on
//! this platform.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::InfraError;
use crate::error::Missing;

/// The oldest Java release the broker supports.
pub const MIN_JAVA: u32 = 17;

/// The PostgreSQL major version suggested for installation on macOS.
const BREW_POSTGRES: &str = "postgresql@16";

/// The tools found on this machine.
#[derive(Debug, Clone)]
pub struct Prerequisites {
    /// The `java` launcher (from `JAVA_HOME` when set).
    pub java: PathBuf,
    /// The `mvn` launcher.
    pub maven: PathBuf,
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    pub postgres_bin: PathBuf,
}

/// Checks every prerequisite and reports all that are missing at once.
pub async fn check() -> Result<Prerequisites, InfraError> {
    let mut missing = Vec::new();
    let java = java().await.map_err(|m| missing.push(m)).ok();
    let maven = maven().map_err(|m| missing.push(m)).ok();
    let postgres_bin = postgres_bin_dir().map_err(|m| missing.push(m)).ok();
    if let Err(m) = root_can_run_postgres().await {
        missing.push(m);
    }
    match (java, maven, postgres_bin) {
        (Some(java), Some(maven), Some(postgres_bin)) if missing.is_empty() => Ok(Prerequisites {
            java,
            maven,
            postgres_bin,
        }),
        _ => Err(InfraError::MissingPrerequisites(missing)),
    }
}

/// What a test that runs the infrastructure as native processes needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeNeeds {
    /// Kafka from the Maven-resolved jars: Java and Maven.
    Kafka,
    /// Everything `cargo xtask infra up` needs: Kafka's and PostgreSQL's.
    KafkaAndPostgres,
}

/// A test that runs Kafka (and PostgreSQL) natively cannot run on this
/// machine. Displays as one line: the test, why it is native even where
/// Docker runs, and what to install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{test} runs {} as native processes, also on a machine with Docker ({why}); {}. \
     Without them, leave it out as the README's \"Tests with testcontainers\" shows",
    needs_words(*.needs), .missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
)]
pub struct NativeTestUnavailable {
    /// The test's name.
    pub test: String,
    /// Why it cannot use containers.
    pub why: String,
    /// What it runs natively.
    pub needs: NativeNeeds,
    /// What this machine lacks.
    pub missing: Vec<Missing>,
}

fn needs_words(needs: NativeNeeds) -> &'static str {
    match needs {
        NativeNeeds::Kafka => "Kafka",
        NativeNeeds::KafkaAndPostgres => "Kafka and PostgreSQL",
    }
}

/// Checks, before a test starts native infrastructure, that this machine has
/// what `needs` names, so a machine with only Docker gets one line saying
/// what the test is and what to install instead of a failure deep inside it.
pub async fn native_test(
    test: &str,
    why: &str,
    needs: NativeNeeds,
) -> Result<(), NativeTestUnavailable> {
    let missing = match needs {
        NativeNeeds::Kafka => {
            let mut missing = Vec::new();
            if let Err(m) = java().await {
                missing.push(m);
            }
            if let Err(m) = maven() {
                missing.push(m);
            }
            missing
        }
        NativeNeeds::KafkaAndPostgres => match check().await {
            Ok(_) => Vec::new(),
            Err(InfraError::MissingPrerequisites(missing)) => missing,
            Err(other) => vec![Missing {
                what: format!("a usable toolchain ({other})"),
                install: "see the README's Prerequisites".into(),
            }],
        },
    };
    if missing.is_empty() {
        Ok(())
    } else {
        Err(NativeTestUnavailable {
            test: test.to_owned(),
            why: why.to_owned(),
            needs,
            missing,
        })
    }
}

/// The `java` launcher, if it is Java [`MIN_JAVA`] or newer.
pub async fn java() -> Result<PathBuf, Missing> {
    let from_home = env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("java"))
        .filter(|p| p.is_file());
    let Some(java) = from_home.or_else(|| find_program("java")) else {
        return Err(missing_java("Java 17 or newer (java)"));
    };
    let output = tokio::process::Command::new(&java)
        .arg("-version")
        .output()
        .await
        .map_err(|_| missing_java("a working Java 17 or newer (java -version failed)"))?;
    // `java -version` writes to stderr.
    let text = String::from_utf8_lossy(&output.stderr);
    match java_major(&text) {
        Some(major) if major >= MIN_JAVA => Ok(java),
        Some(major) => Err(missing_java(&format!(
            "Java 17 or newer ({} is Java {major})",
            java.display()
        ))),
        None => Err(missing_java("Java 17 or newer (cannot read java -version)")),
    }
}

/// The `mvn` launcher.
pub fn maven() -> Result<PathBuf, Missing> {
    find_program("mvn").ok_or_else(|| Missing {
        what: "Maven (mvn), which fetches the Kafka broker jars".into(),
        install: install_hint("maven", "maven"),
    })
}

/// Where the browser tests look for Chromium (`CHROMIUM` overrides).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where the browser tests look for its WebDriver (`CHROMEDRIVER` overrides).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The Chromium binary the browser tests drive: `CHROMIUM`, else [`CHROMIUM`].
pub fn chromium() -> Result<PathBuf, Missing> {
    browser_binary("CHROMIUM", CHROMIUM, "Chromium")
}

/// The WebDriver the browser tests talk to: `CHROMEDRIVER`, else [`CHROMEDRIVER`].
pub fn chromedriver() -> Result<PathBuf, Missing> {
    browser_binary("CHROMEDRIVER", CHROMEDRIVER, "Chromium's WebDriver")
}

fn browser_binary(variable: &str, default: &str, what: &str) -> Result<PathBuf, Missing> {
    let path = env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    browser_binary_at(path, variable, what)
}

fn browser_binary_at(path: PathBuf, variable: &str, what: &str) -> Result<PathBuf, Missing> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Missing {
            what: format!(
                "{what} at {} (the browser tests; or set {variable} to the binary)",
                path.display()
            ),
            // Both or neither: chromium-driver is built for its chromium.
            install: "apt-get install -y chromium chromium-driver".into(),
        })
    }
}

/// What `cargo xtask test` needs beyond the infrastructure's prerequisites:
/// Chromium and its driver for the browser tests, Python 3 with `venv` and
/// npm to install the contract tools (Schemathesis, the AsyncAPI CLI) with.
/// Checked before anything slow starts, and reported all at once.
pub async fn test_tools() -> Vec<Missing> {
    let mut missing = Vec::new();
    for found in [chromium(), chromedriver()] {
        if let Err(m) = found {
            missing.push(m);
        }
    }
    if let Err(m) = python_venv().await {
        missing.push(m);
    }
    if find_program("npm").is_none() {
        missing.push(Missing {
            what: "npm, which installs the AsyncAPI CLI".into(),
            install: install_hint("npm", "node"),
        });
    }
    if find_program("go").is_none() {
        missing.push(Missing {
            what: "Go 1.21 or newer (go), which builds helm and kubeconform for the chart's checks"
                .into(),
            install: if cfg!(target_os = "macos") {
                "brew install go".into()
            } else {
                "install Go from https://go.dev/dl/ (Debian 12's golang-go is too old)".into()
            },
        });
    }
    missing
}

/// `python3`, if it can create a virtual environment. Debian ships the
/// part `venv` needs for that (`ensurepip`, which puts pip into the new
/// environment) apart from Python, in python3-venv, so a fresh machine
/// usually has `python3` without it.
pub async fn python_venv() -> Result<PathBuf, Missing> {
    match find_program("python3") {
        Some(python) => python_venv_at(python).await,
        None => Err(missing_venv("Python 3 (python3)")),
    }
}

async fn python_venv_at(python: PathBuf) -> Result<PathBuf, Missing> {
    let status = tokio::process::Command::new(&python)
        .args(["-c", "import venv, ensurepip"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if status.is_ok_and(|status| status.success()) {
        Ok(python)
    } else {
        Err(missing_venv(&format!(
            "Python 3's venv module with ensurepip ({} cannot import them)",
            python.display()
        )))
    }
}

fn missing_venv(what: &str) -> Missing {
    Missing {
        what: format!("{what}, which installs Schemathesis into a virtual environment"),
        install: install_hint("python3-venv", "python"),
    }
}

/// The PostgreSQL server binaries: `PG_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/<major>/bin` (Debian, Ubuntu), else `initdb` on `PATH`,
/// else Homebrew's keg.
pub fn postgres_bin_dir() -> Result<PathBuf, Missing> {
    let missing = || Missing {
        what: "the PostgreSQL server (initdb, pg_ctl)".into(),
        install: install_hint("postgresql", BREW_POSTGRES),
    };
    if let Some(dir) = env::var_os("PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return if has_server_binaries(&dir) {
            Ok(dir)
        } else {
            Err(Missing {
                what: format!(
                    "initdb and pg_ctl in PG_BIN_DIR={} (unset it to search the usual places)",
                    dir.display()
                ),
                install: install_hint("postgresql", BREW_POSTGRES),
            })
        };
    }
    if let Some(dir) = newest_debian_postgres(Path::new("/usr/lib/postgresql")) {
        return Ok(dir);
    }
    if let Some(dir) = find_program("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
        && has_server_binaries(&dir)
    {
        return Ok(dir);
    }
    ["/opt/homebrew/opt", "/usr/local/opt"]
        .iter()
        .map(|prefix| Path::new(prefix).join(BREW_POSTGRES).join("bin"))
        .find(|dir| has_server_binaries(dir))
        .ok_or_else(missing)
}

/// Running as root, PostgreSQL must run as the `postgres` system user (initdb
/// refuses root), so that user and `runuser` must exist.
async fn root_can_run_postgres() -> Result<(), Missing> {
    if crate::process::effective_uid() != 0 {
        return Ok(());
    }
    if find_program("runuser").is_none() {
        return Err(Missing {
            what: "runuser (to run PostgreSQL as the postgres user when running as root)".into(),
            install: "apt-get install -y util-linux".into(),
        });
    }
    let known = tokio::process::Command::new("id")
        .args(["-u", crate::postgres::SYSTEM_USER])
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false);
    if known {
        Ok(())
    } else {
        Err(Missing {
            what: "the `postgres` system user (PostgreSQL refuses to run as root)".into(),
            install: install_hint("postgresql", BREW_POSTGRES),
        })
    }
}

fn newest_debian_postgres(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server_binaries(&bin).then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

fn has_server_binaries(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|name| dir.join(name).is_file())
}

/// The first `name` on `PATH` that is a file.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The major version in `java -version` output: `"17.0.15"` is 17, `"1.8.0_392"` is 8.
pub fn java_major(version_output: &str) -> Option<u32> {
    let line = version_output.lines().find(|l| l.contains("version"))?;
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '-', '+', '_']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

fn missing_java(what: &str) -> Missing {
    Missing {
        what: what.to_owned(),
        install: install_hint("openjdk-17-jdk-headless", "openjdk@17"),
    }
}

/// The install command for this platform: apt on Linux, Homebrew on macOS.
fn install_hint(debian_package: &str, brew_formula: &str) -> String {
    if cfg!(target_os = "macos") {
        format!("brew install {brew_formula}")
    } else {
        format!("apt-get install -y {debian_package}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_native_test_on_a_docker_only_machine_says_what_it_needs_in_one_line() {
        let unavailable = NativeTestUnavailable {
            test: "a_private_broker_stops_restarts_and_survives_a_crash".into(),
            why: "it stops and restarts a broker of its own".into(),
            needs: NativeNeeds::Kafka,
            missing: vec![
                missing_java("Java 17 or newer (java)"),
                Missing {
                    what: "Maven (mvn)".into(),
                    install: "apt-get install -y maven".into(),
                },
            ],
        };
        let line = unavailable.to_string();
        assert_eq!(line.lines().count(), 1, "{line}");
        for part in [
            "a_private_broker_stops_restarts_and_survives_a_crash runs Kafka as native processes",
            "also on a machine with Docker (it stops and restarts a broker of its own)",
            "missing Java 17 or newer (java): install it with",
            "missing Maven (mvn): install it with `apt-get install -y maven`",
            "Tests with testcontainers",
        ] {
            assert!(line.contains(part), "{part:?} not in {line}");
        }
    }

    #[test]
    fn a_missing_browser_names_the_apt_line_in_one_line() {
        let missing = browser_binary_at(
            PathBuf::from("/nonexistent/chromium"),
            "CHROMIUM",
            "Chromium",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            missing,
            "missing Chromium at /nonexistent/chromium (the browser tests; or set CHROMIUM to \
             the binary): install it with `apt-get install -y chromium chromium-driver`"
        );
    }

    #[tokio::test]
    async fn a_python_without_venv_names_the_apt_line_in_one_line() {
        // `false` stands in for a python3 whose `import ensurepip` fails.
        let missing = python_venv_at(PathBuf::from("/bin/false"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            missing,
            "missing Python 3's venv module with ensurepip (/bin/false cannot import them), \
             which installs Schemathesis into a virtual environment: install it with \
             `apt-get install -y python3-venv`"
        );
    }

    #[test]
    fn reads_java_major_versions_old_and_new() {
        assert_eq!(
            java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("openjdk version \"24-ea\" 2025-03-18"), Some(24));
        assert_eq!(java_major("no version here"), None);
    }

    #[test]
    fn picks_the_newest_debian_postgres_with_server_binaries() {
        let root = env::temp_dir().join(format!("xtask-pg-{}", uuid::Uuid::new_v4()));
        for (major, complete) in [(13, true), (15, true), (16, false)] {
            let bin = root.join(major.to_string()).join("bin");
            std::fs::create_dir_all(&bin).expect("bin dir");
            let names: &[&str] = if complete {
                &["initdb", "pg_ctl", "postgres"]
            } else {
                &["pg_ctl"]
            };
            for name in names {
                std::fs::write(bin.join(name), "").expect("binary");
            }
        }
        assert_eq!(
            newest_debian_postgres(&root),
            Some(root.join("15").join("bin"))
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
