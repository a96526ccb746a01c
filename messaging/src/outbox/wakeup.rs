//! Wake-up: how the relay learns that rows were committed, without a
//! `NOTIFY` in the order's transaction.
//!
//! A commit wakes this instance's relay in-process ([`Wakeup`]); the relays
//! of other instances hear one coalesced `NOTIFY` on [`CHANNEL`] per
//! [`NOTIFY_INTERVAL`], sent outside any order transaction; an operator's
//! command that changes rows ([`super::parked`]) sends one too. Polling
//! covers anything missed: a notification sent while the listener
//! reconnects is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL channel the relays listen on, for wake-ups across instances.
pub const CHANNEL: &str = "outbox";

/// Wakes the relay after outbox rows were committed, without putting a
/// `NOTIFY` in the writing transaction.
///
/// PostgreSQL queues a transaction's notifications under one database-wide
/// lock held through its commit, WAL flush included: with a `NOTIFY` in every
/// order's transaction, every order commit waits for the one before it, and a
/// slow disk (a Kafka broker recovering its log on the same machine, say)
/// slows intake for everyone. Instead, a committed write wakes this
/// instance's relay in-process at once; when another instance is the active
/// relay, one `NOTIFY` on [`CHANNEL`], outside any order transaction, is sent
/// for all the commits of a short interval (the relay's notifier task).
/// Polling still covers anything missed.
#[derive(Debug, Clone, Default)]
pub struct Wakeup {
    inner: Arc<WakeupInner>,
}

#[derive(Debug, Default)]
struct WakeupInner {
    /// This instance's relay.
    local: Notify,
    /// The notifier of the other instances' relays.
    others: Notify,
    /// Whether this instance holds the relay lock (then no one else needs waking).
    leading: AtomicBool,
}

impl Wakeup {
    /// A wake-up with nobody waiting yet.
    pub fn new() -> Self {
        Wakeup::default()
    }

    /// Outbox rows were committed: wake the relay that will publish them.
    pub fn committed(&self) {
        self.inner.local.notify_one();
        if !self.inner.leading.load(Ordering::Relaxed) {
            self.inner.others.notify_one();
        }
    }

    /// Resolves at the next [`committed`](Self::committed) (or at once if one
    /// came since the last wait).
    pub async fn local(&self) {
        self.inner.local.notified().await;
    }

    /// Resolves when another instance's relay should be told.
    pub async fn others(&self) {
        self.inner.others.notified().await;
    }

    /// Records whether this instance is the active relay.
    pub fn set_leading(&self, leading: bool) {
        self.inner.leading.store(leading, Ordering::Relaxed);
    }
}

/// The shortest time between two wake-up `NOTIFY`s of this instance: the
/// commits of one interval share one notification.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(5);

/// Tells the other instances' relays about this instance's commits, with at
/// most one `NOTIFY` per [`NOTIFY_INTERVAL`], outside any order transaction.
pub(super) async fn notify_other_instances(
    pool: PgPool,
    wakeup: Wakeup,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakeup.others() => {}
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "wake-up NOTIFY failed; the active relay polls");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(NOTIFY_INTERVAL) => {}
        }
    }
}

/// Opens the listener on [`CHANNEL`]; `None` (polling only) when it cannot.
pub(super) async fn listen(pool: &PgPool) -> Option<PgListener> {
    match PgListener::connect_with(pool).await {
        Ok(mut listener) => match listener.listen(CHANNEL).await {
            Ok(()) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling only");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the NOTIFY listener; polling only");
            None
        }
    }
}

/// Waits for a notification; returns false when the listener broke (it is
/// then reopened, and polling covers anything missed meanwhile). Every
/// notification already readable is consumed too: one batch serves them all,
/// so a burst of commits wakes the relay once, not once per order.
pub(super) async fn wait_for_notification(listener: &mut Option<PgListener>) -> bool {
    let Some(l) = listener else {
        return std::future::pending().await;
    };
    match l.try_recv().await {
        Ok(Some(_)) => {
            while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::ZERO, l.try_recv()).await {}
            true
        }
        Ok(None) | Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn commits_wake_the_local_relay_once_per_burst_and_others_only_when_not_leading() {
        let wakeup = Wakeup::new();
        wakeup.set_leading(true);
        for _ in 0..5 {
            wakeup.committed();
        }
        tokio::time::timeout(Duration::from_secs(1), wakeup.local())
            .await
            .expect("the burst woke the local relay");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), wakeup.local())
                .await
                .is_err(),
            "a burst is one wake-up"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(20), wakeup.others())
                .await
                .is_err(),
            "the active relay needs no NOTIFY"
        );
        wakeup.set_leading(false);
        wakeup.committed();
        tokio::time::timeout(Duration::from_secs(1), wakeup.others())
            .await
            .expect("another instance's relay is told");
    }
}
