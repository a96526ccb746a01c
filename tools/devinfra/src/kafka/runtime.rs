//! The JVM and classpath a Kafka node runs on.
//!
//! Maven resolves `infra/kafka/pom.xml` into a classpath of jars in `~/.m2`
//! (its download cache). Running Maven costs seconds even when everything is
//! downloaded, so the classpath is cached in a file keyed by the pom's SHA-256:
//! it is resolved again only when the pom changes or a jar went missing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{InfraError, prereq};

/// Where the pom lives, relative to the workspace root.
const POM: &str = "infra/kafka/pom.xml";

/// The broker's logging configuration, relative to the workspace root.
const LOG4J_CONFIG: &str = "infra/kafka/log4j2.yaml";

/// The command-line tools' logging configuration (warnings to stderr), relative to the workspace root.
const TOOLS_LOG4J_CONFIG: &str = "infra/kafka/tools-log4j2.yaml";

/// The JVM, the resolved classpath and the logging configuration of one pinned Kafka release.
#[derive(Debug, Clone)]
pub struct KafkaRuntime {
    java: PathBuf,
    classpath: String,
    log4j_config: PathBuf,
    tools_log4j_config: PathBuf,
    version: String,
}

impl KafkaRuntime {
    /// Finds Java and resolves the classpath, reusing `cache_dir`'s copy while the pom is unchanged.
    pub async fn resolve(workspace_root: &Path, cache_dir: &Path) -> Result<Self, InfraError> {
        let java = prereq::java()
            .await
            .map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
        let pom = workspace_root.join(POM);
        let pom_text =
            std::fs::read_to_string(&pom).map_err(|e| InfraError::io("read", &pom, e))?;
        let version = pinned_version(&pom_text).ok_or_else(|| {
            InfraError::Config(format!("{} has no <kafka.version> property", pom.display()))
        })?;
        let log4j_config = workspace_root.join(LOG4J_CONFIG);
        let tools_log4j_config = workspace_root.join(TOOLS_LOG4J_CONFIG);
        for config in [&log4j_config, &tools_log4j_config] {
            if !config.is_file() {
                return Err(InfraError::Config(format!(
                    "{} is missing",
                    config.display()
                )));
            }
        }
        let classpath =
            maven_classpath(&pom, cache_dir, &format!("the Kafka {version} broker jars")).await?;
        Ok(KafkaRuntime {
            java,
            classpath,
            log4j_config,
            tools_log4j_config,
            version,
        })
    }

    /// The Kafka release this runtime runs (the pom's `<kafka.version>`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The `java` launcher.
    pub fn java(&self) -> &Path {
        &self.java
    }

    /// The logging configuration of Kafka's command-line tools.
    pub fn tools_log4j_config(&self) -> &Path {
        &self.tools_log4j_config
    }

    /// The resolved classpath (jar paths joined by ':').
    pub fn classpath(&self) -> &str {
        &self.classpath
    }

    /// A `java` command running `main_class` on this classpath, logging into `logs_dir`.
    ///
    /// The classpath goes in the `CLASSPATH` variable rather than `-cp`, which
    /// keeps the command line short enough to read in `ps`. Benchmarks use this
    /// for Kafka's own tools (`org.apache.kafka.tools.ProducerPerformance`).
    /// `jvm_args` go before the main class; append the program's own arguments
    /// to the returned command.
    pub fn java_command<I, S>(
        &self,
        heap: &str,
        logs_dir: &Path,
        jvm_args: I,
        main_class: &str,
    ) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(&self.java);
        command
            .env("CLASSPATH", &self.classpath)
            .arg(format!("-Xms{heap}"))
            .arg(format!("-Xmx{heap}"))
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.log4j_config.display()
            ))
            .arg(format!("-Dkafka.logs.dir={}", logs_dir.display()))
            .args(jvm_args)
            .arg(main_class);
        command
    }
}

/// The value of the `<kafka.version>` property in a pom (XML comments are skipped).
pub fn pinned_version(pom: &str) -> Option<String> {
    let pom = without_comments(pom);
    let start = pom.find("<kafka.version>")? + "<kafka.version>".len();
    let end = start + pom[start..].find("</kafka.version>")?;
    let version = pom[start..end].trim();
    (!version.is_empty()).then(|| version.to_owned())
}

