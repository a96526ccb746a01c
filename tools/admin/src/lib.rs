//! What an operator needs when the flow refuses something: the dead letters
//! each consumer wrote, and the outbox events Kafka refused for good.
//!
//! In the order flow nothing is dropped: a record a consumer refuses goes to
//! its dead-letter topic (`<topic>.dlq.<group>`), and an event Kafka will
//! never take (too large, refused by policy) is parked in the outbox with
//! the later events of its order held behind it. This crate reads and acts
//! on both, against any environment, with nothing but the brokers' address
//! and the order service's database URL:
//!
//! - [`dlq`]: list a consumer's dead letters (reason, source partition and
//!   offset, event id and type, age) and replay them to the group's own
//!   retry topic (`<topic>.retry.<group>`), then watch the consumer group
//!   move past them. Only the group that refused a record reads its retry
//!   topic, and each refusal is replayed once per run (its latest dead
//!   letter), so a replay neither reaches other consumers nor multiplies.
//! - [`outbox`]: list parked events, retry them (after raising the limit that
//!   refused them), or discard one: the tool says what that does to the
//!   order, asks to confirm (or takes `--yes`), and keeps the event in
//!   `outbox_discarded` with the reason, who discarded it and that consequence.
//!
//! [`cli`] is the command line (`orderflow-admin --help`); its `run` takes
//! the arguments and an output, so tests drive exactly what an operator types.

pub mod cli;
pub mod dlq;
pub mod outbox;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A Kafka request failed.
    #[error("{what}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A database statement failed.
    #[error("{what}")]
    Database {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The request cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
}

impl AdminError {
    fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let what = what.into();
        move |source| AdminError::Kafka { what, source }
    }

    fn database(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let what = what.into();
        move |source| AdminError::Database { what, source }
    }
}
