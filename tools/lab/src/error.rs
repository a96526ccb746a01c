//! The lab's one error type: why a scenario could not be carried out.
//!
//! A claim that does not hold is not an error: it is a verdict
//! ([`crate::report::Verdict`]). An error means the lab could not run the
//! experiment at all (a broker did not start, a query failed), and says at
//! which step; the cause stays in `source()`.

use devinfra::InfraError;

/// Why the lab (or one of its scenarios) could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Starting, stopping or waiting for the infrastructure failed.
    #[error(transparent)]
    Infra(#[from] InfraError),
    /// A Kafka request failed.
    #[error("Kafka failed while {step}")]
    Kafka {
        /// What the lab was doing.
        step: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A database statement failed.
    #[error("PostgreSQL failed while {step}")]
    Database {
        /// What the lab was doing.
        step: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Creating a scenario's schema failed.
    #[error("migrating the database failed while {step}")]
    Migrate {
        /// What the lab was doing.
        step: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The fault-injecting proxy failed.
    #[error("the fault-injecting proxy failed while {step}")]
    Proxy {
        /// What it was doing.
        step: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A condition the scenario waits for did not come in time.
    #[error("{what}: not reached after {waited_secs} s (last seen: {last_seen})")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the lab waited.
        waited_secs: u64,
        /// The last observation.
        last_seen: String,
    },
    /// A wait a claim depends on ran out (a cleaner that never ran, an ISR
    /// that never healed): the claim does not hold. The run turns this into
    /// the claim's verdict and goes on (see [`Refutes`]).
    #[error(
        "{what}: not reached after {waited_secs} s (last seen: {last_seen}), which refutes {claim}"
    )]
    Refuted {
        /// The claim's id.
        claim: &'static str,
        /// What was awaited.
        what: String,
        /// How long the lab waited.
        waited_secs: u64,
        /// The last observation.
        last_seen: String,
    },
    /// A background task of a scenario failed.
    #[error("a background task of the lab failed while {step}")]
    Task {
        /// What it was doing.
        step: String,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The lab met a state its own code rules out (a bug in the lab).
    #[error("the lab went wrong while {step}: {what}")]
    Inconsistent {
        /// What it was doing.
        step: String,
        /// What it found.
        what: String,
    },
    /// Writing LAB.md or a chart failed.
    #[error("writing {what} failed")]
    Write {
        /// The file.
        what: String,
        /// The operating system's or the plotting library's reason.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Names the step a fallible Kafka, database or task call belongs to.
pub(crate) trait Step<T> {
    /// The result, with a failure turned into a [`LabError`] naming `step`.
    fn step(self, step: impl Into<String>) -> Result<T, LabError>;
}

impl<T> Step<T> for Result<T, rdkafka::error::KafkaError> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|source| LabError::Kafka {
            step: step.into(),
            source,
        })
    }
}

impl<T> Step<T> for Result<T, sqlx::Error> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|source| LabError::Database {
            step: step.into(),
            source,
        })
    }
}

impl<T> Step<T> for Result<T, sqlx::migrate::MigrateError> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|source| LabError::Migrate {
            step: step.into(),
            source,
        })
    }
}

impl<T> Step<T> for Result<T, tokio::task::JoinError> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|source| LabError::Task {
            step: step.into(),
            source,
        })
    }
}

impl<T> Step<T> for Result<T, std::io::Error> {
    fn step(self, step: impl Into<String>) -> Result<T, LabError> {
        self.map_err(|source| LabError::Proxy {
            step: step.into(),
            source,
        })
    }
}

/// Marks a wait as one a claim depends on: its timeout refutes the claim.
pub(crate) trait Refutes<T> {
    /// The result, with a [`LabError::Timeout`] turned into
    /// [`LabError::Refuted`] of `claim`; other errors unchanged.
    fn refutes(self, claim: &'static str) -> Result<T, LabError>;
}

impl<T> Refutes<T> for Result<T, LabError> {
    fn refutes(self, claim: &'static str) -> Result<T, LabError> {
        self.map_err(|e| match e {
            LabError::Timeout {
                what,
                waited_secs,
                last_seen,
            } => LabError::Refuted {
                claim,
                what,
                waited_secs,
                last_seen,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Result<(), LabError> {
        Err(LabError::Timeout {
            what: "the ISR to heal".into(),
            waited_secs: 120,
            last_seen: "p0: 1".into(),
        })
    }

    #[test]
    fn a_timeout_a_claim_depends_on_refutes_it_and_other_errors_stay() {
        match timeout().refutes("replication.one-down") {
            Err(LabError::Refuted {
                claim, waited_secs, ..
            }) => assert_eq!((claim, waited_secs), ("replication.one-down", 120)),
            other => panic!("{other:?}"),
        }
        let other: Result<(), LabError> = Err(LabError::Inconsistent {
            step: "x".into(),
            what: "y".into(),
        });
        assert!(matches!(
            other.refutes("replication.one-down"),
            Err(LabError::Inconsistent { .. })
        ));
    }
}
