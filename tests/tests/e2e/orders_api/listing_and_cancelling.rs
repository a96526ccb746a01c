//! Listing orders page by page, and cancelling one (twice).

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::order_api_client::{OrdersApi, order, with};

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
