//! What can go wrong while building, starting, talking to or stopping the services.
//!
//! Infrastructure failures keep their own type ([`InfraError`]) and pass through
//! unchanged; the rest says which service, which request or which log to read.
//! A service that dies or never becomes ready is reported with the last lines
//! of its log, so the cause is on the screen, not one `cat` away.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use orderflow_client::ClientError;

use crate::InfraError;

/// Everything that can go wrong while running the services of the stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The infrastructure underneath failed (Kafka, PostgreSQL, processes, files).
    #[error(transparent)]
    Infra(#[from] InfraError),

    /// `cargo build` of the services failed; its diagnostics are on stderr already.
    #[error(
        "building the services failed (`{command}`: {status}); the compiler's messages are above"
    )]
    Build {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
    },

    /// `cargo build` succeeded but did not report a service's executable.
    #[error("`cargo build` reported no executable for {binary}")]
    MissingBinary {
        /// The binary that was expected.
        binary: &'static str,
    },

    /// A service process exited before it answered `/health/ready`.
    #[error("{what} exited before it was ready ({status}){}", LogTail(log, tail))]
    Exited {
        /// The instance, e.g. `shipping-service-2`.
        what: String,
        /// How it ended.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines it logged in this run.
        tail: String,
    },

    /// A service process runs but did not answer `/health/ready` with 200 in time.
    #[error("{what} was not ready after {}s (last check: {last_error}){}", waited.as_secs(), LogTail(log, tail))]
    NotReady {
        /// The instance.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// What the last health check saw.
        last_error: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines it logged in this run.
        tail: String,
    },

    /// A request to a service failed or was answered unexpectedly.
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl StackError {
    /// A [`StackError::Infra`] carrying an [`InfraError::Config`] with `message`.
    pub fn config(message: impl Into<String>) -> Self {
        StackError::Infra(InfraError::Config(message.into()))
    }
}

/// "; last lines of <log>:" and the indented tail, or "; see <log>" without one.
struct LogTail<'a>(&'a PathBuf, &'a str);

impl fmt::Display for LogTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let LogTail(log, tail) = self;
        if tail.trim().is_empty() {
            return write!(f, "; see {}", log.display());
        }
        write!(f, "; last lines of {}:", log.display())?;
        for line in tail.lines() {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_exit_shows_the_end_of_the_log() {
        let err = StackError::Exited {
            what: "order-service".into(),
            status: "exit status: 1".into(),
            log: PathBuf::from("/infra/services/order-service.log"),
            tail: "starting\nError: DATABASE_URL is not a URL".into(),
        };
        assert_eq!(
            err.to_string(),
            "order-service exited before it was ready (exit status: 1); last lines of \
             /infra/services/order-service.log:\n    starting\n    Error: DATABASE_URL is not a URL"
        );
    }
}
