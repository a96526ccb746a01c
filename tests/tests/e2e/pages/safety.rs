//! Pages under attack: a script in a name is text everywhere, and a form posted
//! from another site is refused.

use anyhow::{Context as _, ensure};
use e2e::browser::Browser;
use e2e::services::{EventProducer, wait_until};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use reqwest::StatusCode;
use serde_json::json;

use super::{Flow, HOSTILE_NAME, place_through_the_form};

/// Whether the page holds exactly the one script of the pages and no
/// element a customer's text could have made, and `css` reads as `text`.
async fn shown_as_text(browser: &Browser, css: &str, text: &str) -> anyhow::Result<()> {
    let url = browser.url().await?;
    let shown = browser.text(css).await?;
    ensure!(shown.contains(text), "{url}: {css} reads {shown:?}");
    let scripts = browser.count("script").await?;
    ensure!(scripts == 1, "{url}: {scripts} script elements");
    ensure!(browser.count("img").await? == 0, "{url}: an img element");
    let title = browser.script("return document.title;", vec![]).await?;
    ensure!(title != json!("pwned"), "{url}: a script ran");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_in_a_customer_name_is_text_on_every_page_and_in_the_journey() -> anyhow::Result<()>
{
    let flow = Flow::start().await?;
    let browser = Browser::start().await?;
    let id = place_through_the_form(&flow, &browser, HOSTILE_NAME).await?;
    browser
        .wait_for("the journey to complete", "#journey[data-complete=true]")
        .await?;
    // A record of this order that invoicing cannot read, carrying script
    // in the field its reader names: the dead letter shows in the journey.
    let poison = format!(
        r#"{{"event_id":"{}","event_type":"OrderCancelled","schema_version":"{HOSTILE_NAME}","order_id":"{id}"}}"#,
        uuid::Uuid::now_v7()
    );
    EventProducer::new(&flow.infra, &flow.topic)?
        .send_raw(&id, poison.as_bytes())
        .await?;
    let invoicing = flow.consumer::<Invoicing>().context("invoicing runs")?;
    wait_until("invoicing to note the dead letter", || async {
        let noted = invoicing
            .get_ok(&format!("/dead-letters?order_id={id}"))
            .await?;
        Ok(noted["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty()))
    })
    .await?;
    browser.open(&flow.order(&format!("/order/{id}"))).await?;
    browser
        .wait_for(
            "the dead letter in the journey",
            "li[data-step=dead-lettered]",
        )
        .await?;
    shown_as_text(&browser, ".dead-letter-reason", "<script>").await?;
    shown_as_text(&browser, "h1 .customer", HOSTILE_NAME).await?;
    browser.screenshot("order-dead-letter").await?;

    browser.open(&flow.order("/")).await?;
    shown_as_text(&browser, "#orders td.customer", HOSTILE_NAME).await?;
    let invoice = flow.effect("invoices", &id).await?.context("invoice")?;
    let shipment = flow.effect("shipments", &id).await?.context("shipment")?;
    for (url, css) in [
        (
            format!("{}/", flow.links.of(&INVOICING_SERVICE)),
            "tbody td:nth-child(2)",
        ),
        (
            format!(
                "{}/invoice/{}",
                flow.links.of(&INVOICING_SERVICE),
                invoice["id"].as_str().context("id")?
            ),
            "main",
        ),
        (
            format!("{}/", flow.links.of(&SHIPPING_SERVICE)),
            "tbody td:nth-child(2)",
        ),
        (
            format!(
                "{}/shipment/{}",
                flow.links.of(&SHIPPING_SERVICE),
                shipment["id"].as_str().context("id")?
            ),
            "main",
        ),
    ] {
        browser.open(&url).await?;
        shown_as_text(&browser, css, "<script>").await?;
    }
    // The overview while orders come in: its charts move without a reload.
    browser.open(&flow.order("/overview")).await?;
    let client = reqwest::Client::new();
    for round in 0..6u64 {
        for i in 0..5 {
            let response = client
                .post(flow.order("/orders"))
                .json(&json!({
                    "customer": { "name": format!("Watcher {round}-{i}"), "email": "w@example.com" },
                    "billing_address": { "street": "1 Chart Way", "zip": "10115", "city": "Berlin", "country": "DE" },
                    "shipping_address": { "street": "1 Chart Way", "zip": "10115", "city": "Berlin", "country": "DE" },
                    "currency": "EUR",
                    "lines": [{ "sku": "SPARK", "name": "Sparkline", "quantity": 1, "unit_price_cents": 500 }]
                }))
                .send()
                .await?;
            ensure!(response.status() == StatusCode::CREATED);
        }
        wait_until("the charts to refresh", || async {
            let updates = browser
                .script(
                    "return Number(document.body.getAttribute('data-live-updates') || 0);",
                    vec![],
                )
                .await?;
            Ok(updates.as_u64().unwrap_or(0) > round)
        })
        .await?;
    }
    ensure!(
        browser.count(".chart svg polyline").await? >= 5,
        "the charts are drawn"
    );
    browser.screenshot("overview").await?;
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_from_another_site_is_refused_and_writes_nothing() -> anyhow::Result<()> {
    let flow = Flow::order_service_only().await?;
    // Another site: a page on another origin with a form aimed at order-service.
    let fields: Vec<(&str, &str)> = vec![
        ("idempotency_key", "forged-1"),
        ("customer.name", "Mallory"),
        ("customer.email", "mallory@example.com"),
        ("billing_address.street", "1 Forge Lane"),
        ("billing_address.zip", "10115"),
        ("billing_address.city", "Berlin"),
        ("billing_address.country", "DE"),
        ("shipping_same_as_billing", "on"),
        ("currency", "EUR"),
        ("lines[0].sku", "BAIT"),
        ("lines[0].name", "Bait"),
        ("lines[0].quantity", "1"),
        ("lines[0].unit_price", "1.00"),
    ];
    let target = flow.order("/new");
    let evil = maud::html! {
        html { body {
            form method="post" action=(target) {
                @for (name, value) in &fields { input type="hidden" name=(name) value=(value); }
                button #go type="submit" name="action" value="place" { "Win a prize" }
            }
        } }
    }
    .into_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let evil_url = format!("http://{}/", listener.local_addr()?);
    let site = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let evil = evil.clone();
            async move { axum::response::Html(evil) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, site).await });

    let browser = Browser::start().await?;
    browser.open(&evil_url).await?;
    browser.click("#go").await?;
    wait_until("the refusal page", || async {
        Ok(browser
            .text("body")
            .await
            .unwrap_or_default()
            .contains("another site"))
    })
    .await?;
    ensure!(
        browser.text("h1").await?.starts_with("403"),
        "403 Forbidden"
    );
    browser.screenshot("cross-site-refused").await?;
    ensure!(flow.written().await? == (0, 0, 0), "nothing written");

    // The same post from the order page's own origin goes through.
    let response = reqwest::Client::new()
        .post(&target)
        .header("origin", &flow.links.order)
        .form(
            &fields
                .iter()
                .copied()
                .chain([("action", "place")])
                .collect::<Vec<_>>(),
        )
        .send()
        .await?;
    ensure!(response.status().is_success(), "{}", response.status());
    ensure!(flow.written().await?.0 == 1);
    server.abort();
    browser.close().await
}
