//! The units to pick per SKU: a running figure the order events move, beside
//! the shipments they create.
//!
//! A shipment cannot be created twice: `UNIQUE(order_id)` forbids it, so a
//! redelivered `OrderPlaced` changes no shipment whether or not the inbox
//! recognises it. The pick list has no such key. Each `OrderPlaced` adds the
//! quantities of the shipment it created (when that shipment is pending),
//! each `OrderCancelled` removes those of its order's shipment, in the
//! batch's transaction; nothing here asks whether this delivery is the
//! first. Like a stock reservation or a message to a warehouse, it is
//! exactly-once only because the inbox hands each event over once. So it is
//! where the inbox's dedup can be seen from outside: the chaos audit compares
//! every SKU's figure with the pending shipments' lines, and an event applied
//! twice shows up as a difference.
//!
//! A cancellation that overtakes its order finds no shipment and removes
//! nothing; the shipment its order creates later is created cancelled and
//! adds nothing. A second `OrderPlaced` of an order under another event id
//! creates nothing (the order keeps its first shipment) and adds nothing,
//! because the shipment records the event that created it.

use consumer_kit::figure::Figure;
use maud::{Markup, html};
use messaging::inbox::EventMeta;
use platform_web::Problem;
use platform_web::pagination::{KeyedPageRequest, Page, TextCursor, text_cursor_schema, text_key};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::shipment::NewShipment;

/// How many units of one SKU the pending shipments hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ToPick {
    /// Stock keeping unit.
    pub sku: String,
    /// Units to pick: added by each order placed, removed by each cancelled.
    pub units: i64,
}

/// Moves the pick list by a batch's events, in one statement: each
/// `OrderPlaced` of `placed` adds the quantities of the shipment it created,
/// if that is pending; each order of `cancelled` removes those of the
/// order's shipment. Run after the batch's shipments are created and before
/// they are cancelled, so an order placed and cancelled in one batch nets
/// out. Rows are written in SKU order, so that concurrent batches cannot
/// deadlock on them.
pub async fn apply(
    conn: &mut PgConnection,
    placed: &[(&EventMeta, &NewShipment)],
    cancelled: &[Uuid],
) -> Result<(), sqlx::Error> {
    if placed.is_empty() && cancelled.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO pick_list AS p (sku, units)
         SELECT sku, sum(units)::bigint
         FROM (SELECT l.sku, l.quantity::bigint AS units
               FROM unnest($1::uuid[], $2::uuid[]) AS e (order_id, event_id)
               JOIN shipments s ON s.order_id = e.order_id AND s.created_by_event = e.event_id
               JOIN shipment_lines l ON l.shipment_id = s.id
               WHERE s.status = 'pending'
               UNION ALL
               SELECT l.sku, -l.quantity::bigint
               FROM unnest($3::uuid[]) AS c (order_id)
               JOIN shipments s ON s.order_id = c.order_id
               JOIN shipment_lines l ON l.shipment_id = s.id) AS moves
         GROUP BY sku
         ORDER BY sku
         ON CONFLICT (sku) DO UPDATE SET units = p.units + EXCLUDED.units",
    )
    .bind(placed.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(placed.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
    .bind(cancelled)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The query of `GET /pick-list`: `?sku=&limit=&cursor=`, every part optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PickListQuery {
    /// Only this SKU (exactly; empty: every SKU).
    #[param(required = false, schema_with = sku_schema)]
    pub sku: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(required = false, schema_with = text_cursor_schema)]
    pub cursor: Option<String>,
}

/// The schema of `sku`: what [`text_key`] takes.
fn sku_schema() -> utoipa::openapi::Object {
    platform_web::schema::key_or_empty(MAX_SKU, "Only this SKU (exactly; empty: every SKU).")
}

/// A validated [`PickListQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickListFilter {
    sku: Option<String>,
    /// Which page.
    pub page: KeyedPageRequest,
}

/// Longest SKU a query may name (longer than any stock keeping unit).
const MAX_SKU: usize = 200;

