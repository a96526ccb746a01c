//! The order API against a real PostgreSQL (no Kafka: nothing here needs the
//! relay; the tests read the outbox rows the relay would publish).
//!
//! Each test starts its own service on a fresh database
//! ([`OrdersApi::start`]) and drives it over HTTP with `reqwest`, then
//! checks the tables directly: an answer is only half the story when the
//! promise is "nothing was written" or "exactly one event".

use std::collections::HashSet;

use order_service::api::request::PlaceOrderRequest;
use order_service::store::{Placement, Store, StoreError};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::order_api_client::{
    Bad, OrdersApi, adding, assert_all_refused, is_problem, order, with, without,
};

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

/// Requests that are well-formed JSON but break a rule: 422 naming each
/// field, nothing written. Unreadable and hostile requests (malformed JSON,
/// odd numbers, wrong media types, headers, paths, methods, queries) are in
/// [`crate::hostile`].
#[tokio::test]
async fn invalid_requests_name_the_field_and_write_nothing() {
    let api = OrdersApi::start().await;
    let valid = order();
    let unknown = Uuid::now_v7();
    let line = json!({ "sku": "S", "name": "n", "quantity": 1, "unit_price_cents": 1 });
    let many_lines: Vec<Value> = (0..101)
        .map(|i| with(line.clone(), "/sku", json!(format!("S{i}"))))
        .collect();
    use StatusCode as S;

    let cases = vec![
        // unknown and missing fields: 422 naming them
        Bad::invalid(
            "unknown top-level field",
            adding(valid.clone(), "total_cents", json!(1)),
            "total_cents",
        ),
        Bad::invalid(
            "unknown line field",
            with(
                valid.clone(),
                "/lines/0",
                json!({ "sku": "A", "name": "a", "quantity": 1, "unit_price_cents": 1, "discount": 5 }),
            ),
            "lines[0].discount",
        ),
        Bad::invalid(
            "missing customer",
            without(valid.clone(), "/customer"),
            "customer",
        ),
        Bad::invalid(
            "missing e-mail",
            without(valid.clone(), "/customer/email"),
            "customer.email",
        ),
        // each validation rule
        Bad::invalid(
            "blank name",
            with(valid.clone(), "/customer/name", json!("   ")),
            "customer.name",
        ),
        Bad::invalid(
            "name too long",
            with(valid.clone(), "/customer/name", json!("n".repeat(201))),
            "customer.name",
        ),
        Bad::invalid(
            "implausible e-mail",
            with(valid.clone(), "/customer/email", json!("ada.example.com")),
            "customer.email",
        ),
        Bad::invalid(
            "e-mail too long",
            with(
                valid.clone(),
                "/customer/email",
                json!(format!("{}@example.com", "a".repeat(243))),
            ),
            "customer.email",
        ),
        Bad::invalid(
            "street too long",
            with(
                valid.clone(),
                "/billing_address/street",
                json!("s".repeat(201)),
            ),
            "billing_address.street",
        ),
        Bad::invalid(
            "zip too long",
            with(valid.clone(), "/billing_address/zip", json!("1".repeat(21))),
            "billing_address.zip",
        ),
        Bad::invalid(
            "city too long",
            with(
                valid.clone(),
                "/shipping_address/city",
                json!("c".repeat(101)),
            ),
            "shipping_address.city",
        ),
        Bad::invalid(
            "unassigned country",
            with(valid.clone(), "/billing_address/country", json!("XX")),
            "billing_address.country",
        ),
        Bad::invalid(
            "lower-case country",
            with(valid.clone(), "/shipping_address/country", json!("de")),
            "shipping_address.country",
        ),
        Bad::invalid(
            "lower-case currency",
            with(valid.clone(), "/currency", json!("eur")),
            "currency",
        ),
        Bad::invalid(
            "no lines",
            with(valid.clone(), "/lines", json!([])),
            "lines",
        ),
        Bad::invalid(
            "101 lines",
            with(valid.clone(), "/lines", Value::Array(many_lines)),
            "lines",
        ),
        Bad::invalid(
            "sku with a space",
            with(valid.clone(), "/lines/0/sku", json!("IPOD NANO")),
            "lines[0].sku",
        ),
        Bad::invalid(
            "sku too long",
            with(valid.clone(), "/lines/0/sku", json!("S".repeat(65))),
            "lines[0].sku",
        ),
        Bad::invalid(
            "duplicate sku",
            with(valid.clone(), "/lines/1/sku", json!("IPOD-NANO")),
            "lines[1].sku",
        ),
        Bad::invalid(
            "quantity 0",
            with(valid.clone(), "/lines/0/quantity", json!(0)),
            "lines[0].quantity",
        ),
        Bad::invalid(
            "quantity 10 001",
            with(valid.clone(), "/lines/0/quantity", json!(10_001)),
            "lines[0].quantity",
        ),
        Bad::invalid(
            "negative price",
            with(valid.clone(), "/lines/1/unit_price_cents", json!(-1)),
            "lines[1].unit_price_cents",
        ),
        Bad::invalid(
            "price too high",
            with(
                valid.clone(),
                "/lines/1/unit_price_cents",
                json!(100_000_001),
            ),
            "lines[1].unit_price_cents",
        ),
        // the cancel body is validated like the order
        Bad {
            path: format!("/orders/{unknown}/cancel"),
            field: Some("reason"),
            ..Bad::post(
                "cancel reason too long",
                json!({ "reason": "r".repeat(501) }),
                S::UNPROCESSABLE_ENTITY,
            )
        },
    ];
    assert!(cases.len() >= 20);
    assert_all_refused(&api, cases).await;

    // Every invalid field at once, not just the first.
    let mut all = with(valid.clone(), "/customer/email", json!("nope"));
    all = with(all, "/currency", json!("euro"));
    all = with(all, "/lines/0/quantity", json!(0));
    all = with(all, "/lines/1/sku", json!("bad sku"));
    let response = api.post_order(&all, None).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "customer.email",
            "currency",
            "lines[0].quantity",
            "lines[1].sku"
        ]
    );
    assert_eq!(api.counts().await, [0, 0, 0, 0]);
    api.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_and_refuse_a_different_request() {
    let api = OrdersApi::start().await;

    let first = api.post_order(&order(), Some("key-1")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()[header::LOCATION].clone();
    let first_body = first.bytes().await.unwrap();

    // The same request again, formatted differently: replayed, byte for byte.
    let reformatted = serde_json::to_string_pretty(&order()).unwrap();
    let again = api
        .client
        .post(api.url("/orders"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "key-1")
        .body(reformatted)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()[header::LOCATION], location);
    assert_eq!(again.bytes().await.unwrap(), first_body);
    assert_eq!(
        api.counts().await,
        [1, 2, 1, 1],
        "no second order, no second event"
    );

    // The same key with a different request: 409, nothing written.
    let different = with(order(), "/lines/0/quantity", json!(3));
    let conflict = api.post_order(&different, Some("key-1")).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    assert!(is_problem(&conflict));
    assert_eq!(api.counts().await, [1, 2, 1, 1]);

    // A new key, or no key, is a new order.
    assert_eq!(
        api.post_order(&order(), Some("key-2")).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        api.post_order(&order(), None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        api.post_order(&order(), None).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(api.counts().await, [4, 8, 4, 2]);

    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("orders_idempotent_replays_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("orders_placed_total 4"), "{metrics}");
    api.stop().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_place_one_order() {
    let api = OrdersApi::start().await;
    const CONCURRENT: usize = 8;
    let mut requests = JoinSet::new();
    for _ in 0..CONCURRENT {
        let client = api.client.clone();
        let url = api.url("/orders");
        let body = order().to_string();
        requests.spawn(async move {
            let response = client
                .post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", "one-key-many-requests")
                .body(body)
                .send()
                .await
                .unwrap();
            let replayed = response.headers().contains_key("idempotent-replayed");
            (response.status(), replayed, response.text().await.unwrap())
        });
    }
    let answers = requests.join_all().await;
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for (status, replayed, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        fresh += usize::from(!replayed);
        let order: Value = serde_json::from_str(body).unwrap();
        ids.insert(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every answer names the same order");
    assert_eq!(
        fresh, 1,
        "exactly one request placed it; the rest were replays"
    );
    assert_eq!(
        api.counts().await,
        [1, 2, 1, 1],
        "one order, one outbox row"
    );
    api.stop().await;
}

#[tokio::test]
async fn orders_are_listed_newest_first_page_by_page() {
    let api = OrdersApi::start().await;
    let mut placed = Vec::new();
    for i in 0..7 {
        let body = with(order(), "/customer/name", json!(format!("Customer {i}")));
        placed.push(api.place(&body).await["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/orders?limit=3&cursor={c}"),
            None => "/orders?limit=3".to_owned(),
        };
        let page: Value = api
            .client
            .get(api.url(&path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        assert_eq!(
            items[0]["lines"].as_array().unwrap().len(),
            2,
            "lines are included"
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    let all: Value = api
        .client
        .get(api.url("/orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        7,
        "default limit is 50"
    );
    assert_eq!(all["next_cursor"], Value::Null);
    api.stop().await;
}

/// JSON Schema's `integer`, which the OpenAPI document states, counts `2.0`
/// and `1.999e3` as whole numbers, so the API takes them as 2 and 1999
/// (Schemathesis' `positive_data_acceptance` found the API refusing them).
#[tokio::test]
async fn whole_numbers_in_any_notation_are_taken_as_those_numbers() {
    let api = OrdersApi::start().await;
    let compact = order().to_string();
    let body = compact
        .replacen(r#""quantity":2"#, r#""quantity":2.0"#, 1)
        .replacen(
            r#""unit_price_cents":1999"#,
            r#""unit_price_cents":1.999e3"#,
            1,
        );
    assert!(body.contains("2.0") && body.contains("1.999e3"), "{body}");
    let response = api
        .client
        .post(api.url("/orders"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let placed: Value = response.json().await.unwrap();
    assert_eq!(placed["lines"][0]["quantity"], 2);
    assert_eq!(placed["lines"][1]["unit_price_cents"], 1999);
    assert_eq!(placed["total_cents"], 2 * 14_900 + 1999);
    api.stop().await;
}

#[tokio::test]
async fn cancelling_twice_changes_nothing_the_second_time() {
    let api = OrdersApi::start().await;
    let id = api.place(&order()).await["id"].as_str().unwrap().to_owned();

    let first = api
        .cancel(&id, Some(json!({ "reason": "changed my mind" })))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let cancelled: Value = first.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "changed my mind");
    assert!(cancelled["cancelled_at"].is_string());

    let second = api
        .cancel(&id, Some(json!({ "reason": "another reason" })))
        .await;
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second, cancelled, "the second cancel is a no-op");

    let fetched: Value = api
        .client
        .get(api.url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, cancelled);

    let rows = api.outbox_rows(&id).await;
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(types, ["OrderPlaced", "OrderCancelled"]);
    let event: Value = serde_json::from_str(&rows[1].payload).unwrap();
    assert_eq!(event["order_id"], id);
    assert_eq!(event["data"]["reason"], "changed my mind");
    assert_eq!(event["data"]["cancelled_at"], cancelled["cancelled_at"]);

    // With an empty body, and concurrently: still exactly one event per order.
    for _ in 0..3 {
        let other = api.place(&order()).await["id"].as_str().unwrap().to_owned();
        let mut cancels = JoinSet::new();
        for _ in 0..8 {
            let request = api
                .client
                .post(api.url(&format!("/orders/{other}/cancel")))
                .header("content-type", "application/json");
            cancels.spawn(async move { request.send().await.unwrap().status() });
        }
        for status in cancels.join_all().await {
            assert_eq!(status, StatusCode::OK);
        }
        let rows = api.outbox_rows(&other).await;
        let cancelled = rows
            .iter()
            .filter(|r| r.event_type == "OrderCancelled")
            .count();
        assert_eq!(cancelled, 1, "eight concurrent cancels write one event");
        let event: Value = serde_json::from_str(&rows[1].payload).unwrap();
        assert_eq!(event["data"]["reason"], Value::Null);
    }

    let metrics = api.client.get(api.url("/metrics")).send().await.unwrap();
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("orders_cancelled_total 4")
    );
    api.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_is_recognised_within_its_retention_and_forgotten_after_it() {
    let api = OrdersApi::start_with(|config| {
        config.idempotency_key_retention = std::time::Duration::from_secs(3600);
        config.purge_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let first = api.post_order(&order(), Some("kept-key")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let old = api.post_order(&order(), Some("old-key")).await;
    assert_eq!(old.status(), StatusCode::CREATED);
    let old: Value = old.json().await.unwrap();
    // The second key was used more than the retention window ago.
    sqlx::query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 hours' WHERE key = 'old-key'",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    e2e::services::wait_until("the old key to be purged", || async {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = 'old-key'")
                .fetch_one(&api.pool)
                .await?;
        Ok(left == 0)
    })
    .await
    .unwrap();

    let replay = api.post_order(&order(), Some("kept-key")).await;
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..]),
        "a retry within the window replays"
    );
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], first["id"]);
    let reused = api.post_order(&order(), Some("old-key")).await;
    assert!(
        reused.headers().get("idempotent-replayed").is_none(),
        "a forgotten key places a new order"
    );
    assert_eq!(reused.status(), StatusCode::CREATED);
    assert_ne!(reused.json::<Value>().await.unwrap()["id"], old["id"]);
    api.stop().await;
}

/// A retry whose key the retention purge deletes between the claim (the key
/// exists: a replay) and the replay's read of the key: it must replay or
/// place, never answer 500. A statement trigger, test scaffolding only,
/// parks the retry right after its claim until the test has run the purge's
/// DELETE; the claim locks an existing key, so that DELETE waits for the
/// retry instead of pulling the key from under it.
#[tokio::test]
async fn a_retry_racing_the_purge_of_its_key_is_answered_not_failed() {
    let api = OrdersApi::start().await;
    let first = api.post_order(&order(), Some("racing-key")).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION park_after_claim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_advisory_lock_shared(2121);
             PERFORM pg_advisory_unlock_shared(2121);
             RETURN NULL;
         END $$;
         CREATE TRIGGER park_after_claim AFTER INSERT ON idempotency_keys
             FOR EACH STATEMENT EXECUTE FUNCTION park_after_claim();",
    )
    .execute(&api.pool)
    .await
    .unwrap();
    let mut gate = api.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(2121)")
        .execute(&mut *gate)
        .await
        .unwrap();

    let waiting_on = |what: &'static str| {
        let pool = api.pool.clone();
        move || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'
                       AND query LIKE $1",
                )
                .bind(what)
                .fetch_one(&pool)
                .await?;
                Ok(n > 0)
            }
        }
    };
    let race = async {
        e2e::services::wait_until(
            "the retry to be parked after its claim",
            waiting_on("INSERT INTO idempotency_keys%"),
        )
        .await
        .unwrap();
        // The purge deletes the key while the retry is between claim and read.
        let purge = tokio::spawn({
            let pool = api.pool.clone();
            async move {
                sqlx::query("DELETE FROM idempotency_keys WHERE key = 'racing-key'")
                    .execute(&pool)
                    .await
            }
        });
        let waiting = waiting_on("DELETE FROM idempotency_keys%");
        e2e::services::wait_until("the purge to be done or to wait for the retry", || {
            let waiting = waiting();
            let done = purge.is_finished();
            async move { Ok(done || waiting.await?) }
        })
        .await
        .unwrap();
        sqlx::query("SELECT pg_advisory_unlock(2121)")
            .execute(&mut *gate)
            .await
            .unwrap();
        purge.await
    };
    let again = order();
    let (retry, purge) = tokio::join!(api.post_order(&again, Some("racing-key")), race);
    assert_eq!(retry.status(), StatusCode::CREATED, "replayed, not failed");
    assert_eq!(
        retry
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    assert_eq!(retry.json::<Value>().await.unwrap()["id"], first["id"]);
    purge.unwrap().unwrap();
    drop(gate);
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
