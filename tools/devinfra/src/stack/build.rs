//! Building the registered services' binaries once (and the benchmark's load
//! generator, and the OTLP receiver in front of Zipkin), and finding where
//! cargo put them.
//!
//! The paths come from cargo itself (`--message-format=json-render-diagnostics`
//! reports every executable it produced or found up to date), so a shared or
//! relocated target directory (`CARGO_TARGET_DIR`, `build.target-dir`) needs no
//! guessing. Compiler messages and progress still go to the terminal.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::{Service, StackError};
use crate::{InfraError, workspace_root};

/// The cargo profile the services are built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// `cargo build` (unoptimised, with debug info): quick to build.
    #[default]
    Debug,
    /// `cargo build --release`: what benchmarks should measure.
    Release,
}

impl Profile {
    /// `Release` when `release` is true.
    pub fn from_release_flag(release: bool) -> Self {
        if release {
            Profile::Release
        } else {
            Profile::Debug
        }
    }

    /// The profile whose output directory appears in `command_line` (`/release/` or not).
    pub fn of_command_line(command_line: &str) -> Self {
        Profile::from_release_flag(command_line.contains("/release/"))
    }
}

/// Where the registered services' executables are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    paths: Vec<(Service, PathBuf)>,
}

impl Binaries {
    /// The executable of `service`.
    pub fn path(&self, service: Service) -> Option<&Path> {
        self.paths
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, path)| path.as_path())
    }
}

/// Runs `cargo build -p order-service -p invoicing-service ...`, one `-p` per
/// registered service ([`platform::services::ALL`]),
/// (with `--release` for [`Profile::Release`], and `--features` with
/// `features` when there are any, e.g. `invoicing-service/fault-injection`)
/// and returns the executables.
pub async fn build_services(profile: Profile, features: &[String]) -> Result<Binaries, StackError> {
    let packages: Vec<&str> = platform::services::ALL.iter().map(|s| s.name).collect();
    let messages = cargo_build(&packages, profile, features).await?;
    let mut paths = Vec::new();
    for &service in platform::services::ALL {
        let path = executable(&messages, service.name).ok_or(StackError::MissingBinary {
            binary: service.name,
        })?;
        paths.push((service, path));
    }
    Ok(Binaries { paths })
}

/// Runs `cargo build -p <package>` (with `--release` for [`Profile::Release`])
/// and returns the executable of its binary target of the same name (e.g. the
/// benchmark's `loadgen`).
pub async fn build_binary(package: &'static str, profile: Profile) -> Result<PathBuf, StackError> {
    let messages = cargo_build(&[package], profile, &[]).await?;
    executable(&messages, package).ok_or(StackError::MissingBinary { binary: package })
}

/// `cargo build` of `packages` with `features`; returns cargo's JSON messages.
async fn cargo_build(
    packages: &[&str],
    profile: Profile,
    features: &[String],
) -> Result<String, StackError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut args = vec!["build".to_owned()];
    for package in packages {
        args.push("-p".to_owned());
        args.push((*package).to_owned());
    }
    if profile == Profile::Release {
        args.push("--release".to_owned());
    }
    if !features.is_empty() {
        args.push("--features".to_owned());
        args.push(features.join(","));
    }
    let shown = format!("cargo {}", args.join(" "));
    eprintln!("xtask: {shown}");
    let output = tokio::process::Command::new(&cargo)
        .args(&args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| InfraError::Spawn {
            program: cargo.to_string_lossy().into_owned(),
            source: e,
        })?;
    if !output.status.success() {
        return Err(StackError::Build {
            command: shown,
            status: output.status.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The executable of the binary target `name` among cargo's JSON messages.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_read_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"order-service","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"order-service","kind":["bin"]},"executable":"/t/debug/order-service"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable(messages, "order-service"),
            Some(PathBuf::from("/t/debug/order-service"))
        );
        assert_eq!(executable(messages, "shipping-service"), None);
    }

    #[test]
    fn the_profile_shows_in_the_binary_path() {
        assert_eq!(
            Profile::of_command_line("/work/target/release/order-service"),
            Profile::Release
        );
        assert_eq!(
            Profile::of_command_line("/work/target/debug/order-service"),
            Profile::Debug
        );
    }
}
