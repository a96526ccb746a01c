//! `cargo xtask demo`: the whole flow on this machine, shown with three orders.
//!
//! The demo starts what is missing (Kafka, PostgreSQL, the three services),
//! places three varied orders through the order API, waits until invoicing
//! and shipping have each recorded every one, and prints what each side made
//! of an order next to each other: the invoice has the customer's e-mail, the
//! billing address and prices; the shipment has the recipient, the shipping
//! address and the packing list, and nothing else. Then it cancels one order
//! and shows both sides following, prints the requests to try next, and keeps
//! the stack up until Ctrl-C (or returns at once with `--no-wait`).
//!
//! Every wait is a poll against a deadline on what the services answer; none
//! is a fixed sleep.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::interrupts::Interrupts;
use super::stack::report_services;
use crate::infra::{DevInfra, Running, UpReport};
use crate::process::Signal;
use crate::stack::{ApiClient, Profile, Service, ServiceProcess, Stack, StackError, error_chain};
use crate::wait::{self, Probe};
use crate::{InfraError, Startup};

/// How long invoicing and shipping may take to record an order or a cancellation.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

/// How often their APIs are asked while waiting.
const RECORD_POLL: Duration = Duration::from_millis(200);

/// How `cargo xtask demo` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoOptions {
    /// Return after the walkthrough and leave the stack running.
    pub no_wait: bool,
    /// The profile the services are built with.
    pub profile: Profile,
}

/// Brings the stack up, walks three orders through it and prints what each
/// service recorded; then waits for Ctrl-C and stops what it started, or
/// with `no_wait` returns and leaves everything running.
pub async fn demo(options: DemoOptions) -> Result<(), StackError> {
    let mut interrupts = Interrupts::install()?;
    let infra = DevInfra::from_env()?;
    let settings = infra.settings(1)?;
    let stack = Stack::new(&infra, &settings)?.with_profile(options.profile);
    let before = Before {
        infra: infra.running()?,
        services: stack
            .running()?
            .iter()
            .map(|p| p.name().to_owned())
            .collect(),
    };

    // A startup is not cancelled half-way (a server could come up after we
    // looked): an interrupt waits for the step to finish, then stops what it started.
    let (report, signal) = uninterrupted(infra.up(1), &mut interrupts).await;
    if let Some(signal) = signal {
        stop_what_we_started(&infra, &stack, &before).await?;
        return Err(InfraError::Interrupted(signal.name()).into());
    }
    let report = report?;
    let (services, signal) = uninterrupted(stack.up(), &mut interrupts).await;
    if let Some(signal) = signal {
        stop_what_we_started(&infra, &stack, &before).await?;
        return Err(InfraError::Interrupted(signal.name()).into());
    }
    let services = services?;
    report_services(&services);
    show(&running_section(&infra, &report, &services)?)?;

    let client = ApiClient::new()?;
    let walkthrough = tokio::select! {
        result = walkthrough(&client, &stack) => result,
        signal = interrupts.recv() => {
            stop_what_we_started(&infra, &stack, &before).await?;
            return Err(InfraError::Interrupted(signal.name()).into());
        }
    };
    if let Err(e) = walkthrough {
        eprintln!(
            "xtask: the demo failed; the stack keeps running so its logs in {} can be read. \
             `cargo xtask down` stops it.",
            stack.dir().display()
        );
        return Err(e);
    }

    if options.no_wait {
        show(&[
            "The stack keeps running in the background; `cargo xtask down` stops it.".to_owned(),
        ])?;
        return Ok(());
    }
    show(&[
        "Running until Ctrl-C; then this demo stops what it started.".to_owned(),
        String::new(),
    ])?;
    let signal = interrupts.recv().await;
    eprintln!("xtask: {} received, stopping", signal.name());
    stop_what_we_started(&infra, &stack, &before).await
}

/// Runs `step` to completion even when a signal arrives meanwhile; returns
/// its result and the signal, if one came.
async fn uninterrupted<T>(
    step: impl Future<Output = T>,
    interrupts: &mut Interrupts,
) -> (T, Option<Signal>) {
    tokio::pin!(step);
    let mut interrupted = None;
    loop {
        tokio::select! {
            result = &mut step => return (result, interrupted),
            signal = interrupts.recv() => {
                eprintln!("xtask: {} received, stopping once this step has finished", signal.name());
                interrupted = Some(signal);
            }
        }
    }
}

