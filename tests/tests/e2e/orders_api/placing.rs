//! Placing an order: stored with exactly one event, atomically, through the typed
//! client too; and the housekeeping around it (pool warm-up, purged event records).

use order_service::api::request::PlaceOrderRequest;
use order_service::store::{Placement, Store, StoreError};
use reqwest::{StatusCode, header};
use serde_json::Value;
use uuid::Uuid;

use crate::order_api_client::{OrdersApi, is_problem, order};

#[tokio::test]
async fn an_order_is_stored_with_exactly_one_order_placed_event() {
    let api = OrdersApi::start().await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = api
        .client
        .post(api.url("/orders"))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("traceparent", incoming)
        .body(order().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let placed: Value = response.json().await.unwrap();

    let id = placed["id"].as_str().unwrap().to_owned();
    assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(location, format!("/orders/{id}"));
    assert_eq!(placed["status"], "placed");
    assert_eq!(placed["customer"], order()["customer"]);
    assert_eq!(placed["billing_address"], order()["billing_address"]);
    assert_eq!(placed["shipping_address"], order()["shipping_address"]);
    assert_eq!(placed["currency"], "EUR");
    assert_eq!(placed["lines"][0]["line_total_cents"], 29_800);
    assert_eq!(placed["lines"][1]["line_total_cents"], 1_999);
    assert_eq!(placed["total_cents"], 31_799);
    let placed_at = placed["placed_at"].as_str().unwrap();
    assert!(placed_at.ends_with('Z'), "{placed_at} is not UTC");
    assert!(
        chrono_like_rfc3339(placed_at),
        "{placed_at} is not RFC 3339"
    );

    let fetched: Value = api
        .client
        .get(api.url(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, placed);

    let rows = api.outbox_rows(&id).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.topic, api.topic);
    assert_eq!(row.record_key, id);
    assert_eq!(row.event_type, "OrderPlaced");
    assert_eq!(row.schema_version, 1);
    let envelope: Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(envelope["event_id"], row.event_id.to_string());
    assert_eq!(envelope["order_id"], id);
    assert_eq!(envelope["producer"], "order-service");
    assert_eq!(envelope["occurred_at"], placed_at);
    assert_eq!(envelope["data"]["placed_at"], placed_at);
    assert_eq!(envelope["data"]["total_cents"], 31_799);
    assert_eq!(envelope["data"]["lines"], placed["lines"]);
    let traceparent = row.traceparent.as_deref().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the request's trace is continued: {traceparent}"
    );
    assert_ne!(traceparent, incoming, "with a span of its own");
    assert_eq!(api.counts().await, [1, 2, 1, 0]);

    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("orders_placed_total 1"), "{metrics}");
    for health in ["/health/live", "/health/ready"] {
        let response = api.client.get(api.url(health)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{health}");
    }
    api.stop().await;
}

/// `2026-11-21T09:30:00.123456Z`: date, `T`, time, optional fraction, `Z`.
fn chrono_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
}

#[tokio::test]
async fn a_failure_after_the_order_insert_leaves_no_order_and_no_event() {
    let api = OrdersApi::start().await;

    // 1. Through the API: the outbox insert fails inside the request's
    //    transaction (a trigger standing in for any late failure), after the
    //    order and its lines were inserted.
    sqlx::raw_sql(
        "CREATE FUNCTION reject_outbox() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'outbox rejected by the test'; END $$;
         CREATE TRIGGER reject_outbox BEFORE INSERT ON outbox
             FOR EACH ROW EXECUTE FUNCTION reject_outbox();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let response = api.post_order(&order(), Some("atomic-1")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(is_problem(&response));
    let problem: Value = response.json().await.unwrap();
    assert!(
        !problem["detail"]
            .as_str()
            .unwrap()
            .contains("outbox rejected"),
        "internals stay in the log: {problem}"
    );
    assert_eq!(
        api.counts().await,
        [0, 0, 0, 0],
        "nothing of the order survives"
    );

    // The idempotency key was rolled back with the order, so the retry succeeds.
    sqlx::raw_sql("DROP TRIGGER reject_outbox ON outbox")
        .execute(&api.pool)
        .await
        .unwrap();
    let retry = api.post_order(&order(), Some("atomic-1")).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    assert_eq!(api.counts().await, [1, 2, 1, 1]);

    // 2. Through the store: an event id that is already in the outbox makes
    //    the outbox insert fail after the order insert.
    let taken: Uuid = sqlx::query_scalar("SELECT event_id FROM outbox")
        .fetch_one(&api.pool)
        .await
        .unwrap();
    let new_order =
        order_service::api::extract::read_json::<PlaceOrderRequest>(order().to_string().as_bytes())
            .expect("the example order is JSON of the right shape")
            .validate()
            .expect("the example order is valid");
    let order_id = Uuid::now_v7();
    let result = Store::new(api.pool.clone())
        .place_order(Placement {
            order_id,
            event_id: taken,
            order: &new_order,
            idempotency: None,
            topic: &api.topic,
            traceparent: None,
        })
        .await;
    match result {
        Err(StoreError::Database(sqlx::Error::Database(e))) => {
            assert_eq!(e.code().as_deref(), Some("23505"), "unique violation: {e}");
        }
        other => panic!("expected the duplicate event id to fail the transaction: {other:?}"),
    }
    let orphan: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&api.pool)
        .await
        .unwrap();
    assert_eq!(orphan, 0);
    assert_eq!(
        api.counts().await,
        [1, 2, 1, 1],
        "only the first order's rows"
    );
    api.stop().await;
}

/// A service is warm before it answers: `build` returns (and the service
/// listens) only once the pool holds DB_MIN_CONNECTIONS open connections, so
/// the first requests on a busy machine do not each wait for a connection
/// to be opened (a backend fork and a SCRAM exchange) and time out with 503.
#[tokio::test]
async fn a_started_service_has_its_minimum_connections_open_before_it_answers() {
    const MIN: u32 = 6;
    let api = OrdersApi::start_with(|config| {
        let url = config.database.url.expose();
        let join = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{join}application_name=warm-pool-under-test");
        config.database.url = platform::db::DatabaseUrl::new(url);
        config.database.min_connections = MIN;
    })
    .await;
    // Counted at once: no request has been made, no wait for the pool.
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warm-pool-under-test'",
    )
    .fetch_one(&api.pool)
    .await
    .unwrap();
    assert!(
        open >= i64::from(MIN),
        "the pool's minimum is open as it starts: {open} of {MIN}"
    );
    api.stop().await;
}