fn without_comments(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start..].find("-->") {
            Some(end) => rest = &rest[start + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// The classpath (jar paths joined by ':') that Maven resolves `pom` to,
/// naming `what` it downloads; cached in `cache_dir` and resolved again only
/// when the pom changes or a jar went missing.
pub(crate) async fn maven_classpath(
    pom: &Path,
    cache_dir: &Path,
    what: &str,
) -> Result<String, InfraError> {
    let pom_text = std::fs::read_to_string(pom).map_err(|e| InfraError::io("read", pom, e))?;
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| InfraError::io("create directory", cache_dir, e))?;
    let key = hex::encode(Sha256::digest(pom_text.as_bytes()));
    if let Some(classpath) = cached_classpath(cache_dir, &key) {
        return Ok(classpath);
    }
    let classpath = resolve_with_maven(pom, cache_dir, what).await?;
    write(&cache_dir.join("classpath.key"), &format!("{key}\n"))?;
    Ok(classpath)
}

/// The cached classpath if it was resolved from this pom and every jar is still there.
fn cached_classpath(cache_dir: &Path, key: &str) -> Option<String> {
    let cached_key = std::fs::read_to_string(cache_dir.join("classpath.key")).ok()?;
    if cached_key.trim() != key {
        return None;
    }
    let classpath = std::fs::read_to_string(cache_dir.join("classpath.txt")).ok()?;
    let classpath = classpath.trim().to_owned();
    let complete =
        !classpath.is_empty() && std::env::split_paths(&classpath).all(|jar| jar.is_file());
    complete.then_some(classpath)
}

async fn resolve_with_maven(
    pom: &Path,
    cache_dir: &Path,
    what: &str,
) -> Result<String, InfraError> {
    let mvn = prereq::maven().map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
    let output_file = cache_dir.join("classpath.txt");
    eprintln!("xtask: resolving {what} with Maven (the first run downloads them into ~/.m2)");
    let started = std::time::Instant::now();
    let output = tokio::process::Command::new(&mvn)
        .args(["-B", "-q", "-Dstyle.color=never", "-f"])
        .arg(pom)
        .arg("dependency:build-classpath")
        .arg(format!("-Dmdep.outputFile={}", output_file.display()))
        .arg("-Dmdep.includeScope=runtime")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| InfraError::Spawn {
            program: mvn.display().to_string(),
            source: e,
        })?;
    if !output.status.success() {
        return Err(InfraError::CommandFailed {
            command: format!("mvn -f {} dependency:build-classpath", pom.display()),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let classpath = std::fs::read_to_string(&output_file)
        .map_err(|e| InfraError::io("read", &output_file, e))?
        .trim()
        .to_owned();
    if classpath.is_empty() {
        return Err(InfraError::Config(format!(
            "Maven wrote an empty classpath to {}",
            output_file.display()
        )));
    }
    eprintln!(
        "xtask: {what} resolved in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(classpath)
}

#[cfg(test)]
impl KafkaRuntime {
    /// A runtime that is never started, for tests of configuration logic.
    pub(crate) fn for_tests() -> Self {
        KafkaRuntime {
            java: PathBuf::from("java"),
            classpath: String::new(),
            log4j_config: PathBuf::new(),
            tools_log4j_config: PathBuf::new(),
            version: "0.0.0".into(),
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), InfraError> {
    std::fs::write(path, contents).map_err(|e| InfraError::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_version_from_the_property() {
        let pom = "<properties>\n  <kafka.version> 4.4.0 </kafka.version>\n</properties>";
        assert_eq!(pinned_version(pom).as_deref(), Some("4.4.0"));
        assert_eq!(pinned_version("<kafka.version></kafka.version>"), None);
        assert_eq!(pinned_version("<project/>"), None);
        let commented =
            "<!-- <kafka.version>1.0</kafka.version> -->\n<kafka.version>4.4.0</kafka.version>";
        assert_eq!(pinned_version(commented).as_deref(), Some("4.4.0"));
    }

    #[test]
    fn the_repository_pom_pins_a_version() {
        let pom = crate::workspace_root().join(POM);
        let text = std::fs::read_to_string(pom).expect("pom is readable");
        assert!(pinned_version(&text).is_some());
    }

    #[test]
    fn a_cached_classpath_is_used_only_for_the_same_pom_and_existing_jars() {
        let dir = std::env::temp_dir().join(format!("xtask-cp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let jar = dir.join("a.jar");
        std::fs::write(&jar, "").expect("jar");
        std::fs::write(dir.join("classpath.key"), "abc\n").expect("key");
        std::fs::write(dir.join("classpath.txt"), jar.display().to_string()).expect("cp");
        assert!(cached_classpath(&dir, "abc").is_some());
        assert!(cached_classpath(&dir, "other").is_none());
        std::fs::remove_file(&jar).expect("remove jar");
        assert!(cached_classpath(&dir, "abc").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
