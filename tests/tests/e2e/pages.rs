//! The web pages in a real browser (headless Chromium over WebDriver),
//! against the real stack: order-service with its relay, Kafka, invoicing
//! and shipping, each on its own fresh database. Every test takes
//! screenshots of the pages it visits (`target/screenshots`, or
//! `SCREENSHOTS_DIR=docs/screenshots` to refresh the committed set).
//!
//! And one measurement without a browser: the order list at a million orders.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use e2e::TestInfra;
use e2e::browser::Browser;
use e2e::services::{EventProducer, ServiceUnderTest, consumer_config, fresh_group, wait_until};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use platform_web::web::PageLinks;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shipping_service::Shipping;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A name no page may run as markup.
const HOSTILE_NAME: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"> Eve"#;

/// The three services on their own databases and topic, on ports chosen
/// up front so that every page links to the others.
struct Flow {
    infra: TestInfra,
    topic: String,
    links: PageLinks,
    orders: PgPool,
    invoicing_url: String,
    shipping_url: String,
    invoicing: Option<ServiceUnderTest>,
    shipping: Option<ServiceUnderTest>,
    _order_task: JoinHandle<Result<(), order_service::RunError>>,
    _stop_order: DropGuard,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl Flow {
    /// order-service alone (the consumers start with [`Flow::start_consumers`]).
    async fn order_service_only() -> anyhow::Result<Self> {
        e2e::services::init_logs();
        let infra = TestInfra::acquire().await?;
        let topic = infra.fresh_topic(3).await?;
        let ports = devinfra::process::free_ports(3)?;
        let links = PageLinks::local()
            .with(&ORDER_SERVICE, format!("http://127.0.0.1:{}", ports[0]))
            .with(&INVOICING_SERVICE, format!("http://127.0.0.1:{}", ports[1]))
            .with(&SHIPPING_SERVICE, format!("http://127.0.0.1:{}", ports[2]));
        let (orders_url, orders) = infra.fresh_database(&ORDER_SERVICE).await?;
        let (invoicing_url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
        let (shipping_url, _) = infra.fresh_database(&SHIPPING_SERVICE).await?;
        let mut config = order_service::Config::for_flow(
            orders_url,
            e2e::admin_kafka(infra.kafka_bootstrap_servers(), &topic),
        );
        config.http.addr = addr(ports[0]);
        config.links = links.clone();
        let app = order_service::build(config).await?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(stop.clone()));
        Ok(Flow {
            infra,
            topic,
            links,
            orders,
            invoicing_url,
            shipping_url,
            invoicing: None,
            shipping: None,
            _order_task: task,
            _stop_order: stop.drop_guard(),
        })
    }

    /// The whole flow.
    async fn start() -> anyhow::Result<Self> {
        let mut flow = Self::order_service_only().await?;
        flow.start_consumers().await?;
        Ok(flow)
    }

    async fn start_consumers(&mut self) -> anyhow::Result<()> {
        let port = |url: &str| -> anyhow::Result<u16> {
            Ok(url.rsplit(':').next().context("a port")?.parse()?)
        };
        let mut invoicing = consumer_config::<Invoicing>(
            &self.infra,
            &self.invoicing_url,
            &self.topic,
            &fresh_group("invoicing"),
        );
        invoicing.http.addr = addr(port(self.links.of(&INVOICING_SERVICE))?);
        invoicing.links = self.links.clone();
        let mut shipping = consumer_config::<Shipping>(
            &self.infra,
            &self.shipping_url,
            &self.topic,
            &fresh_group("shipping"),
        );
        shipping.http.addr = addr(port(self.links.of(&SHIPPING_SERVICE))?);
        shipping.links = self.links.clone();
        self.invoicing = Some(ServiceUnderTest::start::<Invoicing>(invoicing).await?);
        self.shipping = Some(ServiceUnderTest::start::<Shipping>(shipping).await?);
        Ok(())
    }

    fn order(&self, path: &str) -> String {
        format!("{}{path}", self.links.order)
    }

    /// Rows in orders, outbox (published or not) and idempotency_keys.
    async fn written(&self) -> anyhow::Result<(i64, i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM orders),
                    (SELECT count(*) FROM outbox) + (SELECT count(*) FROM published_events),
                    (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.orders)
        .await?)
    }

    /// The one item the consumer's API lists for `order_id`, once there is one.
    async fn effect(&self, collection: &str, order_id: &str) -> anyhow::Result<Option<Value>> {
        let service = match collection {
            "invoices" => self.invoicing.as_ref(),
            _ => self.shipping.as_ref(),
        }
        .context("the consumers run")?;
        let page = service
            .get_ok(&format!("/{collection}?order_id={order_id}"))
            .await?;
        Ok(page["items"]
            .as_array()
            .and_then(|items| items.first())
            .cloned())
    }
}

