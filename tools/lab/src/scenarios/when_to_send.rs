//! 12. When to send the event.
//!
//! An order is a row in PostgreSQL; its event is a record on a topic. Three
//! designs write both, and each order's "process" may crash at a random
//! point between the steps (a seeded choice, one order in three):
//!
//! - **dual write** (send after the action): commit the order, then send;
//! - **send first**: send and wait for the acknowledgement, then commit;
//! - **outbox**: the order and its outbox row in one transaction
//!   (`messaging::outbox::enqueue` into the `outbox` table, created by
//!   `messaging::outbox::MIGRATOR`); our relay
//!   (`messaging::outbox::Relay`) publishes committed rows, and is itself
//!   aborted mid-work a few times and restarted.
//!
//! A crash closes the process's database connection without a word (an
//! open transaction is rolled back by the server, as for a killed process)
//! and drops its producer (what was not yet sent is gone). Afterwards the
//! committed orders are compared with the orders that have an event.

use std::collections::BTreeSet;
use std::time::Duration;

use messaging::kafka::{KafkaSettings, ProducerSettings};
use messaging::outbox::{
    OutboxMessage, RELAY_LOCK_KEY, Relay, RelayMetrics, RelaySettings, Wakeup,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{Refutes, Step};
use crate::kafka::{self, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const PARTITIONS: i32 = 3;
/// One order in this many crashes.
const CRASH_ONE_IN: u32 = 3;

/// The three designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    DualWrite,
    SendFirst,
    Outbox,
}

impl Design {
    fn name(self) -> &'static str {
        match self {
            Design::DualWrite => "dual write: commit, then send",
            Design::SendFirst => "send first: send, then commit",
            Design::Outbox => "transactional outbox + relay",
        }
    }

    fn topic(self) -> &'static str {
        match self {
            Design::DualWrite => "when-to-send.dual-write",
            Design::SendFirst => "when-to-send.send-first",
            Design::Outbox => "when-to-send.outbox",
        }
    }
}

/// What the crashing process holds: its connection and, when it sends
/// events itself, its producer.
struct Process {
    conn: PgConnection,
    producer: Option<FutureProducer>,
}

impl Process {
    /// Connects to the database and, for a design that sends itself, to
    /// Kafka, with the topic's metadata fetched (as a service does at start-up).
    async fn start(pool: &PgPool, bootstrap: &str, design: Design) -> Result<Self, LabError> {
        let conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .step("connecting the order process")?;
        let producer = if design == Design::Outbox {
            None
        } else {
            let producer = kafka::producer(bootstrap, &[])?;
            let client = producer.clone();
            tokio::task::spawn_blocking(move || {
                client
                    .client()
                    .fetch_metadata(Some(design.topic()), kafka::REQUEST_TIMEOUT)
                    .map(|_| ())
            })
            .await
            .step("starting the order process")?
            .step("fetching the topic's metadata")?;
            Some(producer)
        };
        Ok(Process { conn, producer })
    }

    /// The crash: the connection closes without a word, the producer is gone.
    async fn crash(self) {
        let _ = self.conn.close_hard().await;
        // Dropping a producer first purges what it has not sent (the crash),
        // then waits for its threads; that wait need not hold the run up.
        if let Some(producer) = self.producer {
            tokio::task::spawn_blocking(move || drop(producer));
        }
    }

    /// Sends the order's event; the acknowledgement comes with the future.
    fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &str,
    ) -> Result<rdkafka::producer::DeliveryFuture, LabError> {
        let producer = self
            .producer
            .as_ref()
            .ok_or_else(|| LabError::Inconsistent {
                step: format!("sending to {topic}"),
                what: "the outbox design's writer has no producer".into(),
            })?;
        producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(e, _)| e)
            .step(format!("sending to {topic}"))
    }

    /// `BEGIN` or `COMMIT`.
    async fn control(&mut self, statement: &'static str, order: Uuid) -> Result<(), LabError> {
        sqlx::raw_sql(statement)
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .step(format!("{statement} of order {order}"))
    }

    /// The action: the order's row.
    async fn insert(&mut self, order: Uuid, design: Design) -> Result<(), LabError> {
        sqlx::query("INSERT INTO lab_orders (id, design) VALUES ($1, $2)")
            .bind(order)
            .bind(design.topic())
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .step(format!("inserting order {order}"))
    }
}