/// What ran before the demo started anything: that is left running.
#[derive(Debug)]
struct Before {
    infra: Running,
    services: BTreeSet<String>,
}

async fn stop_what_we_started(
    infra: &DevInfra,
    stack: &Stack,
    before: &Before,
) -> Result<(), StackError> {
    let services = stack
        .stop_where(|p| !before.services.contains(p.name()))
        .await;
    let kafka = if before.infra.kafka {
        Ok(())
    } else {
        infra.stop_kafka().await
    };
    let postgres = if before.infra.postgres {
        Ok(())
    } else {
        infra.stop_postgres().await
    };
    if before.infra.kafka || before.infra.postgres || !before.services.is_empty() {
        eprintln!("xtask: left running what was running before the demo");
    }
    services?;
    kafka.and(postgres)?;
    eprintln!("xtask: stopped");
    Ok(())
}

/// The three orders, one cancellation, and the requests to try next.
async fn walkthrough(client: &ApiClient, stack: &Stack) -> Result<(), StackError> {
    let orders_url = format!("{}/orders", stack.base_url(Service::Order));
    let mut lines = vec![
        format!("== Placing {} orders: POST {orders_url}", SAMPLES.len()),
        String::new(),
    ];
    let mut placed = Vec::new();
    for sample in &SAMPLES {
        let order: PlacedOrder = client.post_json(&orders_url, &sample.request()).await?;
        lines.push(format!(
            "  {}  {:<20} {} line(s)  {} {:>8}  bill to {}, ship to {}",
            order.id,
            sample.customer.0,
            sample.lines.len(),
            order.currency,
            money(order.total_cents),
            sample.billing.city,
            sample.shipping.city,
        ));
        placed.push((order, sample));
    }
    lines.push(String::new());
    show(&lines)?;

    let ids: Vec<String> = placed.iter().map(|(o, _)| o.id.clone()).collect();
    let started = Instant::now();
    let recorded = wait_recorded(client, stack, &ids, |_, _| true).await?;
    let mut lines = vec![
        format!(
            "== What each side recorded (both had all {} orders after {:.1}s)",
            ids.len(),
            started.elapsed().as_secs_f64()
        ),
        String::new(),
    ];
    for ((order, sample), (invoice, shipment)) in placed.iter().zip(&recorded) {
        lines.push(format!(
            "Order {}  ({}, {} {})",
            order.id,
            sample.customer.0,
            order.currency,
            money(order.total_cents)
        ));
        lines.extend(side_by_side(invoice, shipment));
        lines.push(String::new());
    }
    show(&lines)?;

    let (cancelled, sample) = &placed[CANCELLED_SAMPLE];
    let (invoice_before, shipment_before) = &recorded[CANCELLED_SAMPLE];
    let cancel_url = format!("{orders_url}/{}/cancel", cancelled.id);
    let order_after: PlacedOrder = client
        .post_json(
            &cancel_url,
            &json!({ "reason": "the customer changed their mind" }),
        )
        .await?;
    let started = Instant::now();
    let after = wait_recorded(
        client,
        stack,
        std::slice::from_ref(&cancelled.id),
        |invoice, shipment| invoice.status == "cancelled" && shipment.status == "cancelled",
    )
    .await?;
    let (invoice_after, shipment_after) = &after[0];
    show(&[
        format!(
            "== Cancelling the order of {}: POST {cancel_url}",
            sample.customer.0
        ),
        String::new(),
        format!(
            "  order-service      order     {:<9} -> {}",
            cancelled.status, order_after.status
        ),
        format!(
            "  invoicing-service  invoice   {:<9} -> {}",
            invoice_before.status, invoice_after.status
        ),
        format!(
            "  shipping-service   shipment  {:<9} -> {}",
            shipment_before.status, shipment_after.status
        ),
        format!(
            "  (both sides had the cancellation after {:.1}s)",
            started.elapsed().as_secs_f64()
        ),
        String::new(),
    ])?;

    let (first, _) = &placed[0];
    show(&try_next(stack, &first.id))
}

