//! The faults of each scenario, injected while the load runs.
//!
//! Each injector waits until a share of the orders has been accepted, so the
//! faults land in the middle of the stream whatever the rate, and records the
//! moment of every fault (the audit measures recovery from it) together with
//! the checks only that scenario can make. Outages last a fixed, deliberate
//! time ([`OUTAGE`]): that is the fault itself, not a wait for a condition.

use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use rand::rngs::StdRng;
use rdkafka::message::Message;
use serde_json::Value;
use tokio::sync::watch;

use devinfra::KafkaBroker;
use devinfra::private::PrivateInfra;
use devinfra::process::{self, Signal};
use devinfra::stack::{Service, ServiceProcess, build_binary, instance_name, log_tail};
use orderflow_client::{ApiClient, CancelOrder, ClientError, Reply};
use platform::services::{self, INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use shared_events::topics::ORDERS as ORDERS_TOPIC;

use super::load::Accepted;
use super::topic::{self, EndOffsets};
use super::{ChaosError, Check, Scenario};

/// How long Kafka stays away in a fault.
const OUTAGE: Duration = Duration::from_secs(3);

/// The Idempotency-Key prefix of the orders sent to probe a PostgreSQL outage
/// (they must be refused; the audit does not count them as the load's).
pub(crate) const PROBE_KEY_PREFIX: &str = "chaos-probe-";

/// How long a self-aborting consumer may take to reach its crash point.
const ABORT_DEADLINE: Duration = Duration::from_secs(300);

/// How long a restarted broker may take to be back in every partition's ISR.
const REJOIN_DEADLINE: Duration = Duration::from_secs(120);

/// How long every node of a cluster may take to know a topic (its partitions,
/// their replicas and its configuration) before its replication is judged.
const TOPIC_KNOWN_DEADLINE: Duration = Duration::from_secs(60);

/// How long the orders of the partitions that take records may take from
/// their 201 to both effects (p99) while one partition takes none: half the
/// relay's `message.timeout.ms` (30 s), which every relay batch waited for
/// the stuck partition's records before partitions were benched.
const SLOW_PARTITION_P99_BOUND: Duration = Duration::from_secs(15);

/// How long the orders of the partitions that take records may take, all
/// of them, to reach both consumers once the load is over (else the check fails).
const SLOW_PARTITION_SETTLE: Duration = Duration::from_secs(180);

/// Orders placed while the partition takes no records, measured.
const SLOW_PARTITION_PROBES: usize = 60;

/// The pace of those orders (10 a second).
const PROBE_PACE: Duration = Duration::from_millis(100);

/// How long one of them may be retried before the scenario gives up.
const PROBE_DEADLINE: Duration = Duration::from_secs(60);

/// How long Kafka may take to carry out a partition reassignment.
const REASSIGN_DEADLINE: Duration = Duration::from_secs(120);

/// How long a joining consumer may take to be assigned partitions.
const ASSIGNMENT_DEADLINE: Duration = Duration::from_secs(60);

/// Poison records sent per kind in the duplicates-and-poison scenario.
const POISON_PER_KIND: usize = 4;

/// How long invoicing's role goes without INSERT on its effect table.
const PRIVILEGE_OUTAGE: Duration = Duration::from_secs(10);

/// The orders topic's `max.message.bytes` in the oversized-event scenario:
/// every order the load generates fits, the oversized one (100 lines of long
/// names, about 30 kB) does not.
const SMALL_MAX_MESSAGE_BYTES: &str = "16384";

/// The relay's delivery timeout in the kafka-outage scenario, and how long
/// Kafka stays away there: longer than the timeout, so that records fail on
/// it while later ones for the same orders wait in the outbox.
const SHORT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);
const LONG_OUTAGE: Duration = Duration::from_secs(12);

/// How long the oversized event may take to be reported parked.
const PARK_DEADLINE: Duration = Duration::from_secs(60);

/// How long a record both consumers refuse may take to be dead-lettered by
/// both, and a stalled consumer to say so on `/health/ready` (a dead letter
/// fails only after the producer's `message.timeout.ms`, 30 s).
const STALL_DEADLINE: Duration = Duration::from_secs(120);

/// How often a condition is probed.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Copies of applied records written per partition in stall-past-retention:
/// the records the stopped consumer never reads before retention deletes them.
const COPIES_PER_PARTITION: usize = 2;

/// The envelope in `payload` (an `OrderPlaced`) with event id `event_id` and
/// without its lines: a record every consumer refuses.
fn without_lines(payload: &[u8], event_id: uuid::Uuid) -> Vec<u8> {
    let mut envelope: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    if let Some(fields) = envelope.as_object_mut() {
        fields.insert("event_id".into(), Value::String(event_id.to_string()));
        if let Some(data) = fields.get_mut("data").and_then(Value::as_object_mut) {
            data.remove("lines");
        }
    }
    envelope.to_string().into_bytes()
}

