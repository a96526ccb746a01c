//! Idempotency keys: replayed answers, one order under concurrency, and the key's
//! retention and purge.

use std::collections::HashSet;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::order_api_client::{OrdersApi, is_problem, order, with};

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