/// Polls invoicing and shipping until each has recorded every order in `ids`
/// and `done` holds for each pair; returns the pairs in `ids` order.
async fn wait_recorded(
    client: &ApiClient,
    stack: &Stack,
    ids: &[String],
    done: impl Fn(&Invoice, &Shipment) -> bool,
) -> Result<Vec<(Invoice, Shipment)>, StackError> {
    let invoices_url = format!("{}/invoices", stack.base_url(Service::Invoicing));
    let shipments_url = format!("{}/shipments", stack.base_url(Service::Shipping));
    let done = &done;
    let (invoices_url, shipments_url) = (&invoices_url, &shipments_url);
    let found = wait::until(
        "invoicing and shipping to record the orders",
        RECORD_TIMEOUT,
        RECORD_POLL,
        None,
        move || async move {
            let mut pairs = Vec::new();
            let mut waiting = Vec::new();
            for id in ids {
                let invoice_url = format!("{invoices_url}?order_id={id}");
                let shipment_url = format!("{shipments_url}?order_id={id}");
                let invoice = first::<Invoice>(client, &invoice_url).await;
                let shipment = first::<Shipment>(client, &shipment_url).await;
                match (invoice, shipment) {
                    (Ok(Some(invoice)), Ok(Some(shipment))) if done(&invoice, &shipment) => {
                        pairs.push((invoice, shipment));
                    }
                    (Err(e), _) | (_, Err(e)) => return Probe::NotYet(error_chain(&e)),
                    (invoice, shipment) => waiting.push(format!(
                        "order {id}: invoice {}, shipment {}",
                        describe(&invoice.ok().flatten().map(|i| i.status)),
                        describe(&shipment.ok().flatten().map(|s| s.status)),
                    )),
                }
            }
            if waiting.is_empty() {
                Probe::Ready(pairs)
            } else {
                Probe::NotYet(waiting.join("; "))
            }
        },
    )
    .await?;
    Ok(found)
}

fn describe(status: &Option<String>) -> &str {
    status.as_deref().unwrap_or("not recorded yet")
}

/// The first item of a list, `None` while it is empty.
async fn first<T: serde::de::DeserializeOwned>(
    client: &ApiClient,
    url: &str,
) -> Result<Option<T>, StackError> {
    let page: Page<T> = client.get_json(url).await?;
    Ok(page.items.into_iter().next())
}

/// Prints `lines` on stdout.
fn show(lines: &[String]) -> Result<(), StackError> {
    let mut out = std::io::stdout().lock();
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e).into())
}

/// What runs, where, and the settings to connect with.
fn running_section(
    infra: &DevInfra,
    report: &UpReport,
    services: &[ServiceProcess],
) -> Result<Vec<String>, StackError> {
    let mut lines = vec![
        "== Running (`cargo xtask down` stops everything)".to_owned(),
        String::new(),
    ];
    for component in infra.status()? {
        let label = if component.name.starts_with("kafka") {
            format!("{} (Apache Kafka {})", component.name, report.kafka_version)
        } else {
            format!("{} (PostgreSQL)", component.name)
        };
        lines.push(format!(
            "  {label:<34} {:<24} log {}",
            component.address,
            component.log.display()
        ));
    }
    for service in services {
        let how = match service.startup() {
            Startup::Started => "",
            Startup::AlreadyRunning => " (was running)",
        };
        lines.push(format!(
            "  {:<34} {:<24} log {}",
            format!("{}{how}", service.name()),
            service.base_url(),
            service.log_file().display()
        ));
    }
    lines.push(String::new());
    lines.extend(
        report
            .settings
            .env_vars()
            .into_iter()
            .map(|(name, value)| format!("  {name}={value}")),
    );
    lines.push(String::new());
    Ok(lines)
}

