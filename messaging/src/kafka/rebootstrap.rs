//! The bootstrap servers put back into a client that has no broker left.
//!
//! Since librdkafka 2.10, a client removes every broker that a metadata
//! response leaves out, with its thread. A KRaft broker that is fenced (it
//! woke from a pause longer than its session with the controller, or it
//! is starting) answers metadata requests without listing itself: a
//! client of a one-node cluster that asks then is left with no broker at
//! all. Nothing in librdkafka 2.12 brings one back: its re-bootstrap starts
//! when the known brokers go down or when a metadata request goes
//! unanswered, and with no broker neither happens. The client waits for
//! ever: a consumer reads nothing, a producer sends nothing, and neither
//! reports an error (confluentinc/librdkafka#5301, open; the chaos run's
//! `kafka-outage` left invoicing so, SIGSTOP for 12 s).
//!
//! [`Rebootstrap`] watches the client's statistics (every
//! [`STATISTICS_INTERVAL_MS`]) and, when they list no broker besides
//! librdkafka's internal and logical ones, adds the bootstrap servers again,
//! as librdkafka's own re-bootstrap does (`rd_kafka_brokers_add`). The client
//! then connects, learns the cluster's brokers, and goes on: a consumer keeps
//! its group membership and its stored offsets.

use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafka;

/// How often the clients report statistics, in milliseconds: how long a
/// client may stay without brokers before [`Rebootstrap`] notices.
pub const STATISTICS_INTERVAL_MS: &str = "5000";

/// Puts the bootstrap servers back into a client that has no broker left;
/// see the module documentation. As a client's context (the producers'), or
/// inside one (the inbox's), fed each statistics report through
/// [`Rebootstrap::check`]. Needs `statistics.interval.ms` on the client, and
/// its [`Rebootstrap::binder`] attached to the client once it is created.
pub struct Rebootstrap {
    bootstrap_servers: Option<CString>,
    shared: Arc<Shared>,
}

/// What a [`Rebootstrap`] shares with its [`Binder`].
struct Shared {
    client: AtomicPtr<RDKafka>,
    added: AtomicU64,
}

/// Binds a [`Rebootstrap`] to the client it went into as (part of) the
/// context, which the client owns from then on; and tells how often it
/// added the bootstrap servers again.
pub struct Binder(Arc<Shared>);

impl Binder {
    /// Binds it to `client`, the client whose context holds its [`Rebootstrap`].
    pub fn attach<C: ClientContext>(&self, client: &Client<C>) {
        self.0.client.store(client.native_ptr(), Ordering::Release);
    }

    /// How many times the client was found without brokers and given its
    /// bootstrap servers again.
    pub fn rebootstraps(&self) -> u64 {
        self.0.added.load(Ordering::Acquire)
    }
}

impl Rebootstrap {
    /// For a client of `bootstrap_servers`.
    pub fn new(bootstrap_servers: &str) -> Self {
        Rebootstrap {
            // librdkafka refuses a list with a NUL byte in it anyway.
            bootstrap_servers: CString::new(bootstrap_servers).ok(),
            shared: Arc::new(Shared {
                client: AtomicPtr::new(std::ptr::null_mut()),
                added: AtomicU64::new(0),
            }),
        }
    }

    /// What binds it to its client, taken before it goes into the client.
    pub fn binder(&self) -> Binder {
        Binder(Arc::clone(&self.shared))
    }

    /// Adds the bootstrap servers again when `statistics` list no broker
    /// but librdkafka's internal and logical ones. Call it from the
    /// statistics callback of the client it is attached to.
    pub fn check(&self, statistics: &Statistics) {
        if !brokerless(statistics.brokers.values().map(|b| b.source.as_str())) {
            return;
        }
        let client = self.shared.client.load(Ordering::Acquire);
        let Some(servers) = self.bootstrap_servers.as_ref() else {
            return;
        };
        if client.is_null() {
            return;
        }
        // SAFETY: `client` is the handle of the client whose statistics
        // callback calls us (`Binder::attach` stored it, and this value lives in
        // that client's context): librdkafka runs the callback inside a
        // poll of that same handle, so the handle is alive for the whole
        // call. `rd_kafka_brokers_add` is thread-safe and only reads the
        // NUL-terminated list, which outlives the call.
        let added = unsafe { rdkafka::bindings::rd_kafka_brokers_add(client, servers.as_ptr()) };
        self.shared.added.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(
            client = %statistics.client_id,
            bootstrap_servers = %servers.to_string_lossy(),
            added,
            "the Kafka client has no broker left (a metadata response listed none: a fenced \
             broker's, confluentinc/librdkafka#5301); its bootstrap servers are added again"
        );
    }
}

impl ClientContext for Rebootstrap {
    fn stats(&self, statistics: Statistics) {
        self.check(&statistics);
    }
}

/// Whether a client whose brokers have these `sources` (`learned`,
/// `configured`, `internal`, `logical`) has none it can connect to.
fn brokerless<'a>(sources: impl IntoIterator<Item = &'a str>) -> bool {
    !sources
        .into_iter()
        .any(|source| matches!(source, "learned" | "configured"))
}

#[cfg(test)]
mod tests {
    use super::brokerless;

    #[test]
    fn a_client_with_only_its_internal_and_logical_brokers_has_none() {
        assert!(brokerless([]));
        assert!(brokerless(["internal", "logical"]));
        assert!(!brokerless(["internal", "logical", "learned"]));
        assert!(!brokerless(["internal", "configured"]));
    }
}
