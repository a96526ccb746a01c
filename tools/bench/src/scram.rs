//! What SASL/SCRAM costs: the same clients, in the same run, through the two
//! client listeners of the benchmark's broker.
//!
//! Every broker of the project authenticates its clients with
//! SASL/SCRAM-SHA-512 and authorises every request. The benchmark's private
//! broker alone gets a second client listener without authentication
//! ([`devinfra::kafka::unauthenticated_listener`]), so that "before" and
//! "after" run on one broker, one machine and one run:
//!
//! - **after** is the listener every broker has: SCRAM-SHA-512 over plain
//!   TCP, as order-service's principal (the relay) or the benchmark's own
//!   principal `bench` (ProducerPerformance, the fresh producers);
//! - **before** is the listener without authentication: the client is
//!   `User:ANONYMOUS`, and the authorizer still checks every request.
//!   ANONYMOUS gets exactly the ACLs of the principals it stands in for,
//!   not super-user rights (a super user skips the ACL look-up), so both
//!   sides pay the same authorisation and the difference is authentication.
//!
//! SASL without TLS wraps nothing: once a connection is authenticated, its
//! requests are the same bytes as on the plaintext listener. SCRAM costs at
//! each new connection (the client's PBKDF2 over the credential's
//! iterations, and the extra round trips of the handshake), so besides the
//! throughput of long-lived producers, [`fresh_clients`] times new clients:
//! to their first metadata answer (the connection's set-up alone), and, with
//! the relay's producer settings, to their first acknowledged record.

use std::time::{Duration, Instant};

use platform::config::{KafkaAuth, Password};
use platform::services::ORDER_SERVICE;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};

use super::ceilings::CEILING_TOPIC;
use super::{BenchError, progress};
use devinfra::InfraError;
use devinfra::kafka::access::{self, Grant, Operation, Principal, Resource, Scope};
use devinfra::private::PrivateInfra;

/// The principal of a client of the unauthenticated listener.
const ANONYMOUS: &str = "ANONYMOUS";

/// The benchmark's own SCRAM principal (ProducerPerformance, fresh
/// producers), which exists only on the benchmark's private cluster.
const BENCH_PRINCIPAL: &str = "bench";

/// One way in to the broker: a listener and who connects through it.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    /// How the report names it.
    pub(crate) name: &'static str,
    /// Its addresses.
    pub(crate) bootstrap: String,
    /// How the benchmark's own clients authenticate there.
    pub(crate) auth: KafkaAuth,
    /// What order-service's environment needs to publish through it.
    pub(crate) service_env: Vec<(String, String)>,
}

/// The two listeners measured side by side.
#[derive(Debug, Clone)]
pub(crate) struct Listeners {
    /// SASL/SCRAM-SHA-512: what every broker of the project runs.
    pub(crate) scram: Listener,
    /// No authentication (`User:ANONYMOUS`), on the benchmark's broker only.
    pub(crate) plain: Listener,
}

