//! Who publishes: one active relay per database, elected by a session-level
//! advisory lock.
//!
//! With several instances of a service on one database, only one relay is
//! active: the one whose dedicated connection holds the session-level
//! advisory lock `pg_try_advisory_lock(lock_key)`. The lock lives as long as
//! that connection, so a crashed instance hands over as soon as PostgreSQL
//! sees its connection close, and no transaction stays open while the relay
//! waits for Kafka: an outage costs the backlog and one idle connection,
//! never a transaction held open for `message.timeout.ms`.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// The relay lock's key: "outbox" in ASCII, one well-known key per database.
pub const RELAY_LOCK_KEY: i64 = 0x6f75_7462_6f78;

/// How the relay's lock session is opened: `pool`'s connection options plus
/// TCP keepalives and a user timeout on the server's side of the socket.
///
/// The advisory lock lives as long as the server's backend of that session.
/// A relay whose host vanishes without closing the socket (a crash of the
/// machine, a network partition) would otherwise leave a half-open session
/// that holds the lock for hours, until the kernel's default keepalive (two
/// hours idle) notices, and no other instance could take over. With these
/// settings PostgreSQL probes an idle peer after 10 s, every 5 s, gives up
/// after 3 unanswered probes, and drops a connection whose sent data stays
/// unacknowledged for 30 s: the lock is free about half a minute after the
/// relay is gone. sqlx has no client-side keepalive options, and the server
/// side is the one that holds the lock, so these are set as the session's
/// startup parameters (`tcp_keepalives_idle` and friends; PostgreSQL ignores
/// them on a Unix-domain socket, where the peer's death is seen at once).
pub fn lock_session(pool: &PgPool) -> PgConnectOptions {
    pool.connect_options().as_ref().clone().options([
        ("tcp_keepalives_idle", "10"),
        ("tcp_keepalives_interval", "5"),
        ("tcp_keepalives_count", "3"),
        ("tcp_user_timeout", "30000"),
    ])
}

/// The relay lock's session: the dedicated connection that holds (or tries
/// to take) the advisory lock, and on which the relay writes its outcomes.
#[derive(Debug, Default)]
pub(super) struct RelayLock {
    conn: Option<PgConnection>,
    held: bool,
}

impl RelayLock {
    /// Whether this instance holds the lock (is the active relay).
    pub(super) fn held(&self) -> bool {
        self.held
    }

    /// Opens the session if needed and takes the lock if it is free: the
    /// session to publish on if this instance is the active relay, `None`
    /// while another instance is.
    pub(super) async fn take(
        &mut self,
        pool: &PgPool,
        lock_key: i64,
    ) -> Result<Option<&mut PgConnection>, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let mut fresh = PgConnection::connect_with(&lock_session(pool)).await?;
                // The relay's writes (deleting published rows, parking) need
                // not wait for the WAL flush: a delete lost in a database
                // crash only makes its rows publish again, which consumers'
                // dedup absorbs, and the WAL keeps commits in order, so what
                // reappears is the newest deletes, later events of a key with
                // their earlier ones. The order's own transaction, and every
                // consumer's, stay synchronous.
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut fresh)
                    .await?;
                fresh
            }
        };
        let conn = self.conn.insert(conn);
        if !self.held {
            self.held = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(lock_key)
                .fetch_one(&mut *conn)
                .await?;
            if !self.held {
                // Another instance is the active relay; it publishes the rows.
                return Ok(None);
            }
            tracing::info!("this instance is now the active relay");
        }
        Ok(Some(conn))
    }

    /// The session may be broken (a database error): drops it, and the lock
    /// with it, to start over with a new one.
    pub(super) fn forget(&mut self) {
        self.conn = None;
        self.held = false;
    }

    /// Closes the session, which releases the lock at once for another
    /// instance.
    pub(super) async fn release(self) {
        if let Some(conn) = self.conn
            && let Err(e) = conn.close().await
        {
            tracing::debug!(error = %e, "closing the relay's lock session");
        }
    }
}
