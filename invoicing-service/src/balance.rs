//! Each customer's open balance, per currency: a running figure the order
//! events move, beside the invoices they issue.
//!
//! An invoice cannot be issued twice: `UNIQUE(order_id)` forbids it, so a
//! redelivered `OrderPlaced` changes no invoice whether or not the inbox
//! recognises it. A balance has no such key. Each `OrderPlaced` raises its
//! customer's balance by the total of the invoice it issued (when that
//! invoice is open), each `OrderCancelled` lowers it by the total of its
//! order's invoice, in the batch's transaction; nothing here asks whether
//! this delivery is the first. Like a ledger entry, a counter or a call to
//! another system, it is exactly-once only because the inbox hands each
//! event over once. So it is where the inbox's dedup can be seen from
//! outside: the chaos audit compares every balance with the open invoices,
//! and an event applied twice shows up as a difference.
//!
//! A cancellation that overtakes its order finds no invoice and lowers
//! nothing; the invoice its order issues later is issued cancelled and raises
//! nothing. A second `OrderPlaced` of an order under another event id issues
//! nothing (the order keeps its first invoice) and raises nothing, because
//! the invoice records the event that issued it.

use consumer_kit::figure::Figure;
use maud::{Markup, html};
use messaging::inbox::EventMeta;
use platform_web::Problem;
use platform_web::pagination::{KeyedPageRequest, Page, TextCursor, text_cursor_schema, text_key};
use platform_web::web::format::money;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::invoice::NewInvoice;

/// What one customer owes in one currency: the totals of their open invoices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Balance {
    /// The customer, by the e-mail address the invoices are sent to.
    pub customer_email: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// The open amount in cents: raised by each order placed, lowered by each cancelled.
    pub open_cents: i64,
}

/// Moves the balances by a batch's events, in one statement: each `OrderPlaced`
/// of `placed` raises its customer's balance by the total of the invoice it
/// issued, if that is open; each order of `cancelled` lowers it by the total
/// of the order's invoice. Run after the batch's invoices are issued and
/// before they are cancelled, so an order placed and cancelled in one batch
/// nets out. Rows are written in key order, so that concurrent batches
/// cannot deadlock on them.
pub async fn apply(
    conn: &mut PgConnection,
    placed: &[(&EventMeta, &NewInvoice)],
    cancelled: &[Uuid],
) -> Result<(), sqlx::Error> {
    if placed.is_empty() && cancelled.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO customer_balances AS b (customer_email, currency, open_cents)
         SELECT customer_email, currency, sum(cents)::bigint
         FROM (SELECT i.customer_email, i.currency, i.total_cents AS cents
               FROM unnest($1::uuid[], $2::uuid[]) AS e (order_id, event_id)
               JOIN invoices i ON i.order_id = e.order_id AND i.issued_by_event = e.event_id
               WHERE i.status = 'open'
               UNION ALL
               SELECT i.customer_email, i.currency, -i.total_cents
               FROM unnest($3::uuid[]) AS c (order_id)
               JOIN invoices i ON i.order_id = c.order_id) AS moves
         GROUP BY customer_email, currency
         ORDER BY customer_email, currency
         ON CONFLICT (customer_email, currency)
         DO UPDATE SET open_cents = b.open_cents + EXCLUDED.open_cents",
    )
    .bind(placed.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(placed.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
    .bind(cancelled)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The query of `GET /balances`: `?customer=&currency=&limit=&cursor=`,
/// every part optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    /// Only this customer's balances (the e-mail address, exactly; empty: every customer).
    #[param(required = false, schema_with = customer_schema)]
    pub customer: Option<String>,
    /// Only balances in this currency (ISO 4217, e.g. `EUR`; empty: every currency).
    #[param(pattern = "^([A-Z]{3})?$")]
    pub currency: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(required = false, schema_with = text_cursor_schema)]
    pub cursor: Option<String>,
}

/// The schema of `customer`: what [`text_key`] takes.
fn customer_schema() -> utoipa::openapi::Object {
    platform_web::schema::key_or_empty(
        MAX_EMAIL,
        "Only this customer's balances (the e-mail address, exactly; empty: every customer).",
    )
}

/// A validated [`BalanceQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceFilter {
    customer: Option<String>,
    currency: Option<String>,
    /// Which page.
    pub page: KeyedPageRequest,
}

/// Longest e-mail address a customer can have (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

