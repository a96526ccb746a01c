//! The tools that check the contracts, installed by the project itself.
//!
//! Schemathesis (PyPI) fuzzes each service against its OpenAPI document in the
//! end-to-end tests; the AsyncAPI CLI (npm) validates the topics' document.
//! Neither is a system package: `.ci/install-contract-tools` installs the
//! versions pinned in `.ci/contract-tools/` into `.tools/` (ignored by git),
//! and keeps a copy of the pins it installed beside them. A run whose copy
//! differs from the pins in the checkout (a bump, a fresh clone) installs
//! again; an up-to-date one only prints the versions. `cargo xtask test`
//! calls [`install`] before anything slow starts, so a fresh machine needs
//! no step of its own.

use std::path::PathBuf;
use std::process::Stdio;

use crate::{InfraError, workspace_root};

/// The script that installs the pinned tools (or finds them up to date).
const INSTALL: &str = ".ci/install-contract-tools";
/// The script that installs the Kubernetes chart's checkers (helm and
/// kubeconform from the Go module proxy, kubernetes-validate from PyPI) into
/// `.tools/chart`, or finds them at their pins.
const INSTALL_CHART_TOOLS: &str = ".ci/install-chart-tools";
/// The script that validates `shared-events/asyncapi.yaml` with the CLI.
const VALIDATE_ASYNCAPI: &str = ".ci/validate-asyncapi";

/// The Schemathesis that [`install`] puts into the workspace's `.tools/venv`.
pub fn schemathesis() -> PathBuf {
    workspace_root().join(".tools/venv/bin/schemathesis")
}

/// Installs Schemathesis and the AsyncAPI CLI when missing or stale (their
/// pins changed); their progress goes to this process's output.
pub async fn install() -> Result<(), InfraError> {
    run_script(INSTALL).await
}

/// Installs the chart's tools when missing or not at their pins (the chart's
/// drift test renders the chart with that helm).
pub async fn install_chart_tools() -> Result<(), InfraError> {
    run_script(INSTALL_CHART_TOOLS).await
}

/// Validates the AsyncAPI document of the topics (and the JSON Schemas it
/// references) with the installed CLI.
pub async fn validate_asyncapi() -> Result<(), InfraError> {
    run_script(VALIDATE_ASYNCAPI).await
}

/// Runs one of the workspace's scripts with its output passed through, so
/// that a failure explains itself right above the line that names it.
async fn run_script(script: &str) -> Result<(), InfraError> {
    let status = tokio::process::Command::new(workspace_root().join(script))
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|source| InfraError::Spawn {
            program: script.to_owned(),
            source,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(InfraError::CommandFailed {
            command: script.to_owned(),
            status: status.to_string(),
            output: String::new(),
        })
    }
}
