//! Database pool settings and error classification.

use std::fmt;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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

/// How long a starting service keeps opening its minimum connections while
/// the database is reachable but slow to hand them out (a busy machine:
/// each connection is a backend fork and a SCRAM exchange).
const WARM_UP_PATIENCE: Duration = Duration::from_secs(60);

impl DbSettings {
    /// Opens the pool with its minimum connections (`min_connections`) all
    /// open; fails when the database cannot be reached now.
    ///
    /// A service answers requests as soon as it listens. With an empty
    /// pool, the first requests each wait for a connection to be opened,
    /// and on a machine busy with something else (three Kafka JVMs
    /// starting, say) that took longer than `acquire_timeout`: answers of
    /// 503 in the first seconds of a service that said it was ready. So
    /// the pool is warm before the service listens, and sqlx keeps that
    /// many open afterwards. PostgreSQL plans the statements of every
    /// connection as `planning` says.
    pub async fn connect(&self, planning: Planning) -> Result<PgPool, StartupError> {
        if self.min_connections > self.max_connections {
            return Err(StartupError::PoolSize {
                min: self.min_connections,
                max: self.max_connections,
            });
        }
        let connect_error = |source| StartupError::Connect {
            url: format!("{:?}", self.url),
            source,
        };
        let options: PgConnectOptions = self.url.expose().parse().map_err(connect_error)?;
        let options = match planning {
            Planning::Cached => options,
            Planning::EveryExecution => options.options([("plan_cache_mode", "force_custom_plan")]),
        };
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(options);
        // Reachable now, or fail as before: one connection within the timeout.
        drop(pool.acquire().await.map_err(connect_error)?);
        warm_up(&pool, self.min_connections, WARM_UP_PATIENCE)
            .await
            .map_err(connect_error)?;
        Ok(pool)
    }

    /// Opens the pool ([`connect`](Self::connect)) and brings the schema up
    /// to date with `migrator`.
    pub async fn connect_and_migrate(
        &self,
        migrator: &Migrator,
        planning: Planning,
    ) -> Result<PgPool, StartupError> {
        let pool = self.connect(planning).await?;
        migrator.run(&pool).await.map_err(StartupError::Migrate)?;
        Ok(pool)
    }
}

/// How PostgreSQL plans the prepared statements of a pool's connections.
///
/// sqlx prepares every query once per connection. PostgreSQL plans the first
/// five executions with their parameters (custom plans), then may switch to
/// one generic plan for good, costed with the table sizes of that moment and
/// with 10 rows assumed for an `unnest($1)` of an array parameter. A service
/// that starts on empty tables caches plans made for empty tables: a join of
/// a batch's array with a table that has since grown becomes a nested loop
/// over the whole table for each element (measured: 2.1 s for one batch of
/// 500 against 15 000 shipments, 7.5 million rows compared, where the plan
/// made for that batch takes milliseconds). Only a new connection or an
/// `ANALYZE` that happens to invalidate the plan ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// PostgreSQL's default: generic plans once they look no worse.
    Cached,
    /// `plan_cache_mode = force_custom_plan`: every execution is planned
    /// with its parameters and today's table sizes. It costs a planning per
    /// statement per execution (about 0.1-0.4 ms for the inbox's statements),
    /// which a batch of many records shares. For connections whose
    /// statements take arrays of varying length and join them with tables
    /// that grow: a consumer's batches.
    EveryExecution,
}

/// Holds `count` connections of `pool` at once, so that that many are open,
/// then hands them back. An acquire that times out while the database is
/// slow is tried again (the connections held so far stay held) until
/// `patience` is spent; any other error ends the warm-up.
async fn warm_up(pool: &PgPool, count: u32, patience: Duration) -> Result<(), sqlx::Error> {
    let started = Instant::now();
    let mut held = Vec::new();
    while held.len() < count as usize {
        match pool.acquire().await {
            Ok(connection) => held.push(connection),
            Err(sqlx::Error::PoolTimedOut) if started.elapsed() < patience => {
                tracing::info!(
                    open = pool.size(),
                    wanted = count,
                    "the database is slow to open connections; still warming the pool"
                );
            }
            Err(e) => return Err(e),
        }
    }
    tracing::debug!(connections = held.len(), after = ?started.elapsed(), "database pool warm");
    Ok(())
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
    /// The pool's minimum is above its maximum.
    #[error("DB_MIN_CONNECTIONS ({min}) is more than DB_MAX_CONNECTIONS ({max})")]
    PoolSize {
        /// Connections to keep open.
        min: u32,
        /// Connections the pool may have.
        max: u32,
    },
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

/// The detail of a 503 answered because no pooled connection became free
/// within the acquire timeout: the database may be fine, the service busy
/// (or still opening connections).
pub const POOL_BUSY: &str = "no database connection became free in time; try again shortly";

/// The detail of a 503 answered because the database failed or refused for
/// the moment (unreachable, shutting down, a conflict to retry).
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable; try again shortly";

/// The problem+json detail of a transient database error: which of the two
/// causes, so that a client or a chaos run can tell a busy pool from a
/// database that is away.
pub fn unavailable_detail(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::PoolTimedOut => POOL_BUSY,
        _ => DATABASE_UNAVAILABLE,
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
    fn pool_timeouts_are_transient_and_row_not_found_is_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
    }
}
