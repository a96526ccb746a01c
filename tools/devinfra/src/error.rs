//! The one error type of the infrastructure library.
//!
//! Each variant says what failed in words a developer can act on (which tool is
//! missing and how to install it, which log file to read); the underlying cause
//! is kept as the error's `source`, so `{:#}` prints the whole chain on one line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting, checking or stopping the local infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// Tools the infrastructure needs are not installed (or too old); one line each.
    #[error("{}", MissingList(.0))]
    MissingPrerequisites(Vec<Missing>),

    /// A setting (environment variable, port, directory layout) cannot be used.
    #[error("{0}")]
    Config(String),

    /// A file or directory operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// A helper program could not be started at all.
    #[error("cannot run `{program}`")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// A helper program ran and reported failure.
    #[error("`{command}` failed ({status}){}", OutputTail(output))]
    CommandFailed {
        /// The command line, shortened.
        command: String,
        /// How it ended.
        status: String,
        /// What it printed (stdout and stderr).
        output: String,
    },

    /// A component did not become ready before its deadline.
    #[error("{what} was not ready after {}s (last check: {last_error}){}", waited.as_secs(), SeeLog(log.as_ref()))]
    NotReady {
        /// The component.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// Why the last readiness check failed.
        last_error: String,
        /// Where the component logs, if it has a log.
        log: Option<PathBuf>,
    },

    /// A process exited while it was expected to keep running.
    #[error("{what} exited during startup ({status}){}", SeeLog(Some(log)))]
    Exited {
        /// The component.
        what: String,
        /// How it ended.
        status: String,
        /// Where it logged.
        log: PathBuf,
    },

    /// A process survived SIGTERM and SIGKILL.
    #[error("{what} (pid {pid}) did not exit within {}s", waited.as_secs())]
    StillRunning {
        /// The component.
        what: String,
        /// Its process id.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },

    /// A signal could not be delivered.
    #[error("cannot send {signal} to pid {pid}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The target.
        pid: u32,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The run was interrupted by a signal (Ctrl-C or SIGTERM).
    #[error("interrupted by {0}")]
    Interrupted(&'static str),

    /// A Kafka client call failed.
    #[error("Kafka client error")]
    Kafka(#[from] rdkafka::error::KafkaError),

    /// The flow's topics, principals or ACLs could not be applied to Kafka.
    #[error("provisioning Kafka's topics, principals and ACLs")]
    Access(#[from] crate::kafka::AclError),

    /// A PostgreSQL call failed.
    #[error("PostgreSQL error")]
    Postgres(#[from] sqlx::Error),

    /// A background task panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// One missing prerequisite: what it is and the command that installs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, e.g. "Java 17 or newer (found 11)".
    pub what: String,
    /// The install command for this platform.
    pub install: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "missing {}: install it with `{}`",
            self.what, self.install
        )
    }
}

impl InfraError {
    /// An [`InfraError::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        InfraError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

struct MissingList<'a>(&'a [Missing]);

impl fmt::Display for MissingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, missing) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{missing}")?;
        }
        Ok(())
    }
}

/// The last lines of a command's output, indented, or nothing.
struct OutputTail<'a>(&'a str);

impl fmt::Display for OutputTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.0.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        if tail.is_empty() {
            return Ok(());
        }
        f.write_str(":")?;
        for line in tail {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

struct SeeLog<'a>(Option<&'a PathBuf>);

impl fmt::Display for SeeLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "; see {}", path.display()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_prerequisites_print_one_line_each() {
        let err = InfraError::MissingPrerequisites(vec![
            Missing {
                what: "Maven (mvn)".into(),
                install: "apt-get install -y maven".into(),
            },
            Missing {
                what: "the PostgreSQL server (initdb, pg_ctl)".into(),
                install: "apt-get install -y postgresql".into(),
            },
        ]);
        assert_eq!(
            err.to_string(),
            "missing Maven (mvn): install it with `apt-get install -y maven`\n\
             missing the PostgreSQL server (initdb, pg_ctl): install it with `apt-get install -y postgresql`"
        );
    }

    #[test]
    fn failed_commands_show_the_tail_of_their_output() {
        let err = InfraError::CommandFailed {
            command: "mvn".into(),
            status: "exit status: 1".into(),
            output: "a\n\nb\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "`mvn` failed (exit status: 1):\n    a\n    b"
        );
    }
}
