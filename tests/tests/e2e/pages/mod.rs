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
use e2e::TestInfra;
use e2e::browser::Browser;
use e2e::services::{ServiceUnderTest, consumer_config, fresh_group};
use invoicing_service::Invoicing;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use platform_web::web::PageLinks;
use serde_json::Value;
use shipping_service::Shipping;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A name no page may run as markup.
pub(super) const HOSTILE_NAME: &str =
    r#"<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'"> Eve"#;

/// The three services on their own databases and topic, on ports chosen
/// up front so that every page links to the others.
pub(super) struct Flow {
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

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

impl Flow {
    /// order-service alone (the consumers start with [`Flow::start_consumers`]).
    pub(super) async fn order_service_only() -> anyhow::Result<Self> {
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
    pub(super) async fn start() -> anyhow::Result<Self> {
        let mut flow = Self::order_service_only().await?;
        flow.start_consumers().await?;
        Ok(flow)
    }

    pub(super) async fn start_consumers(&mut self) -> anyhow::Result<()> {
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
