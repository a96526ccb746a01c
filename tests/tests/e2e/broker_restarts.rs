//! Clients across fences, restarts and freezes of their broker.
//!
//! A KRaft broker that its controller has fenced (its heartbeats stopped
//! for longer than its session, `broker.session.timeout.ms`, 9 s by
//! default: a long pause, a network split from the controller) goes on
//! answering metadata requests, without listing itself, until it is
//! unfenced. librdkafka 2.10 and later remove every broker a metadata
//! response leaves out, with its thread: a client of a one-node cluster that
//! met such a response has no broker left to ask, and waits for ever
//! (confluentinc/librdkafka#5301, open). The chaos run's `kafka-outage` (a
//! 12 s SIGSTOP of the broker) left invoicing so; the services now put
//! their bootstrap servers back ([`messaging::kafka::Rebootstrap`]).
//!
//! The first test makes that case for sure: it cuts the broker off from its
//! controller (iptables) while its consumer asks for metadata all the time.
//! The second runs the whole flow through freezes and restarts while orders
//! keep coming: a freeze meets the case only now and then (the broker is
//! fenced when it wakes, but unfenced again at its next heartbeat, within
//! 2 s, and a client must ask in between).

use platform::services::{INVOICING_SERVICE, ORDER_SERVICE};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use e2e::TestInfra;
use e2e::private_kafka::PrivateKafka;
use e2e::services::{
    PATIENCE, ServiceUnderTest, consumer_config, fresh_group, init_logs, wait_until,
    wait_until_within,
};
use invoicing_service::Invoicing;
use messaging::kafka::{ProducerSettings, Rebootstrap, STATISTICS_INTERVAL_MS};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientContext, Message, Statistics};
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::relay::{OrderService, id_of, outbox_len};

/// The classic group protocol's rebalance timeout (the consumers'
/// max.poll.interval.ms, librdkafka's default 300 s), and a margin.
const REJOIN_PATIENCE: Duration = Duration::from_secs(330);

/// Faults: odd ones freeze the broker, even ones restart it.
const FAULTS: usize = 4;

/// One order every this often, from before the first fault to after the last.
const LOAD_INTERVAL: Duration = Duration::from_millis(100);

/// Longer than the broker's session with its controller (9 s), so that it
/// is fenced when it wakes.
const FREEZE: Duration = Duration::from_secs(12);

/// How long the first test's metadata requests may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the first test cuts its broker off from the controller: the
/// broker's session (9 s) and then some, while it is fenced.
const CUT: Duration = Duration::from_secs(14);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_left_without_brokers_by_a_fenced_broker_reads_on() -> anyhow::Result<()> {
    let mut kafka = PrivateKafka::start(
        "broker_restarts::a_consumer_left_without_brokers_by_a_fenced_broker_reads_on",
    )
    .await?;
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    let settings = e2e::admin_kafka(&kafka.bootstrap_servers(), &topic);
    messaging::kafka::ensure_topics(&settings, &[settings.topic_spec(&topic)]).await?;
    let producer = messaging::kafka::producer(&settings, &ProducerSettings::default())?;

    // The inbox's consumer, as far as this test is concerned: the same
    // client settings and the same watch on its brokers.
    let rebootstrap = Rebootstrap::new(&settings.bootstrap_servers);
    let binder = rebootstrap.binder();
    let consumer: BaseConsumer<Watched> = settings
        .client_config()
        .set("group.id", fresh_group("fenced"))
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .set("debug", "broker")
        .set_log_level(RDKafkaLogLevel::Debug)
        .create_with_context(Watched {
            rebootstrap,
            decommissioned: AtomicUsize::new(0),
        })?;
    binder.attach(consumer.client());
    consumer.subscribe(&[&topic])?;
    let consumer = Arc::new(consumer);
    let (received, mut receiving) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    // Also when the test fails: the runtime waits for the polling thread.
    let _stop_polling = stop.clone().drop_guard();
    let polling = {
        let (consumer, stop, topic) = (Arc::clone(&consumer), stop.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            while !stop.is_cancelled() {
                // Asks for metadata between polls, so that some request
                // lands while the broker is fenced (errors are the point:
                // while it has no broker, the client answers at once).
                let _ = consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT);
                if let Some(Ok(record)) = consumer.poll(Duration::from_millis(50)) {
                    let payload = record.payload().map(<[u8]>::to_vec).unwrap_or_default();
                    if received.send(payload).is_err() {
                        return;
                    }
                }
            }
        })
    };

    send_and_receive(&producer, &topic, "before the cut", &mut receiving).await?;
    kafka.cut_from_controller(CUT).await?;
    send_and_receive(&producer, &topic, "after the cut", &mut receiving)
        .await
        .with_context(|| {
            format!(
                "after the cut (the watch gave the consumer its bootstrap servers back {} time(s))",
                binder.rebootstraps()
            )
        })?;
    // Whether librdkafka then finds a broker again by itself is a race (its
    // own re-bootstrap starts only if dropping the broker counted as the
    // last one going down): the watch is what makes it certain.
    anyhow::ensure!(
        consumer.context().decommissioned.load(Ordering::Acquire) > 0,
        "the consumer never dropped its broker after a metadata response without it: the case \
         under test did not occur"
    );

    stop.cancel();
    polling.await?;
    kafka.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_across_restarts_and_freezes_of_the_broker_are_all_invoiced()
