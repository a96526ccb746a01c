//! The order form: a placed order's journey, field errors beside the fields,
//! prices in the currency's units, and one order for a form sent twice.

use anyhow::{Context as _, ensure};
use e2e::browser::Browser;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Flow, fill_order_form, order_id_of_page};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_placed_in_the_form_shows_its_journey_reach_invoiced_and_shipped_without_a_reload()
-> anyhow::Result<()> {
    // The consumers start only once the order page is open, so the page
    // itself has to show them catching up.
    let mut flow = Flow::order_service_only().await?;
    let browser = Browser::start().await?;
    browser.open(&flow.order("/new")).await?;
    fill_order_form(&browser, "Ada Lovelace").await?;
    browser.screenshot("order-form").await?;
    browser.click("#place").await?;
    browser.wait_for("the order page", "#journey").await?;
    let id = order_id_of_page(&browser).await?;
    browser
        .wait_for("the relay to publish it", "li.done[data-step=published]")
        .await?;
    ensure!(
        browser.count("li.done[data-step=invoiced]").await? == 0,
        "invoiced before invoicing ran"
    );
    browser
        .script("window.notReloaded = 'still the same page';", vec![])
        .await?;

    flow.start_consumers().await?;
    browser
        .wait_for(
            "the journey to reach invoiced",
            "li.done[data-step=invoiced]",
        )
        .await?;
    browser
        .wait_for("the journey to reach shipped", "li.done[data-step=shipped]")
        .await?;
    let marker = browser.script("return window.notReloaded;", vec![]).await?;
    ensure!(
        marker == json!("still the same page"),
        "the page was reloaded: {marker}"
    );
    let updates = browser
        .script(
            "return document.body.getAttribute('data-live-updates');",
            vec![],
        )
        .await?;
    ensure!(
        updates.as_str().is_some_and(|n| n != "0"),
        "no live update: {updates}"
    );
    ensure!(
        browser.count("#journey[data-complete=true]").await? == 1,
        "the journey is complete and stops refreshing"
    );
    let published = browser.text("li[data-step=published]").await?;
    ensure!(
        published.contains("partition") && published.contains("offset"),
        "{published}"
    );
    browser.screenshot("order-journey").await?;

    // The invoice and shipment pages the journey links to.
    browser.click("li[data-step=invoiced] a").await?;
    ensure!(
        browser.text("main").await?.contains("EUR 317.99"),
        "the invoice's total"
    );
    browser.screenshot("invoice").await?;
    browser.open(flow.links.of(&INVOICING_SERVICE)).await?;
    browser.screenshot("invoices").await?;
    browser
        .open(&format!("{}/order/{id}", flow.links.order))
        .await?;
    browser.click("li[data-step=shipped] a").await?;
    browser.screenshot("shipment").await?;
    browser.open(flow.links.of(&SHIPPING_SERVICE)).await?;
    browser.screenshot("shipments").await?;
    browser.open(&flow.order("/")).await?;
    ensure!(browser.text("#orders").await?.contains("Ada Lovelace"));
    browser.screenshot("orders").await?;
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_form_shows_the_apis_field_errors_beside_the_fields_and_writes_nothing()
-> anyhow::Result<()> {
    let flow = Flow::order_service_only().await?;
    let browser = Browser::start().await?;
    browser.open(&flow.order("/new")).await?;
    fill_order_form(&browser, "Ada Lovelace").await?;
    browser.fill("customer.email", "not-an-email").await?;
    browser.fill("lines[0].quantity", "0").await?;
    browser.fill("lines[1].sku", "IPOD-NANO").await?;
    browser.fill("billing_address.country", "Germany").await?;
    browser.click("#place").await?;
    browser.wait_for("the field errors", "#form-errors").await?;
    browser.screenshot("order-form-errors").await?;

    // The same order sent to the JSON API: its messages are the page's.
    let api = reqwest::Client::new()
        .post(flow.order("/orders"))
        .json(&json!({
            "customer": { "name": "Ada Lovelace", "email": "not-an-email" },
            "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "Germany" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "currency": "EUR",
            "lines": [
                { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 0, "unit_price_cents": 14900 },
                { "sku": "IPOD-NANO", "name": "Leather case", "quantity": 1, "unit_price_cents": 1999 }
            ]
        }))
        .send()
        .await?;
    ensure!(api.status() == StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = api.json().await?;
    let errors = problem["errors"].as_array().context("errors")?;
    ensure!(errors.len() == 4, "{problem}");
    for error in errors {
        let field = error["field"].as_str().context("field")?;
        let shown = browser
            .text(&format!("[data-error-for=\"{field}\"]"))
            .await?;
        ensure!(
            error["message"] == json!(shown),
            "{field}: the page says {shown:?}, the API {}",
            error["message"]
        );
        ensure!(
            browser
                .count(&format!("input[name=\"{field}\"].invalid"))
                .await?
                == 1,
            "{field} is not marked beside its input"
        );
    }
    // What was typed is still there, to be corrected.
    let typed = browser
        .script(
            "return document.querySelector('[name=\"customer.email\"]').value;",
            vec![],
        )
        .await?;
    ensure!(typed == json!("not-an-email"));
    ensure!(flow.written().await? == (0, 0, 0), "nothing written");
    browser.close().await
}

/// The message beside `field`'s input, once the form came back with errors.
async fn error_beside(browser: &Browser, field: &str) -> anyhow::Result<String> {
    browser.wait_for("the field errors", "#form-errors").await?;
    ensure!(
        browser
            .count(&format!("input[name=\"{field}\"].invalid"))
            .await?
            == 1,
        "{field} is not marked"
    );
    browser.text(&format!("[data-error-for=\"{field}\"]")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_takes_prices_in_the_currencys_units_and_every_page_shows_them_so()
-> anyhow::Result<()> {
    let mut flow = Flow::order_service_only().await?;
    let browser = Browser::start().await?;
    browser.open(&flow.order("/new")).await?;
    fill_order_form(&browser, "Kenji Sato").await?;

    // A tenth of a cent is no price in euros...
    browser.fill("lines[0].unit_price", "19.999").await?;
    browser.click("#place").await?;
    let shown = error_beside(&browser, "lines[0].unit_price").await?;
    ensure!(shown == "EUR has 2 decimal places; 19.999 has 3", "{shown}");
    // ...and half a yen none in yen.
    browser.fill("currency", "JPY").await?;
    browser.fill("lines[0].unit_price", "19.5").await?;
    browser.click("#place").await?;
    let shown = error_beside(&browser, "lines[0].unit_price").await?;
    ensure!(
        shown == "JPY has no minor unit: type a whole amount; 19.5 has 1",
        "{shown}"
    );
    ensure!(flow.written().await? == (0, 0, 0), "nothing written");

    // Whole yen are placed as they are: the API's minor unit is the yen.
    browser.fill("lines[0].unit_price", "1999").await?;
    browser.fill("lines[1].unit_price", "500").await?;
    browser.click("#place").await?;
    browser.wait_for("the order page", "#journey").await?;
    let id = order_id_of_page(&browser).await?;
    let order: Value = reqwest::get(flow.order(&format!("/orders/{id}")))
        .await?
        .json()
        .await?;
    ensure!(
        order["lines"][0]["unit_price_cents"] == json!(1999) && order["total_cents"] == json!(4498),
        "{order}"
    );
    let page = browser.text("main").await?;
    for amount in ["JPY 1,999", "JPY 500", "JPY 3,998", "JPY 4,498"] {
        ensure!(
            page.contains(amount),
            "{amount} not on the order page: {page}"
        );
    }
    browser.open(&flow.order("/")).await?;
    ensure!(browser.text("#orders").await?.contains("JPY 4,498"));

    flow.start_consumers().await?;
    browser
        .open(&format!("{}/order/{id}", flow.links.order))
        .await?;
    browser
        .wait_for(
            "the journey to reach invoiced",
            "li.done[data-step=invoiced]",
        )
        .await?;
    browser.click("li[data-step=invoiced] a").await?;
    let invoice = browser.text("main").await?;
    for amount in ["JPY 1,999", "JPY 3,998", "JPY 4,498"] {
        ensure!(
            invoice.contains(amount),
            "{amount} not on the invoice: {invoice}"
        );
    }
    browser.open(flow.links.of(&INVOICING_SERVICE)).await?;
    ensure!(browser.text("main").await?.contains("JPY 4,498"));
    browser.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_sent_twice_places_one_order() -> anyhow::Result<()> {
    let flow = Flow::order_service_only().await?;
    let browser = Browser::start().await?;
    browser.open(&flow.order("/new")).await?;
    fill_order_form(&browser, "Double Clicker").await?;
    // Two submissions of the same form racing each other (what a double
    // click sends), then the form itself once more (a third press).
    let answers = browser
        .client()
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const form = document.querySelector('form.order');
             const send = () => fetch(form.getAttribute('action'), { method: 'POST',
                 body: new URLSearchParams(new FormData(form, document.getElementById('place'))) });
             Promise.all([send(), send()]).then(rs => done(rs.map(r => r.url)), e => done(String(e)));",
            vec![],
        )
        .await?;
    let urls: Vec<String> = serde_json::from_value(answers.clone()).context(answers.to_string())?;
    ensure!(
        urls.len() == 2 && urls[0].split('?').next() == urls[1].split('?').next(),
        "both answers lead to one order: {urls:?}"
    );
    browser.click("#place").await?;
    browser.wait_for("the order page", "#journey").await?;
    let id = order_id_of_page(&browser).await?;
    for url in &urls {
        ensure!(
            url.contains(&format!("/order/{id}")),
            "{url} is not order {id}"
        );
    }
    browser
        .wait_for("the note that it was sent before", "#resent")
        .await?;
    browser.screenshot("order-resent").await?;
    // A reload of the order page is a GET: still one order.
    browser.client().refresh().await?;
    let (orders, _, keys) = flow.written().await?;
    ensure!((orders, keys) == (1, 1), "{orders} orders, {keys} keys");
    browser.close().await
}