impl PickListQuery {
    /// Validates every part; a bad value is a 400 naming it.
    pub fn parse(&self) -> Result<PickListFilter, Problem> {
        Ok(PickListFilter {
            sku: text_key("sku", self.sku.as_deref(), MAX_SKU)?,
            page: KeyedPageRequest::parse(self.limit.as_deref(), self.cursor.as_deref(), 1)?,
        })
    }
}

/// One page of the pick list, by SKU.
pub async fn list(pool: &PgPool, filter: &PickListFilter) -> Result<Page<ToPick>, sqlx::Error> {
    let after = filter.page.after.as_ref().and_then(|c| c.0.first());
    let rows: Vec<ToPick> = sqlx::query_as(
        "SELECT sku, units FROM pick_list
         WHERE ($1::text IS NULL OR sku = $1)
           AND ($2::text IS NULL OR sku > $2)
         ORDER BY sku
         LIMIT $3",
    )
    .bind(filter.sku.as_deref())
    .bind(after)
    .bind(filter.page.limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_keyed_rows(rows, &filter.page, |p: &ToPick| {
        TextCursor(vec![p.sku.clone()])
    }))
}

/// The units to pick as the kit serves them: `GET /pick-list` and `GET /to-pick`.
#[derive(Debug, Clone, Copy)]
pub struct PickList;

impl Figure for PickList {
    type Query = PickListQuery;
    type Filter = PickListFilter;
    type Item = ToPick;

    const API_PATH: &'static str = "/pick-list";
    const PAGE_PATH: &'static str = "/to-pick";
    const TAG: (&'static str, &'static str) = (
        "pick list",
        "The units to pick per SKU, moved by the order events",
    );
    const SUMMARY: &'static str = "`GET /pick-list?sku=&limit=&cursor=`: by SKU.";
    const ANSWER: &'static str = "A page of the units to pick, by SKU";
    const TITLE: &'static str = "Units to pick";
    const EMPTY: &'static str = "Nothing to pick yet.";

    fn parse(query: &PickListQuery) -> Result<PickListFilter, Problem> {
        query.parse()
    }

    fn first_page(filter: &PickListFilter) -> bool {
        filter.page.first_page()
    }

    async fn list(pool: &PgPool, filter: &PickListFilter) -> Result<Page<ToPick>, sqlx::Error> {
        list(pool, filter).await
    }

    fn intro() -> Markup {
        html! {
            p.muted { "What the warehouse picks for the pending shipments, per SKU: each placed order \
                       adds its quantities, each cancellation takes them off again. A running figure \
                       that only the inbox's deduplication keeps right: the chaos audit compares it \
                       with the pending shipments." }
        }
    }

    fn table(items: &[ToPick]) -> Markup {
        html! {
            table {
                thead { tr { th { "SKU" } th.num { "Units" } } }
                tbody {
                    @for item in items {
                        tr { td.mono { (item.sku) } td.num { (item.units) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sku: &str, limit: &str, cursor: &str) -> PickListQuery {
        PickListQuery {
            sku: Some(sku.into()),
            limit: Some(limit.into()),
            cursor: Some(cursor.into()),
        }
    }

    #[test]
    fn a_pick_list_query_names_the_part_it_refuses() {
        let ok = query("BK-001", "10", "").parse().unwrap();
        assert_eq!(ok.sku.as_deref(), Some("BK-001"));
        assert!(ok.page.first_page());
        let next = TextCursor(vec!["BK-001".into()]).encode();
        assert!(!query("", "10", &next).parse().unwrap().page.first_page());
        for (bad, field) in [
            (query("BK\u{0}1", "10", ""), "sku"),
            (query(&"S".repeat(201), "10", ""), "sku"),
            (query("", "501", ""), "limit"),
            (query("", "10", "BK-001"), "cursor"),
        ] {
            let problem = bad.parse().unwrap_err();
            assert!(problem.detail().starts_with(field), "{}", problem.detail());
        }
    }
}