/// Records of where each event went (for the order page) are deleted once
/// older than PUBLISHED_EVENTS_RETENTION_HOURS; younger ones stay.
#[tokio::test]
async fn records_of_published_events_older_than_their_retention_are_purged() {
    let api = OrdersApi::start_with(|config| {
        config.published_events_retention = std::time::Duration::from_secs(3600);
        config.purge_interval = std::time::Duration::from_millis(100);
    })
    .await;
    sqlx::query(
        "INSERT INTO published_events
             (record_key, event_id, event_type, kafka_partition, kafka_offset, published_at)
         VALUES ('kept', gen_random_uuid(), 'OrderPlaced', 0, 1, now() - interval '59 minutes'),
                ('old', gen_random_uuid(), 'OrderPlaced', 0, 0, now() - interval '2 hours')",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    e2e::services::wait_until("the old record to be purged", || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM published_events WHERE record_key = 'old'")
                .fetch_one(&api.pool)
                .await?;
        Ok(left == 0)
    })
    .await
    .unwrap();
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM published_events WHERE record_key = 'kept'")
            .fetch_one(&api.pool)
            .await
            .unwrap();
    assert_eq!(kept, 1, "a record within the retention stays");
    api.stop().await;
}

/// The tools' typed client (`orderflow-client`) speaks order-service's API:
/// its request types are accepted and its answer types read every field.
#[tokio::test]
async fn the_typed_client_places_reads_and_cancels_an_order() {
    let api = OrdersApi::start().await;
    let client = orderflow_client::ApiClient::new().expect("client");
    let request: orderflow_client::PlaceOrder =
        serde_json::from_value(order()).expect("the example order is a PlaceOrder");

    let placed = client
        .place_order(&api.base, &request, Some("typed-client-1"))
        .await
        .expect("POST /orders answers 201 with an order");
    assert_eq!(placed.status, "placed");
    assert_eq!(placed.customer, request.customer);
    assert_eq!(placed.shipping_address, request.shipping_address);
    assert_eq!(placed.lines.len(), request.lines.len());
    assert_eq!(placed.total_cents, 2 * 14900 + 1999);
    assert_eq!(placed.cancelled_at, None);

    let replayed = client
        .place_order(&api.base, &request, Some("typed-client-1"))
        .await
        .expect("a retry with the same key answers the same order");
    assert_eq!(replayed.id, placed.id);
    assert_eq!(
        client.order(&api.base, placed.id).await.expect("GET"),
        placed
    );

    let cancel = orderflow_client::CancelOrder::because("changed my mind");
    let cancelled = client
        .cancel_order(&api.base, placed.id, &cancel)
        .await
        .expect("POST /orders/{id}/cancel answers the order");
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("changed my mind"));
    assert!(cancelled.cancelled_at.is_some());

    let missing = client
        .send_order(
            &api.base,
            &orderflow_client::PlaceOrder {
                lines: Vec::new(),
                ..request
            },
            None,
        )
        .await
        .expect("an answer");
    assert_eq!(missing.status, 422);
    assert!(missing.problem, "{}", missing.body);
    api.stop().await;
}