/// What happened to one design's orders.
#[derive(Debug, Default)]
struct Count {
    attempted: usize,
    writer_crashes: usize,
    relay_crashes: usize,
    committed: usize,
    with_event: usize,
    lost: usize,
    phantom: usize,
    twice: usize,
}

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let orders = lab.pick(60, 300);
    let relay_crashes = lab.pick(2, 4);
    let bootstrap = lab.infra.single()?.bootstrap();
    let pool = lab.infra.database("lab_when_to_send", &[]).await?;
    messaging::outbox::MIGRATOR
        .run(&pool)
        .await
        .step("creating the outbox's tables")?;
    sqlx::raw_sql("CREATE TABLE lab_orders (id UUID PRIMARY KEY, design TEXT NOT NULL)")
        .execute(&pool)
        .await
        .step("creating the orders table")?;
    let mut rng = StdRng::seed_from_u64(lab.seed);
    let mut table = Table::new(&[
        "design",
        "orders attempted",
        "crashes",
        "orders committed",
        "orders with an event",
        "lost (order, no event)",
        "phantom (event, no order)",
        "published twice",
    ]);
    let mut counts = Vec::new();
    for design in [Design::DualWrite, Design::SendFirst, Design::Outbox] {
        let topic = design.topic();
        kafka::create_topic(&bootstrap, &TopicPlan::new(topic, PARTITIONS)).await?;
        let mut count = Count {
            attempted: orders,
            ..Count::default()
        };
        let mut relay = (design == Design::Outbox)
            .then(|| RelayRun::start(&pool, &bootstrap, topic))
            .transpose()?;
        let relay_crash_at: BTreeSet<usize> = (1..=relay_crashes)
            .map(|k| k * orders / (relay_crashes + 1))
            .collect();
        let mut process = None;
        let mut ticker = progress::Ticker::new(design.name());
        for i in 0..orders {
            ticker.tick(|| format!("{i} of {orders} orders placed"));
            if let Some(running) = relay.take_if(|_| relay_crash_at.contains(&i)) {
                running.crash().await;
                count.relay_crashes += 1;
                relay = Some(RelayRun::start(&pool, &bootstrap, topic)?);
            }
            let crash = rng
                .random_ratio(1, CRASH_ONE_IN)
                .then(|| rng.random_range(0..3));
            let mut current = match process.take() {
                Some(p) => p,
                None => Process::start(&pool, &bootstrap, design).await?,
            };
            if place(&mut current, design, crash).await? {
                current.crash().await;
                count.writer_crashes += 1;
            } else {
                process = Some(current);
            }
        }
        if let Some(running) = relay {
            // A relay that never publishes every committed row loses events:
            // that refutes the claim, and the run goes on (its relay stopped).
            let published = wait_for_empty_outbox(&pool).await;
            running.stop().await?;
            published.refutes("when-to-send.outbox")?;
        }
        tally(&pool, &bootstrap, design, &mut count).await?;
        table.row(vec![
            design.name().into(),
            count.attempted.to_string(),
            if design == Design::Outbox {
                format!(
                    "{} writer, {} relay",
                    count.writer_crashes, count.relay_crashes
                )
            } else {
                count.writer_crashes.to_string()
            },
            count.committed.to_string(),
            count.with_event.to_string(),
            count.lost.to_string(),
            count.phantom.to_string(),
            count.twice.to_string(),
        ]);
        counts.push(count);
    }
    let verdict = match counts.as_slice() {
        [dual, first, outbox]
            if dual.lost > 0
                && dual.phantom == 0
                && first.phantom > 0
                && first.lost == 0
                && outbox.lost == 0
                && outbox.phantom == 0 =>
        {
            Verdict::Holds
        }
        _ => Verdict::DoesNotHold(format!(
            "(lost, phantom) per design: {:?}",
            counts
                .iter()
                .map(|c| (c.lost, c.phantom))
                .collect::<Vec<_>>()
        )),
    };
    Ok(Outcome {
        setup: format!(
            "{orders} orders per design, one in {CRASH_ONE_IN} crashing at a random point between its steps \
             (seeded); each design writes to its own topic ({PARTITIONS} partitions) and to the table \
             `lab_orders`; the outbox design's relay is aborted {relay_crashes} times mid-work and restarted."
        ),
        tables: vec![table],
        notes: vec![
            "Dual write loses the event of a crash between the commit and the send (the same happens when the \
             send fails and its error is ignored). Send first announces orders whose transaction never \
             committed. The outbox commits the order and its event together; the relay publishes what is \
             committed, and after its own crash may publish a batch again: consumers deduplicate by event id \
             (scenario 4)."
                .into(),
        ],
        verdicts: vec![("when-to-send.outbox", verdict)],
        chart: None,
    })
}