/// Probes `check` every [`PROBE_EVERY`] until it holds or `deadline` passes;
/// whether it held.
async fn eventually<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Probes `url` (a `/health/ready`) until it answers 503 with `needle` in
/// its body, or `deadline` passes; that body, if it came.
async fn not_ready_saying(
    client: &ApiClient,
    url: &str,
    needle: &str,
    deadline: Duration,
) -> Option<String> {
    let started = Instant::now();
    loop {
        if let Ok(reply) = client.get(url).await
            && reply.status == 503
            && reply.body.contains(needle)
        {
            return Some(reply.body);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// One injected fault: when, and what.
#[derive(Debug, Clone)]
pub(crate) struct FaultEvent {
    pub(crate) at: SystemTime,
    pub(crate) what: String,
}

/// What the injector did and found.
#[derive(Debug, Default)]
pub(crate) struct Injected {
    pub(crate) faults: Vec<FaultEvent>,
    pub(crate) checks: Vec<Check>,
    pub(crate) notes: Vec<String>,
    /// Records each consumer (invoicing, shipping) should have added to its
    /// dead-letter topic because of this scenario.
    pub(crate) expected_dead_letters: [i64; 2],
    /// Orders the injector placed itself, audited like the load's.
    pub(crate) accepted: Vec<Accepted>,
}

/// The injector of one scenario.
pub(crate) struct Injector<'a> {
    pub(crate) infra: &'a mut PrivateInfra,
    /// The Kafka release's JVM and jars, for Kafka's own command-line tools.
    pub(crate) runtime: &'a devinfra::KafkaRuntime,
    pub(crate) progress: watch::Receiver<usize>,
    pub(crate) orders: usize,
    pub(crate) rng: StdRng,
    /// The topic's end offsets when the scenario started.
    pub(crate) from: EndOffsets,
    pub(crate) out: Injected,
}

impl Injector<'_> {
    /// Injects the faults of `scenario`; returns what happened.
    pub(crate) async fn run(mut self, scenario: Scenario) -> Result<Injected, ChaosError> {
        match scenario {
            Scenario::OrderService => self.order_service_kills().await?,
            Scenario::Invoicing => self.invoicing_aborts().await?,
            Scenario::Shipping => self.shipping_kills().await?,
            Scenario::KafkaRestart => self.kafka_restarts().await?,
            Scenario::PostgresRestart => self.postgres_restarts().await?,
            Scenario::DuplicatesAndPoison => self.duplicates_and_poison().await?,
            Scenario::Rebalance => self.rebalance().await?,
            Scenario::RevokedPrivilege => self.revoked_privilege().await?,
            Scenario::OversizedEvent => self.oversized_event().await?,
            Scenario::KafkaOutage => self.kafka_outage().await?,
            Scenario::BrokerLoss => self.broker_loss().await?,
            Scenario::ReplayStorm => self.replay_storm().await?,
            Scenario::DeadLetterTopicGone => self.dead_letter_topic_gone().await?,
            Scenario::StallPastRetention => self.stall_past_retention().await?,
            Scenario::SlowPartition => self.slow_partition().await?,
        }
        Ok(self.out)
    }

    /// Waits until `fraction` of the orders were accepted (or the load ended).
    async fn reach(&mut self, fraction: f64) {
        let target = ((self.orders as f64) * fraction).ceil() as usize;
        // An error means the load has finished: nothing more to wait for.
        let _ = self.progress.wait_for(|accepted| *accepted >= target).await;
    }

    fn fault(&mut self, what: String) {
        eprintln!("chaos:   fault: {what}");
        self.out.faults.push(FaultEvent {
            at: SystemTime::now(),
            what,
        });
    }

    fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.out.checks.push(Check {
            name: name.to_owned(),
            passed,
            detail,
        });
    }

    fn running(&self, service: Service, instance: u32) -> Result<ServiceProcess, ChaosError> {
        self.infra.stack.find(service, instance)?.ok_or_else(|| {
            ChaosError::Scenario(format!(
                "{} is not running",
                instance_name(service, instance)
            ))
        })
    }

    // 1. SIGKILL order-service while its relay has a batch in flight.
    async fn order_service_kills(&mut self) -> Result<(), ChaosError> {
        let mut in_flight = 0;
        for fraction in [0.25, 0.5, 0.75] {
            self.reach(fraction).await;
            let batch = self.relay_batch_in_flight(Duration::from_secs(5)).await?;
            self.running(ORDER_SERVICE, 1)?.kill()?;
            in_flight += usize::from(batch);
            self.fault(format!(
                "SIGKILL order-service at {:.0}% of the orders{}",
                fraction * 100.0,
                if batch {
                    ", relay batch in flight"
                } else {
                    ", relay idle for 5 s"
                }
            ));
            self.infra.launch(ORDER_SERVICE, Vec::new()).await?;
        }
        self.out.notes.push(format!(
            "{in_flight} of 3 kills came while the relay had a batch in flight"
        ));
        Ok(())
    }

    /// Polls until the relay has a batch between claim and recording its
    /// outcome (its `outbox_relay_batch_in_flight` gauge), up to `limit`.
    async fn relay_batch_in_flight(&self, limit: Duration) -> Result<bool, ChaosError> {
        let api = ApiClient::new()?;
        let base = self.infra.url(ORDER_SERVICE);
        let started = Instant::now();
        while started.elapsed() < limit {
            if api
                .metric(&base, "outbox_relay_batch_in_flight")
                .await
                .is_ok_and(|v| v >= 1.0)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    // 2. invoicing-service aborts itself after a batch's database commit,
    // before its offsets. Batches take what has arrived, up to
    // INBOX_BATCH_MAX: the faulty instances run with small batches and crash
    // after their third, so each round leaves work for the next.
    async fn invoicing_aborts(&mut self) -> Result<(), ChaosError> {
        let per: u64 = 3;
        self.running(INVOICING_SERVICE, 1)?.stop().await?;
        let mut confirmed = 0;
        for round in 1..=3 {
            let mut faulty = self
                .infra
                .launch(
                    INVOICING_SERVICE,
                    vec![
                        ("FAULT_ABORT_AFTER_COMMIT".into(), per.to_string()),
                        ("INBOX_BATCH_MAX".into(), "10".into()),
                    ],
                )
                .await?;
            let started = Instant::now();
            while faulty.is_running() && started.elapsed() < ABORT_DEADLINE {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if faulty.is_running() {
                self.check(
                    "invoicing aborted at its crash point",
                    false,
                    format!("round {round}: still running after {ABORT_DEADLINE:?}"),
                );
                faulty.kill()?;
            } else {
                let tail = log_tail(faulty.log_file(), 30);
                let aborted = tail.contains("injected fault: aborting after commit");
                confirmed += usize::from(aborted);
                self.fault(format!(
                    "invoicing-service aborted after batch commit {per} of its run, before storing the offsets{}",
                    if aborted { "" } else { " (no abort line in its log!)" }
                ));
            }
        }
        self.check(
            "invoicing aborted at its crash point",
            confirmed == 3,
            format!("{confirmed} of 3 aborts confirmed by the service's log"),
        );
        self.infra.launch(INVOICING_SERVICE, Vec::new()).await?;
        Ok(())
    }

    // 3. SIGKILL shipping-service at random moments, several times.
    async fn shipping_kills(&mut self) -> Result<(), ChaosError> {
        let mut moments: Vec<f64> = (0..4).map(|_| self.rng.random_range(0.1..0.9)).collect();
        moments.sort_by(f64::total_cmp);
        for fraction in moments {
            self.reach(fraction).await;
            self.running(SHIPPING_SERVICE, 1)?.kill()?;
            let down = Duration::from_millis(self.rng.random_range(0..1_500));
            self.fault(format!(
                "SIGKILL shipping-service at {:.0}% of the orders, down {} ms",
                fraction * 100.0,
                down.as_millis()
            ));
            tokio::time::sleep(down).await;
            self.infra.launch(SHIPPING_SERVICE, Vec::new()).await?;
        }
        Ok(())
    }

    // 4. Restart the (single) Kafka broker while orders keep arriving.
    async fn kafka_restarts(&mut self) -> Result<(), ChaosError> {
        self.reach(0.3).await;
        self.broker(1)?.stop().await?;
        self.fault(format!(
            "Kafka stopped (SIGTERM), restarted after {}s",
            OUTAGE.as_secs()
        ));
        tokio::time::sleep(OUTAGE).await;
        self.broker(1)?.start().await?;

        self.reach(0.7).await;
        self.broker(1)?.kill()?;
        self.fault(format!(
            "Kafka killed (SIGKILL), restarted after {}s",
            OUTAGE.as_secs()
        ));
        tokio::time::sleep(OUTAGE).await;
        self.broker(1)?.start().await?;
        Ok(())
    }

    fn broker(&mut self, node: u32) -> Result<&mut KafkaBroker, ChaosError> {
        self.infra
            .cluster
            .broker_mut(node)
            .ok_or_else(|| ChaosError::Scenario(format!("the cluster has no node {node}")))
    }

    // 5. Restart PostgreSQL: 503 problem+json while it is away, no crash loop.
    async fn postgres_restarts(&mut self) -> Result<(), ChaosError> {
        let pids_before = self.pids()?;
        let mut probes = ProbeTally::default();

        self.reach(0.3).await;
        let stopped = Instant::now();
        self.infra.postgres.stop().await?;
        self.fault("PostgreSQL stopped (fast shutdown)".into());
        self.probe_while_away(&mut probes).await?;
        self.infra.postgres.start().await?;
        self.out.notes.push(format!(
            "PostgreSQL was away {:.1}s after its fast shutdown",
            stopped.elapsed().as_secs_f64()
        ));

        self.reach(0.7).await;
        let killed = Instant::now();
        self.infra.postgres.kill()?;
        self.fault("PostgreSQL killed (SIGKILL); crash recovery on restart".into());
        self.probe_while_away(&mut probes).await?;
        self.infra.postgres.start().await?;
        self.out.notes.push(format!(
            "PostgreSQL was away {:.1}s after the kill, crash recovery included",
            killed.elapsed().as_secs_f64()
        ));

        self.check(
            "503 problem+json while PostgreSQL was away",
            probes.sent > 0 && probes.problem_503 == probes.sent,
            format!(
                "{} of {} API requests answered 503 problem+json{}",
                probes.problem_503,
                probes.sent,
                probes
                    .other
                    .first()
                    .map(|o| format!("; e.g. {o}"))
                    .unwrap_or_default()
            ),
        );
        let pids_after = self.pids()?;
        self.check(
            "services reconnected without restarting",
            pids_after == pids_before,
            format!("pids before {pids_before:?}, after {pids_after:?}"),
        );
        Ok(())
    }

    fn pids(&self) -> Result<Vec<u32>, ChaosError> {
        services::ALL
            .iter()
            .map(|&s| self.running(s, 1).map(|p| p.pid()))
            .collect()
    }

    /// Probes the three APIs every 500 ms for [`OUTAGE`].
    async fn probe_while_away(&mut self, tally: &mut ProbeTally) -> Result<(), ChaosError> {
        let probe_timeout = Duration::from_secs(10);
        let client = ApiClient::with_timeouts(probe_timeout, probe_timeout)?;
        let order = loadgen::OrderGenerator::new(u64::MAX).next_order().body;
        let order_url = self.infra.url(ORDER_SERVICE);
        let gets: Vec<String> = services::ALL
            .iter()
            .map(|&s| format!("{}{}?limit=1", self.infra.url(s), s.collection))
            .collect();
        // Two rounds half a second apart, each request of a round sent at
        // once; a request waits up to its service's pool acquire timeout (3 s
        // for orders, 5 s for the consumers) before it is answered, and every
        // answer must come while the server is still down.
        let round = |delay: Duration| {
            let (client, order, order_url, gets) = (
                client.clone(),
                order.clone(),
                order_url.clone(),
                gets.clone(),
            );
            async move {
                tokio::time::sleep(delay).await;
                let key = format!("{PROBE_KEY_PREFIX}{}", uuid::Uuid::new_v4());
                let post = client.send_order(&order_url, &order, Some(&key));
                let reads = futures::future::join_all(gets.iter().map(|url| client.get(url)));
                let (post, reads) = tokio::join!(post, reads);
                let mut answers = vec![("POST /orders".to_owned(), post)];
                answers.extend(gets.iter().cloned().zip(reads));
                answers
            }
        };
        let (first, second) =
            tokio::join!(round(Duration::ZERO), round(Duration::from_millis(500)));
        for (what, answer) in first.into_iter().chain(second) {
            tally.record(&what, answer);
        }
        Ok(())
    }

    // 6. Duplicates and poison straight onto the topic.
    async fn duplicates_and_poison(&mut self) -> Result<(), ChaosError> {
        self.reach(0.5).await;
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let now = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
        let records = topic::read_range(&bootstrap, ORDERS_TOPIC, &self.from, &now).await?;
        let Some(sample) = records.first() else {
            return Err(ChaosError::Scenario(
                "no records on the topic to duplicate".into(),
            ));
        };
        let producer = topic::producer(&bootstrap)?;
        let step = (records.len() / 200).max(1);
        let duplicates: Vec<_> = records.iter().step_by(step).cloned().collect();
        topic::reproduce(&producer, &duplicates).await?;

        let payload = sample.payload().unwrap_or_default().to_vec();
        let without_lines = without_lines(&payload, uuid::Uuid::now_v7());
        let truncated = payload[..payload.len() / 2].to_vec();
        let kinds: [Option<&[u8]>; 5] = [
            Some(b"\x00\xff\xfe not JSON at all"),
            None,
            Some(b"[1, 2, 3]"),
            Some(&without_lines),
            Some(&truncated),
        ];
        let mut poison = 0;
        for (i, record) in records
            .iter()
            .step_by(step.max(3))
            .take(POISON_PER_KIND * kinds.len())
            .enumerate()
        {
            let key = record
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            topic::send_poison(&producer, ORDERS_TOPIC, &key, kinds[i % kinds.len()]).await?;
            poison += 1;
        }
        self.fault(format!(
            "re-sent {} records as they were and sent {poison} poison records (5 kinds) among them",
            duplicates.len()
        ));
        self.out.expected_dead_letters = [poison, poison];
        Ok(())
    }

    // 7. A second shipping instance joins and leaves the group mid-stream.
    async fn rebalance(&mut self) -> Result<(), ChaosError> {
        let (mut assigned, mut applied) = (0, 0.0);
        for (join, leave) in [(0.2, 0.45), (0.6, 0.85)] {
            self.reach(join).await;
            let second = self.infra.stack.start(SHIPPING_SERVICE, 2).await?;
            self.fault(format!(
                "shipping-service-2 joined at {:.0}% of the orders",
                join * 100.0
            ));
            // The group has rebalanced once the newcomer logs its assignment;
            // it leaves only after that, however fast the load goes.
            let started = Instant::now();
            let mut got = false;
            while !got && started.elapsed() < ASSIGNMENT_DEADLINE {
                got = log_tail(second.log_file(), 200).contains("partitions assigned");
                if !got {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            assigned += usize::from(got);
            self.reach(leave).await;
            applied += ApiClient::new()?
                .metric(&second.base_url(), "inbox_records_processed_total")
                .await
                .unwrap_or(0.0);
            self.running(SHIPPING_SERVICE, 2)?.stop().await?;
            self.fault(format!(
                "shipping-service-2 left (SIGTERM) at {:.0}% of the orders",
                leave * 100.0
            ));
        }
        self.check(
            "the group rebalanced onto the second instance each time it joined",
            assigned == 2,
            format!("shipping-service-2 was assigned partitions {assigned} of 2 times"),
        );
        self.out.notes.push(format!(
            "shipping-service-2 applied {applied} records while it was in the group"
        ));
        Ok(())
    }

    // 8. invoicing's role loses INSERT on its effect table for a while: the
    // service's own fault, never the records'. Nothing may be dead-lettered;
    // readiness must say so meanwhile; the flow resumes by itself.
    async fn revoked_privilege(&mut self) -> Result<(), ChaosError> {
        let pid = self.running(INVOICING_SERVICE, 1)?.pid();
        let role = INVOICING_SERVICE.database;
        let pool = self.infra.pools.invoicing.clone();
        let ready_url = format!("{}/health/ready", self.infra.url(INVOICING_SERVICE));
        let client = ApiClient::with_timeouts(Duration::from_secs(5), Duration::from_secs(5))?;

        self.reach(0.3).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REVOKE INSERT ON invoices FROM {role}"
        )))
        .execute(&pool)
        .await
        .map_err(ChaosError::Database)?;
        self.fault(format!(
            "REVOKE INSERT ON invoices FROM {role} for {}s",
            PRIVILEGE_OUTAGE.as_secs()
        ));
        let revoked = Instant::now();
        let readiness = ReadinessTally::watch(&client, &ready_url, PRIVILEGE_OUTAGE).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "GRANT INSERT ON invoices TO {role}"
        )))
        .execute(&pool)
        .await
        .map_err(ChaosError::Database)?;
        self.out.notes.push(format!(
            "INSERT granted back after {:.1}s",
            revoked.elapsed().as_secs_f64()
        ));
        self.check(
            "invoicing reported not ready while it could not apply its effects",
            readiness.not_ready > 0,
            readiness.to_string(),
        );
        let now = self.running(INVOICING_SERVICE, 1)?.pid();
        self.check(
            "invoicing kept running and resumed by itself",
            now == pid,
            format!("pid before {pid}, after {now}"),
        );
        self.revoked_acl(pid).await
    }

    // 8b. invoicing's principal loses its ACL to write its dead-letter topic
    // while a poison record comes: Kafka refusing the service is the
    // service's fault, not the record's. invoicing stalls on that record and
    // says why; nothing reaches its dead-letter topic until the ACL is back,
    // then the poison alone does (shipping dead-letters it meanwhile, as ever).
    async fn revoked_acl(&mut self, pid: u32) -> Result<(), ChaosError> {
        use devinfra::kafka::access::{self, Operation, Resource, Scope};
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let scope = Scope::flow();
        let principal = scope.principal(&platform::services::INVOICING_SERVICE);
        let dead_letters = shared_events::topics::dead_letter(
            ORDERS_TOPIC,
            INVOICING_SERVICE.consumer_group.unwrap_or("invoicing"),
        );
        let grant = access::principals(&scope)
            .into_iter()
            .find(|p| p.name == principal)
            .and_then(|p| {
                p.grants.into_iter().find(|g| {
                    g.resource == Resource::Topic
                        && g.name == dead_letters
                        && g.operation == Operation::Write
                })
            })
            .ok_or_else(|| {
                ChaosError::Scenario(format!(
                    "{principal} is not declared to write {dead_letters}"
                ))
            })?;
        let ready_url = format!("{}/health/ready", self.infra.url(INVOICING_SERVICE));
        let client = ApiClient::with_timeouts(Duration::from_secs(5), Duration::from_secs(5))?;

        self.reach(0.6).await;
        devinfra::kafka::revoke(&bootstrap, &principal, &grant)
            .await
            .map_err(|e| ChaosError::Scenario(platform::error::chain(&e)))?;
        let before = topic::end_offsets(&bootstrap, &dead_letters).await?;
        let producer = topic::producer(&bootstrap)?;
        let key = uuid::Uuid::now_v7().to_string();
        topic::send_poison(
            &producer,
            ORDERS_TOPIC,
            &key,
            Some(b"\x00\xff not an event"),
        )
        .await?;
        self.out.expected_dead_letters = [1, 1];
        self.fault(format!(
            "ACL Write on {dead_letters} taken from User:{principal} for {}s, and a poison record sent",
            PRIVILEGE_OUTAGE.as_secs()
        ));
        let revoked = Instant::now();
        let readiness = ReadinessTally::watch(&client, &ready_url, PRIVILEGE_OUTAGE).await;
        let during = topic::end_offsets(&bootstrap, &dead_letters).await?;
        devinfra::kafka::grant(&bootstrap, &principal, &grant)
            .await
            .map_err(|e| ChaosError::Scenario(platform::error::chain(&e)))?;
        self.out.notes.push(format!(
            "the ACL was given back after {:.1}s",
            revoked.elapsed().as_secs_f64()
        ));
        self.check(
            "invoicing reported not ready, naming Kafka's refusal, while it could not dead-letter",
            readiness.not_ready > 0 && readiness.last_reason.contains(&dead_letters),
            readiness.to_string(),
        );
        self.check(
            "nothing reached invoicing's dead-letter topic while its ACL was gone",
            before == during,
            format!("end offsets before {before:?}, at the end of the outage {during:?}"),
        );
        let now = self.running(INVOICING_SERVICE, 1)?.pid();
        self.check(
            "invoicing kept running through the refused writes",
            now == pid,
            format!("pid before {pid}, after {now}"),
        );
        Ok(())
    }

    // 9. One order's event is larger than the topic accepts. The rest flows,
    // its cancellation waits behind it, and once an operator raises the limit
    // and retries the parked event both are published, in order.
    async fn oversized_event(&mut self) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        topic::set_topic_config(
            &bootstrap,
            ORDERS_TOPIC,
            "max.message.bytes",
            Some(SMALL_MAX_MESSAGE_BYTES),
        )
        .await?;
        self.out.notes.push(format!(
            "the orders topic's max.message.bytes was {SMALL_MAX_MESSAGE_BYTES} during the scenario"
        ));

        self.reach(0.3).await;
        let order = loadgen::OrderGenerator::new(0x5eed).large_order(100);
        let api = ApiClient::new()?;
        let base = self.infra.url(ORDER_SERVICE);
        let placed = api
            .place_order(&base, &order.body, Some("chaos-oversized-order"))
            .await
            .map_err(|e| ChaosError::Scenario(format!("placing the oversized order: {e}")))?
            .id;
        api.cancel_order(&base, placed, &CancelOrder::because("changed my mind"))
            .await
            .map_err(|e| ChaosError::Scenario(format!("cancelling the oversized order: {e}")))?;
        self.fault(format!(
            "placed order {placed} whose OrderPlaced is larger than the topic accepts, and cancelled it"
        ));
        self.out.accepted.push(Accepted {
            order_id: placed,
            expected: order.expected,
            at: SystemTime::now(),
            cancelled: true,
        });

        // The relay parks the event and holds the cancellation behind it.
        let started = Instant::now();
        let (mut parked, mut held) = (0.0, 0.0);
        while started.elapsed() < PARK_DEADLINE {
            parked = api.metric(&base, "outbox_parked").await.unwrap_or(0.0);
            held = api.metric(&base, "outbox_held").await.unwrap_or(0.0);
            if parked >= 1.0 && held >= 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.check(
            "the relay parked the oversized event and held its cancellation behind it",
            parked >= 1.0 && held >= 1.0,
            format!("outbox_parked {parked}, outbox_held {held}"),
        );

        self.reach(0.7).await;
        let now = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
        let early = topic::records_of(
            &bootstrap,
            ORDERS_TOPIC,
            &placed.to_string(),
            &self.from,
            &now,
        )
        .await?;
        self.check(
            "nothing of the parked order was published before the operator's fix",
            early.is_empty(),
            format!("{} of its records on the topic", early.len()),
        );

        // The operator's fix: raise the limit, retry the parked event.
        topic::set_topic_config(&bootstrap, ORDERS_TOPIC, "max.message.bytes", None).await?;
        let retried = self.admin(&["outbox", "retry", "--all"]).await;
        self.fault(
            "the operator raised max.message.bytes and ran `orderflow-admin outbox retry --all`"
                .into(),
        );
        self.check(
            "orderflow-admin retried the parked event",
            retried.as_ref().is_ok_and(|out| out.contains("retried 1")),
            match retried {
                Ok(out) => out.trim().to_owned(),
                Err(e) => e.to_string(),
            },
        );
        Ok(())
    }

    // 12. A record both consumers refuse, replayed three times for invoicing.
    // A replay goes to invoicing's retry topic, which only invoicing reads,
    // and takes each refusal once: shipping's dead letters stay as they
    // are, invoicing gains one per replay.
    async fn replay_storm(&mut self) -> Result<(), ChaosError> {
        self.reach(0.3).await;
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let now = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
        let records = topic::read_range(&bootstrap, ORDERS_TOPIC, &self.from, &now).await?;
        let Some(sample) = records.first() else {
            return Err(ChaosError::Scenario(
                "no record on the topic to make the poison from".into(),
            ));
        };
        let event_id = uuid::Uuid::now_v7();
        let poison = without_lines(sample.payload().unwrap_or_default(), event_id);
        let before = super::dead_letters(&bootstrap).await?;
        let producer = topic::producer(&bootstrap)?;
        let key = uuid::Uuid::now_v7().to_string();
        topic::send_poison(&producer, ORDERS_TOPIC, &key, Some(&poison)).await?;
        self.fault(format!(
            "sent OrderPlaced {event_id} without lines, which both consumers refuse"
        ));
        let both = eventually(STALL_DEADLINE, || async {
            super::dead_letters(&bootstrap).await.is_ok_and(|now| {
                now.iter()
                    .zip(&before)
                    .all(|(now, before)| now - before == 1)
            })
        })
        .await;
        self.check(
            "both consumers dead-lettered the poison",
            both,
            format!("within {}s", STALL_DEADLINE.as_secs()),
        );
        let group = INVOICING_SERVICE
            .consumer_group
            .unwrap_or(shared_events::topics::ORDERS);
        let id = event_id.to_string();
        let once =
            "took 1 of 1 replayed record(s): 0 applied (or already applied), 1 dead-lettered again";
        let mut took_once = 0;
        let mut last = String::new();
        for run in 1..=3 {
            let replayed = self
                .admin(&["dlq", "replay", group, "--event-id", &id])
                .await;
            self.fault(format!(
                "orderflow-admin dlq replay {group} --event-id {id} ({run} of 3)"
            ));
            took_once += usize::from(replayed.as_ref().is_ok_and(|out| out.contains(once)));
            last = match replayed {
                Ok(out) => out.trim().to_owned(),
                Err(e) => e.to_string(),
            };
        }
        self.check(
            "each replay took the refusal once, and invoicing refused it again",
            took_once == 3,
            format!("{took_once} of 3 replays; the last said: {last}"),
        );
        // One dead letter of each consumer, then one per replay of invoicing's.
        self.out.expected_dead_letters = [4, 1];
        Ok(())
    }

    // 13. Invoicing's dead-letter topic is deleted, then a record comes that
    // both consumers refuse. Invoicing cannot write the dead letter: it must
    // hold there and say so (503 naming the topic, inbox_stalled 1), never
    // skip the record, and resume by itself once an operator has created the
    // topic again.
    async fn dead_letter_topic_gone(&mut self) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let group = INVOICING_SERVICE
            .consumer_group
            .unwrap_or(shared_events::topics::ORDERS);
        let dlq = shared_events::topics::dead_letter(ORDERS_TOPIC, group);
        let partitions = i32::try_from(topic::end_offsets(&bootstrap, &dlq).await?.len())
            .unwrap_or(1)
            .max(1);
        let pid = self.running(INVOICING_SERVICE, 1)?.pid();
        let base = self.infra.url(INVOICING_SERVICE);
        let ready_url = format!("{base}/health/ready");
        let client = ApiClient::with_timeouts(Duration::from_secs(5), Duration::from_secs(5))?;

        self.reach(0.3).await;
        let before = super::dead_letters(&bootstrap).await?;
        topic::delete_topic(&bootstrap, &dlq).await?;
        let producer = topic::producer(&bootstrap)?;
        let key = uuid::Uuid::now_v7().to_string();
        topic::send_poison(&producer, ORDERS_TOPIC, &key, Some(b"not an envelope")).await?;
        self.fault(format!(
            "deleted {dlq}, then sent a record that is not an envelope"
        ));
        let reason = not_ready_saying(&client, &ready_url, &dlq, STALL_DEADLINE).await;
        let stalled = client.metric(&base, "inbox_stalled").await.unwrap_or(0.0);
        self.check(
            "invoicing reported the stall, naming the dead-letter topic",
            reason.is_some() && stalled >= 1.0,
            format!(
                "inbox_stalled {stalled}; /health/ready: {}",
                reason.as_deref().unwrap_or("never 503 naming the topic")
            ),
        );

        topic::create_topic(&bootstrap, &dlq, partitions).await?;
        self.fault(format!("created {dlq} again ({partitions} partitions)"));
        let resumed = eventually(STALL_DEADLINE, || async {
            client.status(&ready_url).await.is_ok_and(|s| s == 200)
        })
        .await;
        let now = self.running(INVOICING_SERVICE, 1)?.pid();
        self.check(
            "invoicing resumed by itself once the topic was back",
            resumed && now == pid,
            format!("ready again: {resumed}; pid before {pid}, after {now}"),
        );
        // The recreated topic holds only the poison's dead letter: the
        // earlier scenarios' went with the deleted one.
        let invoicing_before = before.first().copied().unwrap_or_default();
        self.out.expected_dead_letters = [1 - invoicing_before, 1];
        self.out.notes.push(format!(
            "the {invoicing_before} dead letter(s) of earlier scenarios went with the deleted topic"
        ));
        Ok(())
    }

    // 14. After the load, shipping is frozen while copies
    // of applied records come and retention deletes every record up to the
    // end: shipping's committed offsets fall below the log start. Back, it
    // must stop on them and say so (503, an error naming each partition and
    // the records gone), never commit past them; an operator, having checked
    // what the gap held (copies here), resets its offsets to the log start.
    async fn stall_past_retention(&mut self) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let groups: Vec<&str> = services::consumers()
            .filter_map(|s| s.consumer_group)
            .collect();
        let lag = topic::LagReader::new(&bootstrap, &groups, ORDERS_TOPIC)?;
        let orders = self.infra.pools.orders.clone();
        let caught_up = |lag: &topic::LagReader, wanted: usize| {
            let (lag, orders) = (lag.clone(), orders.clone());
            async move {
                let outbox: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM outbox")
                    .fetch_one(&orders)
                    .await;
                let lags = lag.lags().await.unwrap_or_default();
                outbox.is_ok_and(|n| n == 0)
                    && lags.len() == 2
                    && lags.iter().take(wanted).all(|&l| l == 0)
            }
        };
        self.reach(1.0).await;
        let settled = eventually(STALL_DEADLINE, || caught_up(&lag, 2)).await;
        if !settled {
            return Err(ChaosError::Scenario(
                "the flow did not catch up after the load; the stall cannot be staged".into(),
            ));
        }
        let shipping = self.running(SHIPPING_SERVICE, 1)?;
        process::send_signal(shipping.pid(), Signal::Stop)?;
        self.fault("shipping frozen (SIGSTOP)".into());

        // Records shipping will not read: copies of applied ones, on every
        // partition, which invoicing absorbs.
        let end = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
        let mut tail = EndOffsets::new();
        for (&partition, &high) in &end {
            tail.insert(partition, (high - COPIES_PER_PARTITION as i64).max(0));
        }
        let records = topic::read_range(&bootstrap, ORDERS_TOPIC, &tail, &end).await?;
        let producer = topic::producer(&bootstrap)?;
        topic::reproduce(&producer, &records).await?;
        let invoicing_done = eventually(STALL_DEADLINE, || caught_up(&lag, 1)).await;
        let log_start = topic::end_offsets(&bootstrap, ORDERS_TOPIC).await?;
        topic::delete_records_before(&bootstrap, ORDERS_TOPIC, &log_start).await?;
        self.fault(format!(
            "{} copies of applied records written, then every record before the end deleted \
             (retention): shipping never read the copies (invoicing had: {invoicing_done})",
            records.len()
        ));

        process::send_signal(shipping.pid(), Signal::Cont)?;
        let base = self.infra.url(SHIPPING_SERVICE);
        let client = ApiClient::with_timeouts(Duration::from_secs(5), Duration::from_secs(5))?;
        let ready_url = format!("{base}/health/ready");
        let reason =
            not_ready_saying(&client, &ready_url, "would be skipped", STALL_DEADLINE).await;
        let logged = log_tail(shipping.log_file(), 400).contains("is no longer in the log");
        self.check(
            "shipping stopped on its offsets below the log start and said so",
            reason.is_some() && logged,
            format!(
                "error logged: {logged}; /health/ready: {}",
                reason
                    .as_deref()
                    .unwrap_or("never 503 naming the records skipped")
            ),
        );
        let shipping_lag = lag.lags().await?.get(1).copied().unwrap_or_default();
        self.check(
            "shipping committed nothing past the records it never read",
            shipping_lag == records.len() as i64,
            format!(
                "its lag is {shipping_lag} records, the {} copies retention deleted",
                records.len()
            ),
        );

        // The operator's decision: the gap held copies only, so shipping
        // may go on from the log start.
        self.running(SHIPPING_SERVICE, 1)?.stop().await?;
        topic::commit_offsets(&bootstrap, groups[1], ORDERS_TOPIC, &log_start).await?;
        self.infra.launch(SHIPPING_SERVICE, Vec::new()).await?;
        self.fault(
            "the operator stopped shipping, reset its offsets to the log start, and started it"
                .into(),
        );
        self.out.notes.push(
            "the scenario's records were deleted, so the reorder check had none of them to read"
                .into(),
        );
        Ok(())
    }

    /// Runs `orderflow-admin` with `args` against the order-service database; its output.
    async fn admin(&self, args: &[&str]) -> Result<String, ChaosError> {
        let binary = build_binary("orderflow-admin", self.infra.stack.profile()).await?;
        let output = tokio::process::Command::new(&binary)
            .args(args)
            .env(
                "DATABASE_URL",
                self.infra.stack.database_url(ORDER_SERVICE)?,
            )
            .env(
                "KAFKA_BOOTSTRAP_SERVERS",
                &self.infra.settings.kafka_bootstrap_servers,
            )
            .output()
            .await
            .map_err(|e| ChaosError::Scenario(format!("running {}: {e}", binary.display())))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            Ok(text)
        } else {
            Err(ChaosError::Scenario(format!(
                "orderflow-admin {} failed ({}): {text}",
                args.join(" "),
                output.status
            )))
        }
    }

    // 10. Kafka away for longer than the relay's delivery timeout while
    // orders and their cancellations keep coming: first stopped, then frozen
    // (SIGSTOP: connections stay open, requests hang unanswered).
    async fn kafka_outage(&mut self) -> Result<(), ChaosError> {
        self.running(ORDER_SERVICE, 1)?.stop().await?;
        self.infra
            .launch(
                ORDER_SERVICE,
                vec![(
                    "KAFKA_MESSAGE_TIMEOUT_MS".into(),
                    SHORT_MESSAGE_TIMEOUT.as_millis().to_string(),
                )],
            )
            .await?;
        self.out.notes.push(format!(
            "order-service ran with KAFKA_MESSAGE_TIMEOUT_MS={}",
            SHORT_MESSAGE_TIMEOUT.as_millis()
        ));

        self.reach(0.25).await;
        self.broker(1)?.stop().await?;
        self.fault(format!(
            "Kafka stopped for {}s (the relay's delivery timeout is {}s)",
            LONG_OUTAGE.as_secs(),
            SHORT_MESSAGE_TIMEOUT.as_secs()
        ));
        tokio::time::sleep(LONG_OUTAGE).await;
        self.broker(1)?.start().await?;

        self.reach(0.6).await;
        let pid = self
            .broker(1)?
            .pid()
            .ok_or_else(|| ChaosError::Scenario("the broker has no pid".into()))?;
        process::send_signal(pid, Signal::Stop)?;
        self.fault(format!(
            "Kafka frozen (SIGSTOP) for {}s",
            LONG_OUTAGE.as_secs()
        ));
        tokio::time::sleep(LONG_OUTAGE).await;
        process::send_signal(pid, Signal::Cont)?;

        // Back to the default timeout for the scenarios after this one.
        self.running(ORDER_SERVICE, 1)?.stop().await?;
        self.infra.launch(ORDER_SERVICE, Vec::new()).await?;
        Ok(())
    }

    // 11. Kill one node of a three-node cluster while orders flow; restart it.
    async fn broker_loss(&mut self) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let known =
            topic::known_replication(&bootstrap, ORDERS_TOPIC, TOPIC_KNOWN_DEADLINE).await?;
        let (replicas, min_insync) = (known.partitions, known.min_insync);
        self.check(
            "topic has replication factor 3 and min.insync.replicas 2",
            !replicas.is_empty()
                && replicas.iter().all(|&(r, _)| r == 3)
                && min_insync.as_deref() == Some("2"),
            format!(
                "replicas per partition {:?}, min.insync.replicas {min_insync:?}",
                replicas.iter().map(|r| r.0).collect::<Vec<_>>()
            ),
        );

        self.reach(0.3).await;
        // What the order service's database connections do while the node is
        // down: intake never talks to Kafka, so nothing there may wait on it.
        let sampler = ConnectionSampler::start(self.infra.pools.admin.clone());
        let node = self.rng.random_range(1..=3);
        self.broker(node)?.kill()?;
        let killed = Instant::now();
        let killed_at = SystemTime::now();
        self.fault(format!("SIGKILL Kafka node {node} of 3"));

        // The controllers fence the node once its heartbeats stop; until then
        // the ISR still lists it. Waiting for that proves the loss was seen.
        let fenced = self
            .wait_for_isr(&bootstrap, |isr| isr == 2, REJOIN_DEADLINE)
            .await?;
        self.check(
            "the cluster fenced the dead node",
            fenced.is_some(),
            match fenced {
                Some(after) => format!(
                    "every partition down to 2 in-sync replicas {:.1}s after the kill",
                    after.as_secs_f64()
                ),
                None => format!("the ISR still listed node {node} after {REJOIN_DEADLINE:?}"),
            },
        );
        // The flow goes on with two nodes: invoices and shipments keep being
        // committed for events published after the kill.
        let mut went_on = (0, 0);
        while killed.elapsed() < REJOIN_DEADLINE {
            went_on = self.effects_since(killed_at).await?;
            if went_on.0 > 0 && went_on.1 > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.check(
            "the flow went on with a node down",
            went_on.0 > 0 && went_on.1 > 0,
            format!(
                "{} invoices and {} shipments committed while node {node} was down",
                went_on.0, went_on.1
            ),
        );

        self.reach(0.65).await;
        self.out.notes.push(sampler.stop().await);
        self.broker(node)?.start().await?;
        let rejoined = self
            .wait_for_isr(&bootstrap, |isr| isr == 3, REJOIN_DEADLINE)
            .await?;
        self.check(
            "the restarted node rejoined every partition's ISR",
            rejoined.is_some(),
            match rejoined {
                Some(after) => format!(
                    "3 in-sync replicas everywhere {:.1}s after the node answered again",
                    after.as_secs_f64()
                ),
                None => format!("not back in every ISR after {REJOIN_DEADLINE:?}"),
            },
        );
        Ok(())
    }

    // 15. One partition takes no records: its replicas are cut to its
    // leader alone, and that node is stopped, so the partition has no leader
    // and no replica to take over (librdkafka holds its records until
    // message.timeout.ms), while the other partitions' leaders move to the
    // two nodes left and take records as before. Then the node comes back
    // and the partition gets its replicas back.
    async fn slow_partition(&mut self) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let known =
            topic::known_replication(&bootstrap, ORDERS_TOPIC, TOPIC_KNOWN_DEADLINE).await?;
        let partitions = i32::try_from(known.partitions.len()).unwrap_or(0);
        if partitions < 2 {
            return Err(ChaosError::Scenario(format!(
                "the orders topic has {partitions} partition(s); slow-partition needs two or more"
            )));
        }
        let stuck = self.rng.random_range(0..partitions);
        let (leader, replicas) = topic::partition_replicas(&bootstrap, ORDERS_TOPIC, stuck)
            .await?
            .ok_or_else(|| ChaosError::Scenario(format!("partition {stuck} has no leader")))?;

        self.reach(0.1).await;
        self.reassign(stuck, &[leader]).await?;
        let node = u32::try_from(leader)
            .map_err(|_| ChaosError::Scenario(format!("partition {stuck}: leader {leader}")))?;
        self.broker(node)?.stop().await?;
        self.fault(format!(
            "partition {stuck} of {ORDERS_TOPIC} cut to one replica (node {leader}), and node \
             {leader} stopped: the partition has no leader"
        ));
        // The load may be over by now (a quick run lasts seconds): the
        // orders measured are placed here, with the fault in place.
        let probes = self.place_probe_orders().await?;
        let api = ApiClient::new()?;
        let ready_url = format!("{}/health/ready", self.infra.url(ORDER_SERVICE));
        let named = format!("{ORDERS_TOPIC}/{stuck}");
        let started = Instant::now();
        let mut readiness = None;
        let effects = loop {
            if readiness.is_none()
                && let Ok(reply) = api.get(&ready_url).await
                && reply.body.contains(&named)
            {
                readiness = Some((reply.status, reply.body));
            }
            let effects = self
                .effects_by_partition(&probes, partitions, stuck)
                .await?;
            let done = effects.waiting == 0 && readiness.is_some();
            if done || started.elapsed() >= SLOW_PARTITION_SETTLE {
                break effects;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let p99 = effects.p99();
        self.check(
            "the other partitions kept flowing: p99 order→both effects within the bound",
            effects.waiting == 0 && !effects.latencies.is_empty() && p99 <= SLOW_PARTITION_P99_BOUND,
            format!(
                "{} orders on the other {} partitions placed during the fault: p99 {:.1}s, max {:.1}s \
                 (bound {SLOW_PARTITION_P99_BOUND:?}); {} without both effects after {:.0}s",
                effects.latencies.len(),
                partitions - 1,
                p99.as_secs_f64(),
                effects.latencies.last().copied().unwrap_or_default().as_secs_f64(),
                effects.waiting,
                started.elapsed().as_secs_f64()
            ),
        );
        self.check(
            "the stuck partition's orders waited for it",
            effects.stuck_orders > 0 && effects.stuck_with_effects == 0,
            format!(
                "{} orders on partition {stuck}, {} of them with an effect before its replicas were back",
                effects.stuck_orders, effects.stuck_with_effects
            ),
        );
        self.check(
            "readiness stayed 200 and named the benched partition",
            readiness
                .as_ref()
                .is_some_and(|(status, body)| *status == 200 && body.contains("degraded")),
            match &readiness {
                Some((status, body)) => format!("{status}: {body}"),
                None => format!("no answer of /health/ready named {named}"),
            },
        );

        self.broker(node)?.start().await?;
        self.reassign(stuck, &replicas).await?;
        self.fault(format!(
            "node {leader} restarted, partition {stuck} got its replicas back (nodes {replicas:?})"
        ));
        let rejoined = self
            .wait_for_isr(&bootstrap, |isr| isr == 3, REJOIN_DEADLINE)
            .await?;
        self.check(
            "the partition's replicas were back in its ISR",
            rejoined.is_some(),
            match rejoined {
                Some(after) => format!(
                    "3 in-sync replicas everywhere after {:.1}s",
                    after.as_secs_f64()
                ),
                None => format!("not back in every ISR after {REJOIN_DEADLINE:?}"),
            },
        );
        Ok(())
    }

    /// Reassigns `partition` of the orders topic to `replicas` (the first
    /// one its preferred leader) with Kafka's own tool, and waits until the
    /// metadata shows it.
    async fn reassign(&self, partition: i32, replicas: &[i32]) -> Result<(), ChaosError> {
        let bootstrap = self.infra.settings.kafka_bootstrap_servers.clone();
        let dir = self.infra.dir().join("reassign");
        let io = |what: &str, e: std::io::Error| {
            ChaosError::Scenario(format!("{what} in {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the directory", e))?;
        let plan = dir.join(format!("partition-{partition}.json"));
        let config = dir.join("admin.properties");
        let json = serde_json::json!({
            "version": 1,
            "partitions": [{ "topic": ORDERS_TOPIC, "partition": partition, "replicas": replicas }],
        });
        std::fs::write(&plan, json.to_string()).map_err(|e| io("writing the plan", e))?;
        std::fs::write(&config, devinfra::kafka::access::admin_client_properties())
            .map_err(|e| io("writing the admin properties", e))?;
        let mut command = tokio::process::Command::from(self.runtime.java_command(
            "128m",
            &dir,
            std::iter::empty::<&str>(),
            "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
        ));
        command
            .arg("--bootstrap-server")
            .arg(&bootstrap)
            .arg("--command-config")
            .arg(&config)
            .arg("--reassignment-json-file")
            .arg(&plan)
            .arg("--execute")
            .kill_on_drop(true);
        let output = tokio::time::timeout(REASSIGN_DEADLINE, command.output())
            .await
            .map_err(|_| {
                ChaosError::Scenario(format!(
                    "kafka-reassign-partitions did not finish within {REASSIGN_DEADLINE:?}"
                ))
            })?
            .map_err(|e| io("running kafka-reassign-partitions", e))?;
        if !output.status.success() {
            return Err(ChaosError::Scenario(format!(
                "kafka-reassign-partitions failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let started = Instant::now();
        loop {
            let now = topic::partition_replicas(&bootstrap, ORDERS_TOPIC, partition).await?;
            if now.as_ref().is_some_and(|(_, r)| r == replicas) {
                return Ok(());
            }
            if started.elapsed() >= REASSIGN_DEADLINE {
                return Err(ChaosError::Scenario(format!(
                    "partition {partition}: replicas {now:?} after {REASSIGN_DEADLINE:?}, \
                     not {replicas:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Places [`SLOW_PARTITION_PROBES`] orders, [`PROBE_PACE`] apart, each
    /// retried on a failure up to [`PROBE_DEADLINE`]; they are audited with
    /// the load's. Returns their ids.
    async fn place_probe_orders(&mut self) -> Result<Vec<uuid::Uuid>, ChaosError> {
        let api = ApiClient::new()?;
        let base = self.infra.url(ORDER_SERVICE);
        let mut orders = loadgen::OrderGenerator::new(0x510e);
        let mut ids = Vec::with_capacity(SLOW_PARTITION_PROBES);
        for i in 0..SLOW_PARTITION_PROBES {
            let order = orders.next_order();
            let key = format!("chaos-slow-partition-{i}");
            let started = Instant::now();
            let id = loop {
                match api.place_order(&base, &order.body, Some(&key)).await {
                    Ok(placed) => break placed.id,
                    Err(e) if started.elapsed() >= PROBE_DEADLINE => {
                        return Err(ChaosError::Scenario(format!(
                            "placing probe order {i} during the fault: {e}"
                        )));
                    }
                    Err(_) => tokio::time::sleep(PROBE_PACE).await,
                }
            };
            self.out.accepted.push(Accepted {
                order_id: id,
                expected: order.expected,
                at: SystemTime::now(),
                cancelled: false,
            });
            ids.push(id);
            tokio::time::sleep(PROBE_PACE).await;
        }
        Ok(ids)
    }

    /// For the orders `ids`: how long each on a partition other than
    /// `stuck` took from its placement to its later effect (invoice or
    /// shipment commit, both on the database's clock), and how many on
    /// `stuck` have any effect yet.
    async fn effects_by_partition(
        &self,
        ids: &[uuid::Uuid],
        partitions: i32,
        stuck: i32,
    ) -> Result<PartitionEffects, ChaosError> {
        let placed: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT id, placed_at FROM orders WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.infra.pools.orders)
                .await
                .map_err(ChaosError::Database)?;
        let ids: Vec<uuid::Uuid> = placed.iter().map(|(id, _)| *id).collect();
        let committed = |pool: sqlx::PgPool, sql: &'static str| {
            let ids = ids.clone();
            async move {
                sqlx::query_as::<_, (uuid::Uuid, Option<chrono::DateTime<chrono::Utc>>)>(sql)
                    .bind(ids)
                    .fetch_all(&pool)
                    .await
                    .map_err(ChaosError::Database)
                    .map(|rows| {
                        rows.into_iter()
                            .filter_map(|(id, at)| at.map(|at| (id, at)))
                            .collect::<std::collections::HashMap<_, _>>()
                    })
            }
        };
        let (invoiced, shipped) = tokio::try_join!(
            committed(
                self.infra.pools.invoicing.clone(),
                "SELECT order_id, pg_xact_commit_timestamp(xmin) FROM invoices WHERE order_id = ANY($1)"
            ),
            committed(
                self.infra.pools.shipping.clone(),
                "SELECT order_id, pg_xact_commit_timestamp(xmin) FROM shipments WHERE order_id = ANY($1)"
            ),
        )?;
        let mut effects = PartitionEffects::default();
        for (id, at) in placed {
            let on_stuck =
                shared_events::topics::partition_of(id.to_string().as_bytes(), partitions) == stuck;
            let (invoice, shipment) = (invoiced.get(&id), shipped.get(&id));
            if on_stuck {
                effects.stuck_orders += 1;
                effects.stuck_with_effects += usize::from(invoice.is_some() || shipment.is_some());
                continue;
            }
            match invoice.zip(shipment) {
                Some((invoice, shipment)) => effects
                    .latencies
                    .push((*invoice.max(shipment) - at).to_std().unwrap_or_default()),
                None => effects.waiting += 1,
            }
        }
        effects.latencies.sort();
        Ok(effects)
    }

    /// Polls the topic's ISR sizes until `wanted` holds for every partition;
    /// how long that took, or `None` after `limit`.
    async fn wait_for_isr(
        &self,
        bootstrap: &str,
        wanted: impl Fn(usize) -> bool,
        limit: Duration,
    ) -> Result<Option<Duration>, ChaosError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let state = topic::replica_state(bootstrap, ORDERS_TOPIC).await?;
            if !state.is_empty() && state.iter().all(|&(_, isr)| wanted(isr)) {
                return Ok(Some(started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(None)
    }

    /// Invoices and shipments committed since `since`.
    async fn effects_since(&self, since: SystemTime) -> Result<(i64, i64), ChaosError> {
        let since = chrono::DateTime::<chrono::Utc>::from(since);
        let count = |pool: &sqlx::PgPool, sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(since)
                    .fetch_one(&pool)
                    .await
                    .map_err(ChaosError::Database)
            }
        };
        tokio::try_join!(
            count(
                &self.infra.pools.invoicing,
                "SELECT count(*) FROM invoices WHERE pg_xact_commit_timestamp(xmin) > $1"
            ),
            count(
                &self.infra.pools.shipping,
                "SELECT count(*) FROM shipments WHERE pg_xact_commit_timestamp(xmin) > $1"
            ),
        )
    }
}

/// Samples, every 100 ms, the order service's sessions on its database:
/// how many are busy at once, the longest open transaction, and what they
/// wait on.
struct ConnectionSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<String>,
}

impl ConnectionSampler {
    fn start(admin: sqlx::PgPool) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (mut samples, mut busiest, mut longest) = (0, 0_i64, 0.0_f64);
            let mut waits: std::collections::BTreeMap<String, u32> = Default::default();
            loop {
                let sample: Result<(i64, f64, Vec<String>), _> = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE state <> 'idle'),
                            coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8,
                            coalesce(array_agg(wait_event_type || ':' || wait_event)
                                     FILTER (WHERE state <> 'idle' AND wait_event IS NOT NULL
                                             AND wait_event <> 'ClientRead'), '{}')
                     FROM pg_stat_activity
                     WHERE datname = 'orders' AND usename = 'orders' AND pid <> pg_backend_pid()",
                )
                .fetch_one(&admin)
                .await;
                if let Ok((busy, age, events)) = sample {
                    samples += 1;
                    busiest = busiest.max(busy);
                    longest = longest.max(age);
                    for event in events {
                        *waits.entry(event).or_default() += 1;
                    }
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            format!(
                "order-service's database sessions while the node was down ({samples} samples): \
                 at most {busiest} busy at once, longest open transaction {longest:.1}s, waits {waits:?}"
            )
        });
        ConnectionSampler { stop, task }
    }

    async fn stop(self) -> String {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap_or_else(|e| format!("the connection sampler failed: {e}"))
    }
}

/// Answers of a service's `/health/ready` during a privilege outage.
#[derive(Debug, Default)]
struct ReadinessTally {
    probes: usize,
    not_ready: usize,
    /// The body of the last 503: the reason the service gave.
    last_reason: String,
}

impl ReadinessTally {
    /// Probes `ready_url` every 250 ms for `outage` (the fault's fixed
    /// length, not a wait for a condition).
    async fn watch(client: &ApiClient, ready_url: &str, outage: Duration) -> Self {
        let mut tally = Self::default();
        let start = Instant::now();
        while start.elapsed() < outage {
            tally.probes += 1;
            if let Ok(reply) = client.get(ready_url).await
                && reply.status == 503
            {
                tally.not_ready += 1;
                tally.last_reason = reply.body;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tally
    }
}

impl std::fmt::Display for ReadinessTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} readiness probes answered 503",
            self.not_ready, self.probes
        )?;
        if !self.last_reason.is_empty() {
            write!(f, "; last: {}", self.last_reason)?;
        }
        Ok(())
    }
}

/// Answers to the API probes while PostgreSQL is away.
#[derive(Debug, Default)]
struct ProbeTally {
    sent: usize,
    problem_503: usize,
    other: Vec<String>,
}

impl ProbeTally {
    fn record(&mut self, what: &str, answer: Result<Reply, ClientError>) {
        self.sent += 1;
        match answer {
            Ok(Reply {
                status, problem, ..
            }) => {
                if status == 503 && problem {
                    self.problem_503 += 1;
                } else if self.other.len() < 3 {
                    self.other
                        .push(format!("{what}: {status} (problem+json: {problem})"));
                }
            }
            Err(e) => {
                if self.other.len() < 3 {
                    self.other.push(format!("{what}: {e}"));
                }
            }
        }
    }
}

/// What became of the orders placed while one partition took no records.
#[derive(Debug, Default)]
struct PartitionEffects {
    /// Order→both effects of the orders on the other partitions, sorted.
    latencies: Vec<Duration>,
    /// Orders on the other partitions without both effects yet.
    waiting: usize,
    /// Orders on the stuck partition.
    stuck_orders: usize,
    /// Of those, how many have an effect already.
    stuck_with_effects: usize,
}

impl PartitionEffects {
    /// The 99th percentile of [`latencies`](Self::latencies) (nearest rank).
    fn p99(&self) -> Duration {
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = (n * 99).div_ceil(100).max(1);
        self.latencies[rank - 1]
    }
}
