//! The whole flow, as a user sees it: orders placed and cancelled over HTTP
//! on order-service reach invoicing and shipping through the outbox, the
//! relay and Kafka, and each side records exactly its own part, once.

use anyhow::Context as _;
use e2e::TestInfra;
use e2e::flow::TestFlow;
use e2e::services::{ServiceUnderTest, wait_until};
use invoicing_service::Invoicing;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use shipping_service::Shipping;

fn order(i: usize) -> Value {
    json!({
        "customer": { "name": format!("Flow Customer {i}"), "email": format!("flow{i}@example.com") },
        "billing_address": { "street": format!("{i} Ledger Lane"), "zip": "10115", "city": "Berlin", "country": "DE" },
        "shipping_address": { "street": format!("{i} Dock Road"), "zip": "20457", "city": "Hamburg", "country": "DE" },
        "currency": "EUR",
        "lines": [
            { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 1 + i % 3, "unit_price_cents": 14900 },
            { "sku": format!("CASE-{i}"), "name": "Case", "quantity": 2, "unit_price_cents": 1999 }
        ]
    })
}

/// The single item of `GET /<collection>?order_id=`, once there is exactly one.
async fn only_item(
    service: &ServiceUnderTest,
    collection: &str,
    order_id: &str,
) -> anyhow::Result<Option<Value>> {
    let page = service
        .get_ok(&format!("/{collection}?order_id={order_id}"))
        .await?;
    let items = page["items"].as_array().context("items")?;
    anyhow::ensure!(
        items.len() <= 1,
        "{} {collection} for order {order_id}",
        items.len()
    );
    Ok(items.first().cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_and_cancelled_over_http_reach_invoicing_and_shipping_once()
-> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let flow = TestFlow::start(&infra, 6)
        .await?
        .with_consumer::<Invoicing>()
        .await?
        .with_consumer::<Shipping>()
        .await?;
    let orders_base = flow.order_base_url();
    let invoicing = flow.consumer::<Invoicing>()?;
    let shipping = flow.consumer::<Shipping>()?;

    let client = Client::new();
    let mut placed = Vec::new();
    for i in 0..5 {
        let response = client
            .post(format!("{orders_base}/orders"))
            .json(&order(i))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::CREATED);
        placed.push(response.json::<Value>().await?);
    }
    let cancelled_id = placed[0]["id"].as_str().context("id")?.to_owned();
    let response = client
        .post(format!("{orders_base}/orders/{cancelled_id}/cancel"))
        .json(&json!({ "reason": "changed my mind" }))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);

    for order in &placed {
        let id = order["id"].as_str().context("id")?;
        let cancelled = id == cancelled_id;
        let (invoice_status, shipment_status) = if cancelled {
            ("cancelled", "cancelled")
        } else {
            ("open", "pending")
        };
        wait_until(
            &format!("order {id} to be invoiced and shipped"),
            || async {
                let invoice = only_item(invoicing, "invoices", id).await?;
                let shipment = only_item(shipping, "shipments", id).await?;
                Ok(invoice.is_some_and(|i| i["status"] == invoice_status)
                    && shipment.is_some_and(|s| s["status"] == shipment_status))
            },
        )
        .await?;

        let invoice = only_item(invoicing, "invoices", id)
            .await?
            .context("invoice")?;
        assert_eq!(invoice["customer"], order["customer"]);
        assert_eq!(invoice["billing_address"], order["billing_address"]);
        assert_eq!(invoice["currency"], order["currency"]);
        assert_eq!(invoice["total_cents"], order["total_cents"]);
        assert_eq!(invoice["lines"], order["lines"], "invoice lines of {id}");

        let shipment = only_item(shipping, "shipments", id)
            .await?
            .context("shipment")?;
        assert_eq!(
            shipment["recipient"],
            json!({ "name": order["customer"]["name"] })
        );
        assert_eq!(shipment["shipping_address"], order["shipping_address"]);
        let expected_lines: Vec<Value> = order["lines"]
            .as_array()
            .context("lines")?
            .iter()
            .map(|l| json!({ "sku": l["sku"], "name": l["name"], "quantity": l["quantity"] }))
            .collect();
        assert_eq!(
            shipment["lines"],
            Value::Array(expected_lines),
            "shipment lines of {id}"
        );
    }
    assert_eq!(invoicing.metric("inbox_records_processed").await?, 6);
    assert_eq!(shipping.metric("inbox_records_processed").await?, 6);
    assert_eq!(invoicing.metric("inbox_dead_lettered").await?, 0);

    // The tools' typed client (`orderflow-client`) reads what each service answers.
    let api = orderflow_client::ApiClient::new()?;
    for order in &placed {
        let id: uuid::Uuid = order["id"].as_str().context("id")?.parse()?;
        let typed = api.order(orders_base, id).await?;
        assert_eq!(serde_json::to_value(&typed.lines)?, order["lines"]);
        let invoice = api
            .invoice_of(invoicing.base_url(), id)
            .await?
            .context("typed invoice")?;
        assert_eq!(invoice.order_id, id);
        assert_eq!(invoice.customer, typed.customer);
        assert_eq!(invoice.billing_address, typed.billing_address);
        assert_eq!(invoice.total_cents, typed.total_cents);
        let shipment = api
            .shipment_of(shipping.base_url(), id)
            .await?
            .context("typed shipment")?;
        assert_eq!(shipment.order_id, id);
        assert_eq!(shipment.recipient.name, typed.customer.name);
        assert_eq!(shipment.shipping_address, typed.shipping_address);
        assert_eq!(shipment.lines.len(), typed.lines.len());
        assert_eq!(shipment.status, invoice.status.replace("open", "pending"));
    }

    flow.stop().await?;
    Ok(())
}