/// The invoice and the shipment of one order as a two-column table.
fn side_by_side(invoice: &Invoice, shipment: &Shipment) -> Vec<String> {
    let mut rows: Vec<(String, String)> = vec![
        (
            "INVOICE    (invoicing-service)".into(),
            "SHIPMENT   (shipping-service)".into(),
        ),
        (
            cell("status", &invoice.status),
            cell("status", &shipment.status),
        ),
        (
            cell("customer", &invoice.customer.name),
            cell("recipient", &shipment.recipient.name),
        ),
        (cell("email", &invoice.customer.email), String::new()),
        (
            cell("bill to", &invoice.billing_address.street),
            cell("ship to", &shipment.shipping_address.street),
        ),
        (
            cell("", &invoice.billing_address.locality()),
            cell("", &shipment.shipping_address.locality()),
        ),
    ];
    let name_width = invoice
        .lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    let priced: Vec<String> = invoice
        .lines
        .iter()
        .map(|l| {
            format!(
                "{} x {:<name_width$} {:>8} {:>9}",
                l.quantity,
                l.name,
                money(l.unit_price_cents),
                money(l.line_total_cents)
            )
        })
        .collect();
    let packed: Vec<String> = shipment
        .lines
        .iter()
        .map(|l| format!("{} x {}  [{}]", l.quantity, l.name, l.sku))
        .collect();
    for i in 0..priced.len().max(packed.len()) {
        let label = if i == 0 { "lines" } else { "" };
        rows.push((
            priced.get(i).map_or_else(String::new, |l| cell(label, l)),
            packed.get(i).map_or_else(String::new, |l| cell(label, l)),
        ));
    }
    rows.push((
        cell(
            "total",
            &format!("{} {}", invoice.currency, money(invoice.total_cents)),
        ),
        "(no prices, no e-mail, no billing address)".into(),
    ));

    let width = rows
        .iter()
        .map(|(left, _)| left.chars().count())
        .max()
        .unwrap_or(0);
    let right_width = rows
        .iter()
        .map(|(_, right)| right.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::with_capacity(rows.len() + 1);
    for (i, (left, right)) in rows.into_iter().enumerate() {
        lines.push(format!("  {left:<width$} | {right}").trim_end().to_owned());
        if i == 0 {
            lines.push(format!(
                "  {}-+-{}",
                "-".repeat(width),
                "-".repeat(right_width)
            ));
        }
    }
    lines
}

fn cell(label: &str, value: &str) -> String {
    format!("{label:<11}{value}")
}

/// Cents as `1234.50`.
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// The requests to try next, with this run's URLs and a real order id.
fn try_next(stack: &Stack, order_id: &str) -> Vec<String> {
    let orders = stack.base_url(Service::Order);
    let invoicing = stack.base_url(Service::Invoicing);
    let shipping = stack.base_url(Service::Shipping);
    // Strings and integers only: serialising cannot fail.
    let body = serde_json::to_string(&CURL_SAMPLE.request()).unwrap_or_default();
    vec![
        "== Try it yourself".to_owned(),
        String::new(),
        "  # place an order".to_owned(),
        format!("  curl -sS -X POST {orders}/orders -H 'content-type: application/json' \\"),
        format!("    -d '{body}'"),
        "  # read an order back, list the newest orders".to_owned(),
        format!("  curl -sS {orders}/orders/{order_id}"),
        format!("  curl -sS '{orders}/orders?limit=10'"),
        "  # cancel it".to_owned(),
        format!("  curl -sS -X POST {orders}/orders/{order_id}/cancel \\"),
        "    -H 'content-type: application/json' -d '{\"reason\": \"changed my mind\"}'".to_owned(),
        "  # what invoicing and shipping made of it".to_owned(),
        format!("  curl -sS '{invoicing}/invoices?order_id={order_id}'"),
        format!("  curl -sS '{shipping}/shipments?order_id={order_id}'"),
        "  # counters: orders, relay, consumers (inbox_consumer_lag, ...)".to_owned(),
        format!("  curl -sS {orders}/metrics"),
        format!("  curl -sS {invoicing}/metrics"),
        String::new(),
    ]
}

/// An order as order-service answers (only what the demo shows).
#[derive(Debug, Clone, Deserialize)]
struct PlacedOrder {
    id: String,
    status: String,
    currency: String,
    total_cents: i64,
}

/// A page of a list.
#[derive(Debug, Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

/// An invoice as invoicing-service answers.
#[derive(Debug, Clone, Deserialize)]
struct Invoice {
    status: String,
    customer: Customer,
    billing_address: Address,
    currency: String,
    lines: Vec<InvoiceLine>,
    total_cents: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct Customer {
    name: String,
    email: String,
}

#[derive(Debug, Clone, Deserialize)]
struct InvoiceLine {
    name: String,
    quantity: i64,
    unit_price_cents: i64,
    line_total_cents: i64,
}

/// A shipment as shipping-service answers.
#[derive(Debug, Clone, Deserialize)]
struct Shipment {
    status: String,
    recipient: Recipient,
    shipping_address: Address,
    lines: Vec<ShipmentLine>,
}

#[derive(Debug, Clone, Deserialize)]
struct Recipient {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ShipmentLine {
    sku: String,
    name: String,
    quantity: i64,
}

#[derive(Debug, Clone, Deserialize)]
struct Address {
    street: String,
    zip: String,
    city: String,
    country: String,
}

impl Address {
    fn locality(&self) -> String {
        format!("{} {}, {}", self.zip, self.city, self.country)
    }
}

/// A sample order: customer (name, e-mail), addresses, currency, lines (sku, name, quantity, unit price in cents).
struct Sample {
    customer: (&'static str, &'static str),
    billing: SampleAddress,
    shipping: SampleAddress,
    currency: &'static str,
    lines: &'static [(&'static str, &'static str, u32, u64)],
}

struct SampleAddress {
    street: &'static str,
    zip: &'static str,
    city: &'static str,
    country: &'static str,
}

impl Sample {
    /// The body of `POST /orders`, fields in the API's order.
    fn request(&self) -> OrderRequest<'_> {
        let address = |a: &SampleAddress| AddressRequest {
            street: a.street,
            zip: a.zip,
            city: a.city,
            country: a.country,
        };
        OrderRequest {
            customer: CustomerRequest {
                name: self.customer.0,
                email: self.customer.1,
            },
            billing_address: address(&self.billing),
            shipping_address: address(&self.shipping),
            currency: self.currency,
            lines: self
                .lines
                .iter()
                .map(|&(sku, name, quantity, unit_price_cents)| LineRequest {
                    sku,
                    name,
                    quantity,
                    unit_price_cents,
                })
                .collect(),
        }
    }
}

/// The body of `POST /orders`.
#[derive(Debug, Serialize)]
struct OrderRequest<'a> {
    customer: CustomerRequest<'a>,
    billing_address: AddressRequest<'a>,
    shipping_address: AddressRequest<'a>,
    currency: &'a str,
    lines: Vec<LineRequest<'a>>,
}

#[derive(Debug, Serialize)]
struct CustomerRequest<'a> {
    name: &'a str,
    email: &'a str,
}

