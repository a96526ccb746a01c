//! Database pool settings and error classification.

use std::fmt;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

/// A PostgreSQL URL that never prints its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a `postgres://` URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres://user:password@host -> postgres://user:***@host
        let redacted = match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &self.0[scheme + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &self.0[..scheme + 3],
                        &userinfo[..colon],
                        &self.0[at..]
                    ),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        };
        f.write_str(&redacted)
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl::new(s))
    }
}

pub use crate::config::DbSettings;

impl DbSettings {
    /// Opens the pool; fails when the database cannot be reached now.
    pub async fn connect(&self) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect(self.url.expose())
            .await
    }

    /// Opens the pool and brings the schema up to date with `migrator`.
    pub async fn connect_and_migrate(&self, migrator: &Migrator) -> Result<PgPool, StartupError> {
        let pool = self
            .connect()
            .await
            .map_err(|source| StartupError::Connect {
                url: format!("{:?}", self.url),
                source,
            })?;
        migrator.run(&pool).await.map_err(StartupError::Migrate)?;
        Ok(pool)
    }
}

/// Why a service's database could not be readied at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached.
    #[error("could not connect to the database {url}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The migrations could not be applied.
    #[error("could not bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// True for errors that mean "the database is (momentarily) unavailable" and
/// are worth retrying or answering with 503: connection failures, pool
/// exhaustion, server shutdown, serialization conflicts and deadlocks.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources;
            // 57P0x: shutdown / cannot connect now; 40001/40P01: retry the transaction.
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
        }),
        _ => false,
    }
}

/// A database error as an HTTP answer: 503 when it is transient (the client
/// may retry), 500 otherwise. The error is logged in full; the client never
/// sees SQL or driver internals.
impl From<sqlx::Error> for crate::Problem {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) {
            tracing::warn!(error = %error, "database unavailable");
            crate::Problem::unavailable("the database is unavailable; try again shortly")
        } else {
            tracing::error!(error = ?error, "database error");
            crate::Problem::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_hides_the_password() {
        let url = DatabaseUrl::new("postgres://orders:s3cret@127.0.0.1:15432/orders");
        let shown = format!("{url:?}");
        assert_eq!(shown, "postgres://orders:***@127.0.0.1:15432/orders");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn database_errors_answer_503_when_transient_and_500_otherwise() {
        let unavailable = crate::Problem::from(sqlx::Error::PoolTimedOut);
        assert_eq!(unavailable.status().as_u16(), 503);
        let bug = crate::Problem::from(sqlx::Error::RowNotFound);
        assert_eq!(bug.status().as_u16(), 500);
        assert!(!bug.detail().contains("no rows"));
    }

    #[test]
    fn pool_timeouts_are_transient_and_row_not_found_is_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }
}
