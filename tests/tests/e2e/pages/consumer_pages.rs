//! The consumers' pages: a cancel reaching both, and shipping's pages showing
//! nothing of billing.

use anyhow::{Context as _, ensure};
use e2e::browser::Browser;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};

use super::{Flow, place_through_the_form};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_order_page_reaches_both_consumers() -> anyhow::Result<()> {
    let flow = Flow::start().await?;
    let browser = Browser::start().await?;
    let id = place_through_the_form(&flow, &browser, "Changed Mind").await?;
    browser
        .wait_for("the journey to complete", "#journey[data-complete=true]")
        .await?;
    browser
        .fill("reason", "found it cheaper <b>elsewhere</b>")
        .await?;
    browser.click("#cancel").await?;
    browser
        .wait_for(
            "the invoice to be cancelled",
            "li.done[data-step=invoice-cancelled]",
        )
        .await?;
    browser
        .wait_for(
            "the shipment to be cancelled",
            "li.done[data-step=shipment-cancelled]",
        )
        .await?;
    ensure!(
        browser.text("li[data-step=cancelled] q").await? == "found it cheaper <b>elsewhere</b>",
        "the reason, as text"
    );
    ensure!(
        browser.count("#cancel").await? == 0,
        "no cancel button on a cancelled order"
    );
    browser.screenshot("order-cancelled").await?;
    for collection in ["invoices", "shipments"] {
        let effect = flow.effect(collection, &id).await?.context("effect")?;
        ensure!(effect["status"] == "cancelled", "{collection}: {effect}");
    }
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipping_pages_show_no_price_no_email_and_no_billing_address() -> anyhow::Result<()> {
    let flow = Flow::start().await?;
    let browser = Browser::start().await?;
    let id = place_through_the_form(&flow, &browser, "Grace Hopper").await?;
    browser
        .wait_for("the journey to complete", "#journey[data-complete=true]")
        .await?;
    let shipment = flow.effect("shipments", &id).await?.context("shipment")?;
    let shipment_id = shipment["id"].as_str().context("id")?;
    let forbidden = [
        "EUR",
        "149.00",
        "14900",
        "19.99",
        "317.99",
        "ada@example.com",
        "Analytical",
        "10115",
        "Berlin",
    ];
    for url in [
        format!("{}/", flow.links.of(&SHIPPING_SERVICE)),
        format!(
            "{}/shipment/{shipment_id}",
            flow.links.of(&SHIPPING_SERVICE)
        ),
    ] {
        browser.open(&url).await?;
        let page = browser.client().source().await?;
        ensure!(
            page.contains("Grace Hopper") && page.contains("Munich"),
            "{url} shows the shipment"
        );
        for word in forbidden {
            ensure!(!page.contains(word), "{url} shows {word:?}");
        }
    }
    // The invoice of the same order has them all: the split is the services', not the test's.
    let invoice = flow.effect("invoices", &id).await?.context("invoice")?;
    browser
        .open(&format!(
            "{}/invoice/{}",
            flow.links.of(&INVOICING_SERVICE),
            invoice["id"].as_str().context("id")?
        ))
        .await?;
    let page = browser.client().source().await?;
    for word in [
        "EUR 149.00",
        "EUR 317.99",
        "ada@example.com",
        "Analytical",
        "Berlin",
    ] {
        ensure!(page.contains(word), "the invoice shows {word:?}");
    }
    browser.close().await
}
