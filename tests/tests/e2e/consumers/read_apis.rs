//! The consumers' read APIs: exactly the expected fields, and problems for bad
//! and unknown ids.

use std::collections::BTreeSet;

use anyhow::Context as _;
use e2e::events::{BILLING_STREET, EMAIL, placed};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Flow, without_id_and_time};

/// Every key of `value`, at any depth, and every string value.
fn keys_and_strings(value: &Value, keys: &mut BTreeSet<String>, strings: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                keys.insert(key.clone());
                keys_and_strings(field, keys, strings);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| keys_and_strings(item, keys, strings)),
        Value::String(s) => {
            strings.insert(s.clone());
        }
        _ => {}
    }
}

fn key_set(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|fields| fields.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_yields_one_invoice_and_one_shipment_with_exactly_the_expected_fields()
-> anyhow::Result<()> {
    let flow = Flow::start(3).await?;
    let order_id = Uuid::now_v7();
    flow.producer.send(&placed(order_id)).await?;
    flow.wait_for(order_id, "open", "pending").await?;

    let [listed] = &flow.invoicing.of_order("invoices", order_id).await?[..] else {
        anyhow::bail!("one invoice expected");
    };
    let invoice = flow
        .invoicing
        .service
        .get_ok(&format!(
            "/invoices/{}",
            listed["id"].as_str().context("id")?
        ))
        .await?;
    assert_eq!(&invoice, listed, "GET by id and the list agree");
    assert_eq!(
        without_id_and_time(invoice, "issued_at")?,
        json!({
            "order_id": order_id,
            "status": "open",
            "customer": { "name": "Ada Lovelace", "email": EMAIL },
            "billing_address": { "street": BILLING_STREET, "zip": "10115", "city": "Berlin", "country": "DE" },
            "currency": "EUR",
            "lines": [
                { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900, "line_total_cents": 29800 },
                { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1, "unit_price_cents": 1999, "line_total_cents": 1999 },
            ],
            "total_cents": 31799,
        })
    );

    let [listed] = &flow.shipping.of_order("shipments", order_id).await?[..] else {
        anyhow::bail!("one shipment expected");
    };
    let shipment = flow
        .shipping
        .service
        .get_ok(&format!(
            "/shipments/{}",
            listed["id"].as_str().context("id")?
        ))
        .await?;
    assert_eq!(&shipment, listed, "GET by id and the list agree");
    assert_eq!(
        key_set(&shipment),
        BTreeSet::from([
            "id",
            "order_id",
            "status",
            "recipient",
            "shipping_address",
            "lines",
            "created_at"
        ])
    );
    let (mut keys, mut strings) = (BTreeSet::new(), BTreeSet::new());
    keys_and_strings(&shipment, &mut keys, &mut strings);
    for forbidden in ["price", "total", "email", "billing", "currency"] {
        assert!(
            !keys.iter().any(|k| k.contains(forbidden)),
            "shipment has a {forbidden} key: {keys:?}"
        );
    }
    assert!(!strings.contains(EMAIL) && !strings.contains(BILLING_STREET));
    assert_eq!(
        without_id_and_time(shipment, "created_at")?,
        json!({
            "order_id": order_id,
            "status": "pending",
            "recipient": { "name": "Ada Lovelace" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "lines": [
                { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2 },
                { "sku": "CASE.BLK_1", "name": "Leather case", "quantity": 1 },
            ],
        })
    );

    // Shipping's database has no column for a price, an e-mail or a billing
    // address, and no row holds one anywhere.
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = 'public'",
    )
    .fetch_all(&flow.shipping.pool)
    .await?;
    assert!(columns.iter().any(|(t, _)| t == "shipments"));
    for (table, column) in &columns {
        for forbidden in ["price", "total", "email", "billing", "currency"] {
            assert!(!column.contains(forbidden), "shipping has {table}.{column}");
        }
    }
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(s)::text FROM shipments s
         UNION ALL SELECT row_to_json(l)::text FROM shipment_lines l
         UNION ALL SELECT row_to_json(c)::text FROM cancellations c",
    )
    .fetch_all(&flow.shipping.pool)
    .await?;
    assert!(rows.len() >= 3);
    for row in rows {
        assert!(
            !row.contains(EMAIL) && !row.contains(BILLING_STREET) && !row.contains("EUR"),
            "{row}"
        );
    }
    flow.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_apis_answer_problems_for_bad_and_unknown_ids() -> anyhow::Result<()> {
    let flow = Flow::start(1).await?;
    for (instance, collection) in [(&flow.invoicing, "invoices"), (&flow.shipping, "shipments")] {
        let unknown = Uuid::now_v7();
        for (path, status) in [
            (format!("/{collection}/not-a-uuid"), StatusCode::BAD_REQUEST),
            (format!("/{collection}/{unknown}"), StatusCode::NOT_FOUND),
            (
                format!("/{collection}?order_id=42"),
                StatusCode::BAD_REQUEST,
            ),
            (format!("/{collection}?limit=0"), StatusCode::BAD_REQUEST),
            (
                format!("/{collection}?cursor=nope"),
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (got, content_type, body) = instance.service.get(&path).await?;
            assert_eq!(got, status, "GET {path}: {body}");
            assert_eq!(content_type, "application/problem+json", "GET {path}");
            assert_eq!(body["status"], status.as_u16(), "GET {path}");
        }
        let empty = instance
            .service
            .get_ok(&format!("/{collection}?order_id={unknown}"))
            .await?;
        assert_eq!(empty, json!({ "items": [], "next_cursor": null }));
    }
    flow.stop().await
}