/// Places one order with `design`; `crash` picks a point between its steps.
/// Returns true if the process crashed.
async fn place(
    process: &mut Process,
    design: Design,
    crash: Option<u32>,
) -> Result<bool, LabError> {
    let order = Uuid::now_v7();
    let event_id = Uuid::new_v4();
    let payload = serde_json::json!({
        "event_id": event_id,
        "event_type": "OrderPlaced",
        "order_id": order,
    })
    .to_string();
    let key = order.to_string();
    let topic = design.topic();
    let crashes_at = |point: u32| crash == Some(point);
    match design {
        Design::DualWrite => {
            process.control("BEGIN", order).await?;
            process.insert(order, design).await?;
            if crashes_at(0) {
                return Ok(true);
            }
            process.control("COMMIT", order).await?;
            if crashes_at(1) {
                return Ok(true);
            }
            let delivery = process.send(topic, &key, &payload)?;
            if crashes_at(2) {
                return Ok(true);
            }
            acknowledged(delivery).await?;
        }
        Design::SendFirst => {
            let delivery = process.send(topic, &key, &payload)?;
            if crashes_at(0) {
                return Ok(true);
            }
            acknowledged(delivery).await?;
            if crashes_at(1) {
                return Ok(true);
            }
            process.control("BEGIN", order).await?;
            process.insert(order, design).await?;
            if crashes_at(2) {
                return Ok(true);
            }
            process.control("COMMIT", order).await?;
        }
        Design::Outbox => {
            process.control("BEGIN", order).await?;
            process.insert(order, design).await?;
            if crashes_at(0) {
                return Ok(true);
            }
            let message = OutboxMessage {
                event_id,
                topic: topic.to_owned(),
                key,
                event_type: "OrderPlaced".into(),
                schema_version: 1,
                payload,
                traceparent: None,
            };
            messaging::outbox::enqueue(&mut process.conn, &message)
                .await
                .step(format!("writing the outbox row of order {order}"))?;
            if crashes_at(1) {
                return Ok(true);
            }
            process.control("COMMIT", order).await?;
            if crashes_at(2) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

async fn acknowledged(delivery: rdkafka::producer::DeliveryFuture) -> Result<(), LabError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e).step("waiting for the acknowledgement"),
        Err(_) => Err(rdkafka::error::KafkaError::Canceled).step("waiting for the acknowledgement"),
    }
}

/// Our relay, running in the background.
struct RelayRun {
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
}

impl RelayRun {
    fn start(pool: &PgPool, bootstrap: &str, topic: &str) -> Result<Self, LabError> {
        let kafka = KafkaSettings {
            partitions: PARTITIONS,
            ..KafkaSettings::local(bootstrap, devinfra::kafka::access::admin_auth(), topic)
        };
        // Needless only where `fault-injection` is off.
        #[allow(clippy::needless_update)]
        let settings = RelaySettings {
            enabled: true,
            batch_size: 20,
            poll_interval: Duration::from_millis(100),
            notify: false,
            max_backoff: Duration::from_secs(1),
            lock_key: RELAY_LOCK_KEY,
            linger: Duration::ZERO,
            // One field more in `fault-injection` builds (the workspace's
            // tests turn that feature on).
            ..RelaySettings::default()
        };
        let relay = Relay::new(
            pool.clone(),
            kafka,
            &ProducerSettings::default(),
            settings,
            RelayMetrics::default(),
            Wakeup::new(),
        )
        .step("creating the relay")?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        Ok(RelayRun { task, shutdown })
    }

    /// The relay's crash: its task is dropped wherever it is.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) -> Result<(), LabError> {
        self.shutdown.cancel();
        self.task.await.step("stopping the relay")
    }
}

async fn wait_for_empty_outbox(pool: &PgPool) -> Result<(), LabError> {
    progress::until(
        "the relay to publish every committed outbox row",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(pool)
                .await
                .step("counting the outbox")?;
            Ok(if left == 0 {
                Seen::Ready(())
            } else {
                Seen::NotYet(format!("{left} rows left"))
            })
        },
    )
    .await
}

/// Committed orders against the orders the topic has an event for.
async fn tally(
    pool: &PgPool,
    bootstrap: &str,
    design: Design,
    count: &mut Count,
) -> Result<(), LabError> {
    let committed: BTreeSet<Uuid> =
        sqlx::query_scalar("SELECT id FROM lab_orders WHERE design = $1")
            .bind(design.topic())
            .fetch_all(pool)
            .await
            .step("reading the committed orders")?
            .into_iter()
            .collect();
    let records = kafka::read_all(bootstrap, design.topic(), false).await?;
    let announced: BTreeSet<Uuid> = records
        .iter()
        .filter_map(|r| Uuid::parse_str(r.key.as_deref()?).ok())
        .collect();
    count.committed = committed.len();
    count.with_event = committed.intersection(&announced).count();
    count.lost = committed.difference(&announced).count();
    count.phantom = announced.difference(&committed).count();
    count.twice = records.len() - announced.len();
    Ok(())
}