-> anyhow::Result<()> {
    init_logs();
    let infra = TestInfra::acquire().await?;
    let mut kafka = PrivateKafka::start(
        "broker_restarts::orders_placed_across_restarts_and_freezes_of_the_broker_are_all_invoiced",
    )
    .await?;
    let bootstrap = kafka.bootstrap_servers();
    let topic = format!("orders-{}", Uuid::new_v4().simple());
    let (orders_url, orders) = infra.fresh_database(&ORDER_SERVICE).await?;
    let (invoicing_url, invoicing) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let placing = OrderService::start(order_service::Config::for_flow(
        orders_url,
        e2e::admin_kafka(&bootstrap, &topic),
    ))
    .await?;
    let mut config =
        consumer_config::<Invoicing>(&infra, &invoicing_url, &topic, &fresh_group("invoicing"));
    config.kafka.bootstrap_servers.clone_from(&bootstrap);
    let invoicer = ServiceUnderTest::start::<Invoicing>(config).await?;

    // Orders keep coming throughout, as in production: the relay and the
    // consumer are busy when the broker goes away and when it comes back,
    // and ask for metadata then.
    let placed = Mutex::new(Vec::<Uuid>::new());
    let faults_done = CancellationToken::new();
    let load = async {
        let mut every = tokio::time::interval(LOAD_INTERVAL);
        while !faults_done.is_cancelled() {
            every.tick().await;
            let n = placed.lock().await.len();
            let id = id_of(&placing.place(n).await?)
                .parse()
                .context("the id of a placed order")?;
            placed.lock().await.push(id);
        }
        anyhow::Ok(())
    };
    let faults = async {
        for fault in 1..=FAULTS {
            let after = if fault % 2 == 1 {
                kafka.freeze(FREEZE).await?;
                format!("after freeze {}", fault.div_ceil(2))
            } else {
                kafka.restart().await?;
                format!("after restart {}", fault / 2)
            };
            // The flow carries an order placed after the fault to its
            // invoice before the next fault. Within the classic group
            // protocol's rebalance timeout (max.poll.interval.ms, 300 s),
            // not seconds: after a freeze the group's rejoin has been seen
            // to wait out that whole timeout (RELIABILITY.md's kafka-outage,
            // still unexplained), once in this test's CI runs too.
            let first_after = placed.lock().await.len();
            wait_until_within(
                REJOIN_PATIENCE,
                &format!("an order placed {after} to be invoiced"),
                || async {
                    let Some(id) = placed.lock().await.get(first_after).copied() else {
                        return Ok(false);
                    };
                    Ok(invoiced(&invoicing, &[id]).await? == 1)
                },
            )
            .await?;
        }
        faults_done.cancel();
        anyhow::Ok(())
    };
    tokio::try_join!(load, faults)?;

    let placed = placed.into_inner();
    wait_until("every order to be published", || async {
        Ok(outbox_len(&orders).await? == 0)
    })
    .await?;
    wait_until(
        &format!("all {} orders to be invoiced", placed.len()),
        || async { Ok(invoiced(&invoicing, &placed).await? == placed.len() as i64) },
    )
    .await?;

    invoicer.stop().await?;
    placing.stop().await?;
    kafka.stop().await
}

/// How many of `orders` have an invoice.
async fn invoiced(invoicing: &PgPool, orders: &[Uuid]) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM invoices WHERE order_id = ANY($1)")
            .bind(orders)
            .fetch_one(invoicing)
            .await?,
    )
}

/// Produces `what` to `topic` and waits until the consumer behind
/// `receiving` has it.
async fn send_and_receive(
    producer: &messaging::kafka::Producer,
    topic: &str,
    what: &str,
    receiving: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) -> anyhow::Result<()> {
    let record = FutureRecord::to(topic).key(what).payload(what);
    tokio::time::timeout(PATIENCE, producer.send(record, Duration::ZERO))
        .await
        .map_err(|_| anyhow::anyhow!("the record {what} was not acknowledged within {PATIENCE:?}"))?
        .map_err(|(e, _)| e)
        .with_context(|| format!("producing the record {what}"))?;
    let arrived = tokio::time::timeout(PATIENCE, async {
        while let Some(payload) = receiving.recv().await {
            if payload == what.as_bytes() {
                return true;
            }
        }
        false
    })
    .await;
    anyhow::ensure!(
        arrived == Ok(true),
        "the record produced {what} did not arrive within {PATIENCE:?}"
    );
    Ok(())
}

/// The first test's consumer context: the services' watch on the brokers
/// ([`Rebootstrap`], fed the statistics as the inbox's context feeds it),
/// and how many learned brokers librdkafka dropped (its `broker` debug log).
struct Watched {
    rebootstrap: Rebootstrap,
    decommissioned: AtomicUsize,
}

impl ClientContext for Watched {
    fn stats(&self, statistics: Statistics) {
        self.rebootstrap.check(&statistics);
    }

    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, message: &str) {
        // The bootstrap broker is dropped as soon as the first response
        // names the cluster's brokers: only a learned one counts.
        if message.contains("Decommissioning this broker") && !message.contains("/bootstrap:") {
            self.decommissioned.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl ConsumerContext for Watched {}