impl Listeners {
    /// Creates the `bench` principal (Write on the ceiling topic) and gives
    /// `User:ANONYMOUS` the same ACLs as order-service's principal and
    /// `bench` together, on `infra`'s cluster.
    pub(crate) async fn prepare(infra: &PrivateInfra) -> Result<Self, BenchError> {
        let plain_bootstrap = infra.unauthenticated_bootstrap().ok_or_else(|| {
            BenchError::Run("the benchmark's broker has no unauthenticated listener".into())
        })?;
        let bootstrap = infra.cluster.bootstrap_servers();
        let bench = Principal {
            name: BENCH_PRINCIPAL.to_owned(),
            // LOCAL DEVELOPMENT DEFAULT, like every principal's: its name.
            password: BENCH_PRINCIPAL.to_owned(),
            grants: vec![Grant {
                resource: Resource::Topic,
                name: CEILING_TOPIC.to_owned(),
                operation: Operation::Write,
            }],
        };
        devinfra::kafka::add_principal(&bootstrap, &bench)
            .await
            .map_err(InfraError::from)?;
        let order_service = access::principals(&Scope::flow())
            .into_iter()
            .find(|p| p.name == ORDER_SERVICE.name)
            .ok_or_else(|| BenchError::Run("order-service has no Kafka principal".into()))?;
        for grant in order_service.grants.iter().chain(&bench.grants) {
            devinfra::kafka::grant(&bootstrap, ANONYMOUS, grant)
                .await
                .map_err(InfraError::from)?;
        }
        let scram = KafkaAuth::sasl(access::SCRAM_MECHANISM, &bench.name, &bench.password);
        let plain = KafkaAuth {
            security_protocol: "PLAINTEXT".to_owned(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password: Password::new(""),
        };
        Ok(Listeners {
            scram: Listener {
                name: "SCRAM-SHA-512",
                bootstrap,
                auth: scram,
                service_env: Vec::new(),
            },
            plain: Listener {
                name: "no authentication",
                bootstrap: plain_bootstrap.to_owned(),
                auth: plain,
                service_env: vec![
                    (
                        "KAFKA_BOOTSTRAP_SERVERS".to_owned(),
                        plain_bootstrap.to_owned(),
                    ),
                    ("KAFKA_SECURITY_PROTOCOL".to_owned(), "PLAINTEXT".to_owned()),
                ],
            },
        })
    }
}

/// How long new clients took, one after the other.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct Timed {
    /// Clients timed.
    pub(crate) clients: usize,
    /// Their median time, ms.
    pub(crate) median_ms: f64,
    /// The slowest, ms.
    pub(crate) max_ms: f64,
}

impl Timed {
    fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        Timed {
            clients: times.len(),
            median_ms: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
            max_ms: times.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// New clients through one listener.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct FreshClients {
    /// From creation to the first metadata answer: connecting and authenticating.
    pub(crate) metadata: Timed,
    /// From creation to the acknowledgement of a first record, with the
    /// relay's producer settings (idempotent, `acks=all`): also the
    /// metadata of the topic, the producer id and one produce.
    pub(crate) delivery: Timed,
}

/// Times `count` new clients through `listener` each way, one after the other.
pub(crate) async fn fresh_clients(
    listener: &Listener,
    count: usize,
) -> Result<FreshClients, BenchError> {
    let (mut metadata, mut delivery) = (Vec::new(), Vec::new());
    for i in 0..count.max(1) {
        let began = Instant::now();
        let client: BaseProducer = client_config(listener).create()?;
        tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(CEILING_TOPIC), Duration::from_secs(30))
        })
        .await
        .map_err(|e| BenchError::Run(format!("the metadata request's task failed: {e}")))??;
        metadata.push(began.elapsed().as_secs_f64() * 1000.0);

        let began = Instant::now();
        let producer: FutureProducer = client_config(listener)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()?;
        let key = format!("first-delivery-{i}");
        producer
            .send(
                FutureRecord::to(CEILING_TOPIC).key(&key).payload("{}"),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(error, _)| BenchError::Kafka(error))?;
        delivery.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    let fresh = FreshClients {
        metadata: Timed::of(metadata),
        delivery: Timed::of(delivery),
    };
    progress(&format!(
        "new clients through {}: first metadata answer after {:.1} ms, first delivery after {:.1} ms (medians of {})",
        listener.name, fresh.metadata.median_ms, fresh.delivery.median_ms, fresh.metadata.clients
    ));
    Ok(fresh)
}

fn client_config(listener: &Listener) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    for (key, value) in listener.auth.client_properties() {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &listener.bootstrap);
    config
}

/// What the same run measured through both listeners (the SCRAM side of the
/// ceiling and of the drain are the report's main figures).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ScramCost {
    /// ProducerPerformance through the unauthenticated listener.
    pub(crate) producer_plain: super::ceilings::ProducerResult,
    /// The relay drain with order-service on the unauthenticated listener.
    pub(crate) drain_plain: super::drain::DrainResult,
    /// New clients through SCRAM.
    pub(crate) fresh_scram: FreshClients,
    /// New clients without authentication.
    pub(crate) fresh_plain: FreshClients,
}
