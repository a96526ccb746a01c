//! What the demo prints: the running stack, an invoice and a shipment side
//! by side, amounts, and the requests to try next.

use std::io::Write as _;

use devinfra::infra::{DevInfra, UpReport};
use devinfra::stack::{ServiceProcess, Stack, StackError};
use devinfra::{InfraError, Startup};
use orderflow_client::{Invoice, Shipment};
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use uuid::Uuid;

use crate::samples::CURL_SAMPLE;

/// Prints `lines` on stdout.
pub(crate) fn show(lines: &[String]) -> Result<(), StackError> {
    let mut out = std::io::stdout().lock();
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
        .map_err(|e| InfraError::io("write", "stdout", e).into())
}

/// What runs, where, and the settings to connect with.
pub(crate) fn running_section(
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
pub(crate) fn side_by_side(invoice: &Invoice, shipment: &Shipment) -> Vec<String> {
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
pub(crate) fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

/// The requests to try next, with this run's URLs and a real order id.
pub(crate) fn try_next(stack: &Stack, order_id: Uuid) -> Vec<String> {
    let orders = stack.base_url(ORDER_SERVICE);
    let invoicing = stack.base_url(INVOICING_SERVICE);
    let shipping = stack.base_url(SHIPPING_SERVICE);
    // Strings and integers only: serialising cannot fail.
    let body = serde_json::to_string(&CURL_SAMPLE.request()).unwrap_or_default();
    let mut lines = vec![
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
        "== In your browser".to_owned(),
        String::new(),
    ];
    lines.extend(
        stack
            .page_urls()
            .into_iter()
            .map(|(what, url)| format!("  {what:<10} {url}")),
    );
    lines.extend([
        format!("  this order {orders}/order/{order_id}"),
        String::new(),
    ]);
    lines
}

/// The demo's last line: where to go next.
pub(crate) fn open_in_browser(stack: &Stack) -> String {
    format!(
        "open {}/ to try it in your browser",
        stack.base_url(ORDER_SERVICE)
    )
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use orderflow_client::{Address, Customer, PricedLine, Recipient, ShipmentLine};

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
            id: Uuid::nil(),
            order_id: Uuid::nil(),
            issued_at: DateTime::UNIX_EPOCH,
            status: "open".into(),
            customer: Customer {
                name: "Lise Meitner".into(),
                email: "lise@example.at".into(),
            },
            billing_address: address("Boltzmanngasse 3", "Wien"),
            currency: "EUR".into(),
            lines: vec![PricedLine {
                sku: "GC-2".into(),
                name: "Geiger counter".into(),
                quantity: 2,
                unit_price_cents: 19_900,
                line_total_cents: 39_800,
            }],
            total_cents: 39_800,
        };
        let shipment = Shipment {
            id: Uuid::nil(),
            order_id: Uuid::nil(),
            created_at: DateTime::UNIX_EPOCH,
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
}
