//! Events the topic refuses are parked; the relay's lock session and producer
//! survive what would otherwise stop publishing.

use std::time::Duration;

use e2e::TestInfra;
use e2e::services::{read_records, wait_until};
use platform::services::ORDER_SERVICE;
use reqwest::StatusCode;
use uuid::Uuid;

use super::{OrderService, events_per_order, id_of, outbox_len, oversized_order, topic_len};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_topic_refuses_is_parked_and_holds_back_only_its_own_order()
-> anyhow::Result<()> {
    const SMALL: usize = 20;
    let infra = TestInfra::acquire().await?;
    let bootstrap = infra.kafka_bootstrap_servers().to_owned();
    // Two partitions: about half of the small orders share the big one's.
    let topic = format!("e2e-{}", Uuid::new_v4());
    infra
        .create_topic(&topic, 2, &[("max.message.bytes", "16384")])
        .await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let service = OrderService::start(order_service::Config::for_flow(
        url,
        e2e::admin_kafka(&bootstrap, &topic),
    ))
    .await?;

    // An order whose OrderPlaced the topic refuses, cancelled at once: its
    // OrderCancelled alone would be accepted, and must not overtake it.
    let big = id_of(&service.place_body(&oversized_order()).await?);
    service.cancel(&big).await?;
    let mut small = Vec::new();
    for i in 0..SMALL {
        small.push(id_of(&service.place(i).await?));
    }

    wait_until("every other order to be published", || async {
        Ok(outbox_len(&pool).await? == 2)
    })
    .await?;
    assert_eq!(
        topic_len(&bootstrap, &topic).await?,
        i64::try_from(SMALL)?,
        "the small orders' events and nothing of the big order's"
    );
    let by_order = events_per_order(&read_records(&infra, &topic, SMALL).await?)?;
    for id in &small {
        assert_eq!(
            by_order.get(id).map(Vec::as_slice),
            Some(&["OrderPlaced".to_owned()][..]),
            "{id}"
        );
    }
    assert!(
        !by_order.contains_key(&big),
        "nothing of {big} is published"
    );
    service.stop().await
}

/// The relay's lock session carries server-side TCP keepalives: PostgreSQL
/// closes a half-open session of a vanished relay (and frees the lock for
/// another instance) in about half a minute, not after the kernel's two hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_lock_session_has_tcp_keepalives() -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let infra = TestInfra::acquire().await?;
    let (_, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let mut session =
        sqlx::PgConnection::connect_with(&messaging::outbox::lock_session(&pool)).await?;
    let mut settings = Vec::new();
    for name in [
        "tcp_keepalives_idle",
        "tcp_keepalives_interval",
        "tcp_keepalives_count",
        "tcp_user_timeout",
    ] {
        let value: String = sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
            .bind(name)
            .fetch_one(&mut session)
            .await?;
        settings.push(value);
    }
    assert_eq!(settings, ["10", "5", "3", "30000"], "over TCP to 127.0.0.1");
    session.close().await?;
    Ok(())
}

/// A fatal producer error (here librdkafka's `rd_kafka_test_fatal_error`,
/// as a fenced idempotent producer raises) fails every later send of that
/// producer instance: the relay replaces it, counts it, and keeps publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_fatal_producer_error_the_relay_rebuilds_its_producer_and_keeps_publishing()
-> anyhow::Result<()> {
    const ORDERS: usize = 6;
    let infra = TestInfra::acquire().await?;
    let topic = infra.fresh_topic(3).await?;
    let (url, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    let bootstrap = infra.kafka_bootstrap_servers();
    let mut config = order_service::Config::for_flow(url, e2e::admin_kafka(bootstrap, &topic));
    let fatal = messaging::outbox::FatalErrorSwitch::default();
    config.relay.fatal_error = Some(fatal.clone());
    config.relay.max_backoff = Duration::from_millis(500);
    let service = OrderService::start(config).await?;
    service.place(0).await?;
    wait_until("the first order to be published", || async {
        Ok(outbox_len(&pool).await? == 0)
    })
    .await?;

    fatal.flip();
    for i in 1..ORDERS {
        service.place(i).await?;
    }
    wait_until(
        "the orders after the fatal error to be published",
        || async { Ok(outbox_len(&pool).await? == 0) },
    )
    .await?;
    assert_eq!(
        service.metric("outbox_relay_producer_rebuilds").await?,
        1,
        "one producer replaced"
    );
    assert_eq!(service.readiness().await?.0, StatusCode::OK);
    let records = read_records(&infra, &topic, ORDERS).await?;
    assert_eq!(
        events_per_order(&records)?.len(),
        ORDERS,
        "every order once"
    );
    service.stop().await
}
