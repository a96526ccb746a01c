//! The HTTP boundary against other sites' pages, as an attacker meets it
//! (see `platform_web::web::security`): each test here was an attack that
//! succeeded before the boundary existed.
//!
//! - A page of another site (here a `file:` page in headless Chromium)
//!   submits itself as a form aimed at the JSON cancel route; the order
//!   must stay placed, with no `OrderCancelled` committed.
//! - The same cancel as curl sends it: `text/plain`, form-encoded, or JSON
//!   from a foreign origin; refused, the order untouched.
//! - DNS rebinding: every route of every service (pages, API, health,
//!   metrics, OpenAPI, assets) refuses a foreign `Host` with 421, and
//!   answers its own.
//!
//! The hostile corpus (`hostile.rs`) holds the same refusals case by case.

use anyhow::{Context as _, ensure};
use e2e::TestInfra;
use e2e::browser::Browser;
use e2e::services::{ServiceUnderTest, consumer_config, fresh_group, wait_until};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use shipping_service::Shipping;
use uuid::Uuid;

use crate::order_api_client::{OrdersApi, order};

/// Places an order; its id.
async fn placed(api: &OrdersApi) -> anyhow::Result<String> {
    let order = api.place(&order()).await;
    Ok(order["id"].as_str().context("an order id")?.to_owned())
}