#[derive(Debug, Serialize)]
struct AddressRequest<'a> {
    street: &'a str,
    zip: &'a str,
    city: &'a str,
    country: &'a str,
}

#[derive(Debug, Serialize)]
struct LineRequest<'a> {
    sku: &'a str,
    name: &'a str,
    quantity: u32,
    unit_price_cents: u64,
}

/// Which sample order the demo cancels.
const CANCELLED_SAMPLE: usize = 1;

/// Three customers, each billed at one address and shipped to another.
const SAMPLES: [Sample; 3] = [
    Sample {
        customer: ("Ada Lovelace", "ada@example.com"),
        billing: SampleAddress {
            street: "12 St James's Square",
            zip: "SW1Y 4LB",
            city: "London",
            country: "GB",
        },
        shipping: SampleAddress {
            street: "Ockham Park",
            zip: "KT24 6PD",
            city: "Ockham",
            country: "GB",
        },
        currency: "GBP",
        lines: &[
            ("NB-A5-DOT", "Notebook A5, dotted", 3, 1250),
            ("PEN-FOUNT-F", "Fountain pen, fine", 1, 4900),
            ("INK-BLUE-50", "Blue ink, 50 ml", 2, 850),
        ],
    },
    Sample {
        customer: ("Grace Hopper", "grace@example.org"),
        billing: SampleAddress {
            street: "1000 Navy Pentagon",
            zip: "20350",
            city: "Washington",
            country: "US",
        },
        shipping: SampleAddress {
            street: "2 Harvard Way",
            zip: "02138",
            city: "Cambridge",
            country: "US",
        },
        currency: "USD",
        lines: &[
            ("KB-MECH-US", "Mechanical keyboard", 1, 12900),
            ("CBL-USBC-2M", "USB-C cable, 2 m", 2, 1500),
        ],
    },
    Sample {
        customer: ("Emmy Noether", "emmy@example.de"),
        billing: SampleAddress {
            street: "Bunsenstrasse 3-5",
            zip: "37073",
            city: "Goettingen",
            country: "DE",
        },
        shipping: SampleAddress {
            street: "Hauptstrasse 12",
            zip: "91054",
            city: "Erlangen",
            country: "DE",
        },
        currency: "EUR",
        lines: &[
            ("BK-ALGEBRA", "Algebra, 2nd ed.", 1, 3900),
            ("LAMP-DESK", "Desk lamp", 1, 5900),
            ("BULB-E27", "LED bulb E27", 4, 450),
            ("CHALK-W-100", "White chalk, 100", 1, 790),
        ],
    },
];

