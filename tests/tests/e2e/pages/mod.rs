//! The web pages in a real browser (headless Chromium over WebDriver),
//! against the real stack: order-service with its relay, Kafka, invoicing
//! and shipping, each on its own fresh database. Every test takes
//! screenshots of the pages it visits (`target/screenshots`, or
//! `SCREENSHOTS_DIR=docs/screenshots` to refresh the committed set).
//!
//! And one measurement without a browser: the order list at a million orders.

mod consumer_pages;
mod order_form;
mod safety;
mod speed;

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use consumer_kit::Consumer;
use e2e::TestInfra;
use e2e::browser::Browser;
use e2e::flow::TestFlow;
use e2e::services::ServiceUnderTest;
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use platform_web::web::PageLinks;
use serde_json::Value;
use shipping_service::Shipping;
use sqlx::PgPool;

/// A name no page may run as markup.
pub(super) const HOSTILE_NAME: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"> Eve"#;

/// The three services on their own databases and topic ([`TestFlow`]), on
/// ports chosen up front so that every page links to the others.
pub(super) struct Flow {
    flow: TestFlow,
    links: PageLinks,
    infra: TestInfra,
    topic: String,
    orders: PgPool,
}

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl Flow {
    /// order-service alone (the consumers start with [`Flow::start_consumers`]).
    pub(super) async fn order_service_only() -> anyhow::Result<Self> {
        let infra = TestInfra::acquire().await?;
        let ports = devinfra::process::free_ports(3)?;
        let links = PageLinks::local()
            .with(&ORDER_SERVICE, format!("http://127.0.0.1:{}", ports[0]))
            .with(&INVOICING_SERVICE, format!("http://127.0.0.1:{}", ports[1]))
            .with(&SHIPPING_SERVICE, format!("http://127.0.0.1:{}", ports[2]));
        let flow = TestFlow::start_with(&infra, 3, |config| {
            config.http.addr = addr(ports[0]);
            config.links = links.clone();
        })
        .await?;
        Ok(Flow {
            topic: flow.topic().to_owned(),
            orders: flow.orders_pool().clone(),
            flow,
            links,
            infra,
        })
    }

    /// The whole flow.
    pub(super) async fn start() -> anyhow::Result<Self> {
        let mut flow = Self::order_service_only().await?;
        flow.start_consumers().await?;
        Ok(flow)
    }

    /// Invoicing and shipping, each on the port its page links name.
    pub(super) async fn start_consumers(&mut self) -> anyhow::Result<()> {
        let port = |url: &str| -> anyhow::Result<u16> {
            Ok(url.rsplit(':').next().context("a port")?.parse()?)
        };
        let links = &self.links;
        let invoicing = addr(port(links.of(&INVOICING_SERVICE))?);
        self.flow
            .add_consumer_with::<Invoicing>(|config| {
                config.http.addr = invoicing;
                config.links = links.clone();
            })
            .await?;
        let shipping = addr(port(links.of(&SHIPPING_SERVICE))?);
        self.flow
            .add_consumer_with::<Shipping>(|config| {
                config.http.addr = shipping;
                config.links = links.clone();
            })
            .await?;
        Ok(())
    }

    /// The running consumer `C`.
    pub(super) fn consumer<C: Consumer>(&self) -> anyhow::Result<&ServiceUnderTest> {
        self.flow.consumer::<C>()
    }

    pub(super) fn order(&self, path: &str) -> String {
        format!("{}{path}", self.links.order)
    }

    /// Rows in orders, outbox (published or not) and idempotency_keys.
    pub(super) async fn written(&self) -> anyhow::Result<(i64, i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM orders),
                    (SELECT count(*) FROM outbox) + (SELECT count(*) FROM published_events),
                    (SELECT count(*) FROM idempotency_keys)",
        )
        .fetch_one(&self.orders)
        .await?)
    }

    /// The one item the consumer's API lists for `order_id`, once there is one.
    pub(super) async fn effect(
        &self,
        collection: &str,
        order_id: &str,
    ) -> anyhow::Result<Option<Value>> {
        let service = match collection {
            "invoices" => self.consumer::<Invoicing>(),
            _ => self.consumer::<Shipping>(),
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
pub(super) async fn fill_order_form(browser: &Browser, name: &str) -> anyhow::Result<()> {
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
pub(super) async fn order_id_of_page(browser: &Browser) -> anyhow::Result<String> {
    let url = browser.url().await?;
    let id = url
        .split("/order/")
        .nth(1)
        .and_then(|rest| rest.split(['?', '/']).next())
        .with_context(|| format!("not an order page: {url}"))?;
    Ok(id.to_owned())
}

/// Places an order through the form and returns its id (on its page).
pub(super) async fn place_through_the_form(
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