/// The order's status and the event types in its outbox rows, oldest first.
async fn state_of(api: &OrdersApi, id: &str) -> anyhow::Result<(String, Vec<String>)> {
    let order: Value = api
        .client
        .get(api.url(&format!("/orders/{id}")))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let events = api
        .outbox_rows(id)
        .await
        .into_iter()
        .map(|row| row.event_type)
        .collect();
    Ok((
        order["status"].as_str().unwrap_or_default().to_owned(),
        events,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_cannot_cancel_an_order_through_the_json_api() -> anyhow::Result<()>
{
    let api = OrdersApi::start().await;
    let id = placed(&api).await?;
    // The attack of issue 22: a form with no fields and `enctype=text/plain`
    // sends an empty body, which the JSON route used to take as "no reason".
    let target = api.url(&format!("/orders/{id}/cancel"));
    let evil = maud::html! {
        html { body onload="document.forms[0].submit()" {
            form method="post" enctype="text/plain" action=(target) {}
        } }
    }
    .into_string();
    let page = std::env::temp_dir().join(format!("cross-site-cancel-{}.html", Uuid::new_v4()));
    std::fs::write(&page, evil).with_context(|| format!("writing {}", page.display()))?;

    let browser = Browser::start().await?;
    browser.open(&format!("file://{}", page.display())).await?;
    wait_until("the form to be sent and answered", || async {
        Ok(browser.url().await? == target
            && browser.script("return document.readyState", vec![]).await? == "complete")
    })
    .await?;
    let answer = browser.text("body").await?;
    browser.screenshot("cross-site-cancel-refused").await?;
    browser.close().await?;
    std::fs::remove_file(&page).ok();

    let (status, events) = state_of(&api, &id).await?;
    ensure!(
        status == "placed" && events == ["OrderPlaced"],
        "another site's page cancelled the order: status {status}, events {events:?}; \
         the browser was answered: {answer}"
    );
    ensure!(
        answer.contains("another site"),
        "not refused as cross-site: {answer}"
    );
    api.stop().await;
    Ok(())
}

/// Request headers, name and value.
type Headers = &'static [(&'static str, &'static str)];

#[tokio::test]
async fn a_cancel_an_html_form_could_send_is_refused_and_the_order_stays_placed()
-> anyhow::Result<()> {
    let api = OrdersApi::start().await;
    let id = placed(&api).await?;
    let url = api.url(&format!("/orders/{id}/cancel"));
    let attempts: [(&str, Headers, StatusCode); 5] = [
        (
            "text/plain from another site, as curl sends it",
            &[
                ("content-type", "text/plain"),
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (
            "text/plain",
            &[("content-type", "text/plain")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form-encoded",
            &[("content-type", "application/x-www-form-urlencoded")],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("no content type", &[], StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            "JSON with a foreign Origin",
            &[
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (what, headers, expected) in attempts {
        let mut request = api.client.post(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(
            status == expected,
            "{what}: {status}, expected {expected}: {body}"
        );
        let (order_status, events) = state_of(&api, &id).await?;
        ensure!(
            order_status == "placed" && events == ["OrderPlaced"],
            "{what} cancelled the order: {order_status}, {events:?}"
        );
    }
    // The API's own way still works: declared JSON, empty body.
    let response = api.cancel(&id, None).await;
    ensure!(response.status() == StatusCode::OK, "{}", response.status());
    let (order_status, events) = state_of(&api, &id).await?;
    ensure!(order_status == "cancelled" && events == ["OrderPlaced", "OrderCancelled"]);
    api.stop().await;
    Ok(())
}

/// A service's routes to try: every operation of its OpenAPI document, and
/// its pages; `{id}` is filled in with an unknown id.
async fn routes_of(
    client: &reqwest::Client,
    base: &str,
    pages: &[(&str, &str)],
) -> anyhow::Result<Vec<(Method, String)>> {
    let document: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut routes = Vec::new();
    for (path, operations) in document["paths"].as_object().context("paths")? {
        for method in operations.as_object().context("operations")?.keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    routes.extend(
        pages
            .iter()
            .chain(&[
                ("GET", platform_web::web::assets::STYLESHEET),
                ("GET", platform_web::web::assets::SCRIPT),
            ])
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned())),
    );
    let id = Uuid::now_v7().to_string();
    routes
        .into_iter()
        .map(|(method, path)| Ok((method.parse()?, path.replace("{id}", &id))))
        .collect()
}

#[tokio::test]
async fn every_route_of_every_service_refuses_a_rebound_host() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let orders = OrdersApi::start().await;
    let topic = infra.fresh_topic(1).await?;
    let (url, _) = infra.fresh_database(&INVOICING_SERVICE).await?;
    let config = consumer_config::<Invoicing>(&infra, &url, &topic, &fresh_group("invoicing"));
    let invoicing = ServiceUnderTest::start::<Invoicing>(config).await?;
    let (url, _) = infra.fresh_database(&SHIPPING_SERVICE).await?;
    let config = consumer_config::<Shipping>(&infra, &url, &topic, &fresh_group("shipping"));
    let shipping = ServiceUnderTest::start::<Shipping>(config).await?;

    let client = reqwest::Client::new();
    let order_pages = [
        ("GET", "/"),
        ("GET", "/new"),
        ("POST", "/new"),
        ("GET", "/order/{id}"),
        ("POST", "/order/{id}/cancel"),
        ("GET", "/order/{id}/journey"),
        ("GET", "/overview"),
        ("GET", "/overview/charts"),
    ];
    let services = [
        ("order-service", orders.base.clone(), &order_pages[..]),
        (
            "invoicing-service",
            invoicing.base_url().to_owned(),
            &[("GET", "/"), ("GET", "/invoice/{id}")][..],
        ),
        (
            "shipping-service",
            shipping.base_url().to_owned(),
            &[("GET", "/"), ("GET", "/shipment/{id}")][..],
        ),
    ];
    let mut failures = Vec::new();
    let mut tried = 0;
    for (name, base, pages) in &services {
        let port = base.rsplit(':').next().context("a port")?;
        let routes = routes_of(&client, base, pages).await?;
        for (method, path) in routes {
            tried += 1;
            for (host, rebound) in [
                (format!("evil.example:{port}"), true),
                (format!("127.0.0.1:{port}"), false),
            ] {
                let mut request = client
                    .request(method.clone(), format!("{base}{path}"))
                    .header("host", &host);
                if method == Method::POST {
                    request = request
                        .header("content-type", "application/json")
                        .body("{}");
                }
                let response = request.send().await?;
                let status = response.status();
                let refused = status == StatusCode::MISDIRECTED_REQUEST;
                if rebound && !refused {
                    let body: String = response.text().await?.chars().take(200).collect();
                    failures.push(format!(
                        "{name} {method} {path} with Host {host}: {status}: {body}"
                    ));
                } else if !rebound && (refused || status == StatusCode::METHOD_NOT_ALLOWED) {
                    failures.push(format!(
                        "{name} {method} {path} under its own name: {status}"
                    ));
                }
            }
        }
    }
    ensure!(tried >= 25, "only {tried} routes tried");
    ensure!(
        failures.is_empty(),
        "{} of {tried} routes answered a rebound name (or refused their own):\n{}",
        failures.len(),
        failures.join("\n")
    );
    ensure!(
        orders.counts().await == [0, 0, 0, 0],
        "the routes tried under their own name wrote nothing"
    );
    invoicing.stop().await?;
    shipping.stop().await?;
    orders.stop().await;
    Ok(())
}
