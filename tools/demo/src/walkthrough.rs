//! The walkthrough: three orders placed, both sides waited for and shown,
//! one order cancelled and both sides followed.

use std::time::{Duration, Instant};

use devinfra::stack::{Stack, StackError};
use devinfra::wait::{self, Probe};
use orderflow_client::{ApiClient, CancelOrder, Invoice, Order, Shipment};
use platform::error::chain as error_chain;
use platform::services::{INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE};
use uuid::Uuid;

use crate::render::{money, show, side_by_side, try_next};
use crate::samples::{CANCELLED_SAMPLE, SAMPLES};

/// How long invoicing and shipping may take to record an order or a cancellation.
const RECORD_TIMEOUT: Duration = Duration::from_secs(60);

/// How often their APIs are asked while waiting.
const RECORD_POLL: Duration = Duration::from_millis(200);

/// The three orders, one cancellation, and the requests to try next.
pub(crate) async fn walkthrough(client: &ApiClient, stack: &Stack) -> Result<(), StackError> {
    let order_base = stack.base_url(ORDER_SERVICE);
    let orders_url = format!("{order_base}/orders");
    let mut lines = vec![
        format!("== Placing {} orders: POST {orders_url}", SAMPLES.len()),
        String::new(),
    ];
    let mut placed = Vec::new();
    for sample in &SAMPLES {
        let order = client
            .place_order(&order_base, &sample.request(), None)
            .await?;
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

    let ids: Vec<Uuid> = placed.iter().map(|(o, _): &(Order, _)| o.id).collect();
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
    let order_after = client
        .cancel_order(
            &order_base,
            cancelled.id,
            &CancelOrder::because("the customer changed their mind"),
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
    show(&try_next(stack, first.id))
}

/// Polls invoicing and shipping until each has recorded every order in `ids`
/// and `done` holds for each pair; returns the pairs in `ids` order.
async fn wait_recorded(
    client: &ApiClient,
    stack: &Stack,
    ids: &[Uuid],
    done: impl Fn(&Invoice, &Shipment) -> bool,
) -> Result<Vec<(Invoice, Shipment)>, StackError> {
    let invoicing = stack.base_url(INVOICING_SERVICE);
    let shipping = stack.base_url(SHIPPING_SERVICE);
    let done = &done;
    let (invoicing, shipping) = (&invoicing, &shipping);
    let found = wait::until(
        "invoicing and shipping to record the orders",
        RECORD_TIMEOUT,
        RECORD_POLL,
        None,
        move || async move {
            let mut pairs = Vec::new();
            let mut waiting = Vec::new();
            for &id in ids {
                let invoice = client.invoice_of(invoicing, id).await;
                let shipment = client.shipment_of(shipping, id).await;
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