/// The order the printed `curl` places (no quote characters, for the shell).
const CURL_SAMPLE: Sample = Sample {
    customer: ("Alan Turing", "alan@example.com"),
    billing: SampleAddress {
        street: "Kings Parade 1",
        zip: "CB2 1ST",
        city: "Cambridge",
        country: "GB",
    },
    shipping: SampleAddress {
        street: "Bletchley Park",
        zip: "MK3 6EB",
        city: "Milton Keynes",
        country: "GB",
    },
    currency: "GBP",
    lines: &[("TEA-EARL-250", "Earl Grey, 250 g", 2, 675)],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn address(street: &str, city: &str) -> Address {
        Address {
            street: street.into(),
            zip: "1000".into(),
            city: city.into(),
            country: "AT".into(),
        }
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(123_450), "1234.50");
        assert_eq!(money(-199), "-1.99");
    }

    #[test]
    fn invoice_and_shipment_sit_side_by_side() {
        let invoice = Invoice {
            status: "open".into(),
            customer: Customer {
                name: "Lise Meitner".into(),
                email: "lise@example.at".into(),
            },
            billing_address: address("Boltzmanngasse 3", "Wien"),
            currency: "EUR".into(),
            lines: vec![InvoiceLine {
                name: "Geiger counter".into(),
                quantity: 2,
                unit_price_cents: 19_900,
                line_total_cents: 39_800,
            }],
            total_cents: 39_800,
        };
        let shipment = Shipment {
            status: "pending".into(),
            recipient: Recipient {
                name: "Lise Meitner".into(),
            },
            shipping_address: address("Kaiser-Wilhelm-Platz 1", "Berlin"),
            lines: vec![ShipmentLine {
                sku: "GC-2".into(),
                name: "Geiger counter".into(),
                quantity: 2,
            }],
        };
        let lines = side_by_side(&invoice, &shipment);
        let text = lines.join("\n");
        let bar = lines[0].find(" | ").expect("two columns");
        assert!(
            lines
                .iter()
                .filter(|l| l.contains(" | "))
                .all(|l| l.find(" | ") == Some(bar)),
            "{text}"
        );
        let row = |label: &str| {
            lines
                .iter()
                .find(|l| l.trim_start().starts_with(label))
                .cloned()
                .unwrap_or_default()
        };
        assert!(
            row("customer").ends_with("recipient  Lise Meitner"),
            "{text}"
        );
        assert!(row("bill to").contains("Boltzmanngasse 3"), "{text}");
        assert!(
            row("bill to").ends_with("ship to    Kaiser-Wilhelm-Platz 1"),
            "{text}"
        );
        assert!(row("lines").contains("199.00"), "{text}");
        assert!(
            row("lines").ends_with("2 x Geiger counter  [GC-2]"),
            "{text}"
        );
        assert!(row("total").contains("EUR 398.00"), "{text}");
        // Prices and the e-mail only ever appear on the invoice's side.
        for line in &lines {
            if let Some((_, right)) = line.split_once(" | ") {
                assert!(!right.contains("199.00") && !right.contains('@'), "{line}");
            }
        }
    }

    #[test]
    fn the_samples_vary_customers_addresses_and_lines() {
        let customers: BTreeSet<&str> = SAMPLES.iter().map(|s| s.customer.0).collect();
        assert_eq!(customers.len(), SAMPLES.len());
        for sample in SAMPLES.iter().chain([&CURL_SAMPLE]) {
            assert_ne!(sample.billing.street, sample.shipping.street);
            assert!(!sample.lines.is_empty());
        }
        assert!(SAMPLES.iter().all(|s| s.lines.len() >= 2));
        let curl = serde_json::to_string(&CURL_SAMPLE.request()).expect("json");
        assert!(!curl.contains('\''), "{curl}");
    }
}