impl BalanceQuery {
    /// Validates every part; a bad value is a 400 naming it.
    pub fn parse(&self) -> Result<BalanceFilter, Problem> {
        let customer = text_key("customer", self.customer.as_deref(), MAX_EMAIL)?;
        let currency = match self.currency.as_deref() {
            None | Some("") => None,
            Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => {
                Some(code.to_owned())
            }
            Some(_) => {
                return Err(Problem::bad_request(
                    "currency: must be an ISO 4217 code of three capital letters, e.g. EUR",
                ));
            }
        };
        let page = KeyedPageRequest::parse(self.limit.as_deref(), self.cursor.as_deref(), 2)?;
        Ok(BalanceFilter {
            customer,
            currency,
            page,
        })
    }
}

/// One page of balances, by customer and currency.
pub async fn list(pool: &PgPool, filter: &BalanceFilter) -> Result<Page<Balance>, sqlx::Error> {
    let (after_customer, after_currency) = match filter.page.after.as_ref().map(|c| &c.0[..]) {
        Some([customer, currency]) => (Some(customer.as_str()), Some(currency.as_str())),
        _ => (None, None),
    };
    let rows: Vec<Balance> = sqlx::query_as(
        "SELECT customer_email, currency, open_cents FROM customer_balances
         WHERE ($1::text IS NULL OR customer_email = $1)
           AND ($2::text IS NULL OR currency = $2)
           AND ($3::text IS NULL OR (customer_email, currency) > ($3, $4))
         ORDER BY customer_email, currency
         LIMIT $5",
    )
    .bind(filter.customer.as_deref())
    .bind(filter.currency.as_deref())
    .bind(after_customer)
    .bind(after_currency)
    .bind(filter.page.limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_keyed_rows(rows, &filter.page, |b: &Balance| {
        TextCursor(vec![b.customer_email.clone(), b.currency.clone()])
    }))
}

/// The balances as the kit serves them: `GET /balances` and `GET /open-balances`.
#[derive(Debug, Clone, Copy)]
pub struct Balances;

impl Figure for Balances {
    type Query = BalanceQuery;
    type Filter = BalanceFilter;
    type Item = Balance;

    const API_PATH: &'static str = "/balances";
    const PAGE_PATH: &'static str = "/open-balances";
    const TAG: (&'static str, &'static str) = (
        "balances",
        "Each customer's open balance per currency, moved by the order events",
    );
    const SUMMARY: &'static str =
        "`GET /balances?customer=&currency=&limit=&cursor=`: by customer, then currency.";
    const ANSWER: &'static str = "A page of open balances, by customer e-mail, then currency";
    const TITLE: &'static str = "Open balances";
    const EMPTY: &'static str = "No balances yet.";

    fn parse(query: &BalanceQuery) -> Result<BalanceFilter, Problem> {
        query.parse()
    }

    fn first_page(filter: &BalanceFilter) -> bool {
        filter.page.first_page()
    }

    async fn list(pool: &PgPool, filter: &BalanceFilter) -> Result<Page<Balance>, sqlx::Error> {
        list(pool, filter).await
    }

    fn intro() -> Markup {
        html! {
            p.muted { "What each customer owes, per currency: each placed order adds its invoice's total, \
                       each cancellation takes it off again. A running figure that only the inbox's \
                       deduplication keeps right: the chaos audit compares it with the open invoices." }
        }
    }

    fn table(balances: &[Balance]) -> Markup {
        html! {
            table {
                thead { tr { th { "Customer" } th { "Currency" } th.num { "Open" } } }
                tbody {
                    @for balance in balances {
                        tr {
                            td { (balance.customer_email) }
                            td { (balance.currency) }
                            td.num { (money(balance.open_cents, &balance.currency)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(customer: &str, currency: &str, limit: &str) -> BalanceQuery {
        BalanceQuery {
            customer: Some(customer.into()),
            currency: Some(currency.into()),
            limit: Some(limit.into()),
            cursor: None,
        }
    }

    #[test]
    fn a_balance_query_names_the_part_it_refuses() {
        let ok = query("ada@example.com", "EUR", "10").parse().unwrap();
        assert_eq!(ok.customer.as_deref(), Some("ada@example.com"));
        assert_eq!(ok.currency.as_deref(), Some("EUR"));
        assert!(ok.page.first_page());
        assert_eq!(query("", "", "1").parse().unwrap().customer, None);
        for (bad, field) in [
            (query("", "eur", "10"), "currency"),
            (query("", "EURO", "10"), "currency"),
            (query("a\u{0}b", "", "10"), "customer"),
            (query(&"a".repeat(255), "", "10"), "customer"),
            (query("", "", "0"), "limit"),
        ] {
            let problem = bad.parse().unwrap_err();
            assert!(problem.detail().starts_with(field), "{}", problem.detail());
        }
        let mut bad_cursor = query("", "", "5");
        bad_cursor.cursor = Some("not-a-cursor".into());
        assert!(
            bad_cursor
                .parse()
                .unwrap_err()
                .detail()
                .starts_with("cursor")
        );
    }
}
