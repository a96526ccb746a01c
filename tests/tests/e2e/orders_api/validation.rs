//! Invalid requests name the field and write nothing; whole numbers are taken in
//! any notation.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::order_api_client::{Bad, OrdersApi, adding, assert_all_refused, order, with, without};

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