/// Fills the new-order form (two lines, separate shipping address) as a person would.
async fn fill_order_form(browser: &Browser, name: &str) -> anyhow::Result<()> {
    browser.fill("customer.name", name).await?;
    browser.fill("customer.email", "ada@example.com").await?;
    browser
        .fill("billing_address.street", "1 Analytical Way")
        .await?;
    browser.fill("billing_address.zip", "10115").await?;
    browser.fill("billing_address.city", "Berlin").await?;
    browser.fill("billing_address.country", "DE").await?;
    browser
        .fill("shipping_address.street", "2 Engine Road")
        .await?;
    browser.fill("shipping_address.zip", "80331").await?;
    browser.fill("shipping_address.city", "Munich").await?;
    browser.fill("shipping_address.country", "DE").await?;
    browser.fill("lines[0].sku", "IPOD-NANO").await?;
    browser.fill("lines[0].name", "iPod nano").await?;
    browser.fill("lines[0].quantity", "2").await?;
    browser.fill("lines[0].unit_price", "149").await?;
    // A second line, added on the page (a submit button: no JavaScript needed).
    browser.click("button[value=add-line]").await?;
    browser.fill("lines[1].sku", "CASE-BLK").await?;
    browser.fill("lines[1].name", "Leather case").await?;
    browser.fill("lines[1].quantity", "1").await?;
    browser.fill("lines[1].unit_price", "19.99").await?;
    Ok(())
}

/// The order id of the order page the browser shows.
async fn order_id_of_page(browser: &Browser) -> anyhow::Result<String> {
    let url = browser.url().await?;
    let id = url
        .split("/order/")
        .nth(1)
        .and_then(|rest| rest.split(['?', '/']).next())
        .with_context(|| format!("not an order page: {url}"))?;
    Ok(id.to_owned())
}

/// Places an order through the form and returns its id (on its page).
async fn place_through_the_form(
    flow: &Flow,
    browser: &Browser,
    name: &str,
) -> anyhow::Result<String> {
    browser.open(&flow.order("/new")).await?;
    fill_order_form(browser, name).await?;
    browser.click("#place").await?;
    browser.wait_for("the order page", "#journey").await?;
    order_id_of_page(browser).await
}

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
    let invoicing = flow.invoicing.as_ref().context("invoicing runs")?;
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

/// The orders the million-order measurement seeds.
const MILLION: i64 = 1_000_000;

/// The median time of `runs` answers to `GET url`, each checked to be 200
/// and to hold `expect`.
async fn median_answer(url: &str, expect: &str, runs: usize) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "{url}: {}",
            response.status()
        );
        let body = response.text().await?;
        times.push(started.elapsed());
        ensure!(body.contains(expect), "{url} does not show {expect:?}");
    }
    times.sort_unstable();
    Ok(times[runs / 2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_list_answers_fast_with_a_million_orders() -> anyhow::Result<()> {
    let flow = Flow::order_service_only().await?;
    let seeding = Instant::now();
    // Set-based: one statement per table. Ids are UUIDv7 built from each
    // order's placed_at (one millisecond apart), as the service makes them.
    sqlx::query(
        "INSERT INTO orders (id, status, customer_name, customer_email,
             billing_street, billing_zip, billing_city, billing_country,
             shipping_street, shipping_zip, shipping_city, shipping_country,
             currency, total_cents, placed_at)
         SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::int8), 12, '0') || '7'
                 || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
                'placed', 'Customer ' || n, 'c' || n || '@example.com',
                n || ' Ledger Lane', '10115', 'Berlin', 'DE',
                n || ' Dock Road', '20457', 'Hamburg', 'DE', 'EUR', 2999, t
         FROM (SELECT n, md5(n::text) AS h,
                      date_trunc('milliseconds', now()) - make_interval(secs => ($1 - n) / 1000.0) AS t
               FROM generate_series(1, $1) AS n) AS s",
    )
    .bind(MILLION)
    .execute(&flow.orders)
    .await?;
    sqlx::query(
        "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
         SELECT id, 0, 'SKU-1', 'Product', 1, 2999, 2999 FROM orders",
    )
    .execute(&flow.orders)
    .await?;
    sqlx::query("ANALYZE orders, order_lines")
        .execute(&flow.orders)
        .await?;
    let seeded = seeding.elapsed();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&flow.orders)
        .await?;
    ensure!(count == MILLION, "{count} orders seeded");

    let middle: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM orders ORDER BY id DESC OFFSET $1 LIMIT 1")
            .bind(MILLION / 2)
            .fetch_one(&flow.orders)
            .await?;
    let newest = format!("Customer {MILLION}");
    let first = median_answer(&flow.order("/"), &newest, 7).await?;
    let deep = median_answer(
        &flow.order(&format!("/?cursor={middle}")),
        &format!("Customer {}", MILLION / 2 - 1),
        7,
    )
    .await?;
    let json = median_answer(&flow.order("/orders?limit=50"), &newest, 7).await?;
    println!(
        "order list with {MILLION} orders (seeded in {seeded:.1?}): first page {first:.1?}, \
         a page half-way down {deep:.1?}, GET /orders?limit=50 {json:.1?} (median of 7, 50 orders a page)"
    );
    for (what, took) in [
        ("first page", first),
        ("deep page", deep),
        ("JSON page", json),
    ] {
        ensure!(took < Duration::from_secs(1), "{what} took {took:?}");
    }
    // A million orders is 400 MB; this test's database need not keep them.
    sqlx::query("TRUNCATE orders, order_lines CASCADE")
        .execute(&flow.orders)
        .await?;
    Ok(())
}
