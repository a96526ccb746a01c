//! The SQL: orders, their lines, idempotency keys, outbox rows and where
//! the relay published them (the last two in the outbox's tables, see
//! [`messaging::outbox::MIGRATOR`]).
//!
//! Each write is one transaction that holds the state change *and* its event
//! (an outbox row written with [`messaging::outbox::enqueue`]), so either both
//! commit or neither does. Queries are checked at run time (`sqlx::query`), so
//! building the crate needs no database; the integration tests run them all.

use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging::outbox::{self, OutboxMessage, Wakeup};
use platform_web::pagination::PageRequest;
use shared_events::TraceParent;
use sqlx::migrate::Migrator;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{NewOrder, OrderStatus};
use crate::events;

/// The column list every order query selects, in [`OrderRow`]'s shape.
macro_rules! order_columns {
    () => {
        "id, status, customer_name, customer_email, \
         billing_street, billing_zip, billing_city, billing_country, \
         shipping_street, shipping_zip, shipping_city, shipping_country, \
         currency, total_cents, placed_at, cancelled_at, cancel_reason"
    };
}

/// The schema of this service (`order-service/migrations`), embedded at
/// build time; the outbox's tables come from [`messaging::outbox::MIGRATOR`],
/// applied after it ([`migrate`]).
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The versions of this service's migrations before the outbox had its own
/// (`messaging::outbox::MIGRATOR`): they also created the outbox's tables,
/// and were squashed into `20261224000001_orders.sql` and the outbox's
/// `0001_outbox.sql`.
const OLD_LAYOUT: [i64; 7] = [
    20261121000001,
    20261201000001,
    20261201000002,
    20261215000001,
    20261215000002,
    20261220000001,
    20261223000001,
];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database was made by the migrations of an order-service older than
    /// the outbox's own migrations.
    #[error(
        "this database was made by an order-service older than the outbox's own migrations: \
         its _sqlx_migrations lists versions {versions:?}, which also created the outbox's tables \
         and are now squashed into order-service/migrations/20261224000001_orders.sql and \
         messaging/migrations/outbox/0001_outbox.sql (tracked in _outbox_migrations), so it \
         cannot be migrated in place. Recreate it: let the previous version's relay empty the \
         outbox if its events matter (the outbox_backlog metric at 0, nothing parked), then \
         drop the database and create it empty, owned by the service's role, and start this \
         version (orders are not carried over; this is a pre-release change of layout)"
    )]
    OldLayout {
        /// The old versions the database lists.
        versions: Vec<i64>,
    },
    /// Looking for the old layout failed.
    #[error("could not read the schema's history (_sqlx_migrations)")]
    History(#[source] sqlx::Error),
    /// This service's migrations failed.
    #[error("could not apply order-service's migrations")]
    Service(#[source] sqlx::migrate::MigrateError),
    /// The outbox's migrations failed.
    #[error("could not apply the outbox's migrations (messaging::outbox::MIGRATOR)")]
    Outbox(#[source] sqlx::migrate::MigrateError),
}

/// Refuses a database made by the old layout ([`MigrateError::OldLayout`]),
/// then applies this service's migrations and the outbox's, in that order.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    check_layout(pool).await?;
    MIGRATOR.run(pool).await.map_err(MigrateError::Service)?;
    messaging::outbox::MIGRATOR
        .run(pool)
        .await
        .map_err(MigrateError::Outbox)
}

/// Fails with [`MigrateError::OldLayout`] when the schema's history lists a
/// migration of the layout before the outbox had its own: sqlx would
/// otherwise refuse it with a bare "migration was previously applied but is
/// missing", or the outbox's migration would fail on its existing tables.
pub async fn check_layout(pool: &PgPool) -> Result<(), MigrateError> {
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE version = ANY($1) ORDER BY version",
    )
    .bind(OLD_LAYOUT)
    .fetch_all(pool)
    .await
    .or_else(|e| match &e {
        // A new database: no history yet.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => Ok(Vec::new()),
        _ => Err(e),
    })
    .map_err(MigrateError::History)?;
    if versions.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::OldLayout { versions })
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or refused the statement.
    #[error("the orders database failed")]
    Database(#[from] sqlx::Error),
    /// An event could not be serialised for the outbox.
    #[error("the event could not be serialised for the outbox")]
    Event(#[from] serde_json::Error),
    /// Stored rows break an invariant the schema should have kept.
    #[error("stored data is inconsistent: {0}")]
    Inconsistent(String),
}

impl StoreError {
    /// True when retrying later may succeed (database unreachable, overloaded, conflict).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => platform::db::is_transient(e),
            StoreError::Event(_) | StoreError::Inconsistent(_) => false,
        }
    }
}

/// A postal address as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRecord {
    /// Street and number.
    pub street: String,
    /// Postal code.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

/// One order line as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LineRecord {
    /// Stock keeping unit.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Units ordered.
    pub quantity: i32,
    /// Price of one unit, in cents.
    pub unit_price_cents: i64,
    /// `quantity * unit_price_cents`.
    pub line_total_cents: i64,
}

/// An order as stored: what the API returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The order's id (UUIDv7).
    pub id: Uuid,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// Customer's name.
    pub customer_name: String,
    /// Customer's e-mail address.
    pub customer_email: String,
    /// Where the invoice goes.
    pub billing: AddressRecord,
    /// Where the parcel goes.
    pub shipping: AddressRecord,
    /// Currency code.
    pub currency: String,
    /// The lines in request order.
    pub lines: Vec<LineRecord>,
    /// Sum of the line totals, in cents.
    pub total_cents: i64,
    /// When the order was committed (database clock).
    pub placed_at: DateTime<Utc>,
    /// When it was cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why it was cancelled, if the caller said.
    pub cancel_reason: Option<String>,
}

impl OrderRecord {
    /// The record of `order` as just inserted under `id` at `placed_at`.
    fn placed(id: Uuid, order: &NewOrder, placed_at: DateTime<Utc>) -> Self {
        let address = |a: &crate::domain::Address| AddressRecord {
            street: a.street.to_string(),
            zip: a.zip.to_string(),
            city: a.city.to_string(),
            country: a.country.as_str().to_owned(),
        };
        OrderRecord {
            id,
            status: OrderStatus::Placed,
            customer_name: order.customer().name.to_string(),
            customer_email: order.customer().email.as_str().to_owned(),
            billing: address(order.billing_address()),
            shipping: address(order.shipping_address()),
            currency: order.currency().as_str().to_owned(),
            lines: order
                .lines()
                .iter()
                .map(|l| LineRecord {
                    sku: l.sku().as_str().to_owned(),
                    name: l.name().to_string(),
                    quantity: l.quantity().as_i32(),
                    unit_price_cents: l.unit_price().get(),
                    line_total_cents: l.line_total().get(),
                })
                .collect(),
            total_cents: order.total().get(),
            placed_at,
            cancelled_at: None,
            cancel_reason: None,
        }
    }
}

/// An `Idempotency-Key` and the fingerprint of the request that carries it.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyClaim<'a> {
    /// The key as the client sent it.
    pub key: &'a str,
    /// SHA-256 of the canonical request.
    pub request_sha256: [u8; 32],
}

/// Everything needed to place one order: the order, the ids the caller chose,
/// and how to address its event.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// Id of the new order (UUIDv7).
    pub order_id: Uuid,
    /// Id of its `OrderPlaced` event (UUIDv7).
    pub event_id: Uuid,
    /// The validated order.
    pub order: &'a NewOrder,
    /// Makes the placement idempotent when present.
    pub idempotency: Option<IdempotencyClaim<'a>>,
    /// Topic of the event.
    pub topic: &'a str,
    /// Trace context stored with the event.
    pub traceparent: Option<TraceParent>,
}

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// The order and its event were committed.
    Created(OrderRecord),
    /// The key was used before with the same request: nothing was written;
    /// this is the order the earlier request placed, as it is now.
    Replayed(OrderRecord),
    /// The key was used before with a different request: nothing was written.
    KeyReused,
}

/// Everything needed to cancel one order.
#[derive(Debug, Clone, Copy)]
pub struct Cancellation<'a> {
    /// The order.
    pub order_id: Uuid,
    /// Id of the `OrderCancelled` event, if one is written (UUIDv7).
    pub event_id: Uuid,
    /// Why, if the caller said (already validated).
    pub reason: Option<&'a str>,
    /// Topic of the event.
    pub topic: &'a str,
    /// Trace context stored with the event.
    pub traceparent: Option<TraceParent>,
}

/// What cancelling an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The order is now cancelled and its event committed.
    Now(OrderRecord),
    /// It was cancelled before; nothing was written.
    Already(OrderRecord),
    /// There is no such order.
    NotFound,
}

/// The orders database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
    wakeup: Wakeup,
}

impl Store {
    /// A store over `pool` (migrated with [`MIGRATOR`]).
    pub fn new(pool: PgPool) -> Self {
        Store {
            pool,
            wakeup: Wakeup::new(),
        }
    }

    /// The same store, waking the relay through `wakeup` after each commit
    /// that wrote outbox rows.
    pub fn with_wakeup(mut self, wakeup: Wakeup) -> Self {
        self.wakeup = wakeup;
        self
    }

    /// The pool, for health checks and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Places an order: in one transaction, claims the idempotency key (if
    /// any), inserts the order and its lines and enqueues `OrderPlaced`.
    ///
    /// Two concurrent requests with one key both try to insert the key row;
    /// PostgreSQL makes the second wait on the unique index until the first
    /// commits (then it sees the winner and replays it) or rolls back (then it
    /// becomes the winner). No read-then-write race is possible.
    ///
    /// A key that exists is locked by the same statement (`DO UPDATE ...
    /// WHERE false` locks the row and writes nothing), so the retention purge
    /// cannot delete it between the claim and the replay's read of it; a key
    /// the purge deleted first is simply claimed anew, as a forgotten key is.
    pub async fn place_order(&self, placement: Placement<'_>) -> Result<Placed, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(claim) = placement.idempotency {
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (key, request_sha256, order_id)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key WHERE false",
            )
            .bind(claim.key)
            .bind(&claim.request_sha256[..])
            .bind(placement.order_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                let outcome = replay(&mut tx, claim).await?;
                tx.rollback().await?;
                return Ok(outcome);
            }
        }
        let placed_at = insert_order(&mut tx, placement.order_id, placement.order).await?;
        let envelope = events::order_placed(
            placement.event_id,
            placement.order_id,
            placement.order,
            placed_at,
        );
        let message = OutboxMessage::for_event(placement.topic, &envelope, placement.traceparent)?;
        outbox::enqueue(&mut tx, &message).await?;
        tx.commit().await?;
        self.wakeup.committed();
        Ok(Placed::Created(OrderRecord::placed(
            placement.order_id,
            placement.order,
            placed_at,
        )))
    }

    /// Cancels an order: locks its row, and unless it is cancelled already,
    /// marks it cancelled and enqueues `OrderCancelled`, in one transaction.
    /// The row lock makes concurrent cancels of one order write one event.
    pub async fn cancel_order(
        &self,
        cancellation: Cancellation<'_>,
    ) -> Result<Cancelled, StoreError> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM orders WHERE id = $1 FOR UPDATE")
                .bind(cancellation.order_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(Cancelled::NotFound);
        };
        if parse_status(&status)? == OrderStatus::Cancelled {
            let order = fetch_existing(&mut tx, cancellation.order_id).await?;
            tx.rollback().await?;
            return Ok(Cancelled::Already(order));
        }
        let cancelled_at: DateTime<Utc> = sqlx::query_scalar(
            "UPDATE orders
             SET status = 'cancelled', cancelled_at = now(), cancel_reason = $2
             WHERE id = $1
             RETURNING cancelled_at",
        )
        .bind(cancellation.order_id)
        .bind(cancellation.reason)
        .fetch_one(&mut *tx)
        .await?;
        let envelope = events::order_cancelled(
            cancellation.event_id,
            cancellation.order_id,
            cancellation.reason,
            cancelled_at,
        );
        let message =
            OutboxMessage::for_event(cancellation.topic, &envelope, cancellation.traceparent)?;
        outbox::enqueue(&mut tx, &message).await?;
        let order = fetch_existing(&mut tx, cancellation.order_id).await?;
        tx.commit().await?;
        self.wakeup.committed();
        Ok(Cancelled::Now(order))
    }

    /// Deletes the idempotency keys older than `retention`; how many.
    pub async fn purge_idempotency_keys(&self, retention: Duration) -> Result<u64, StoreError> {
        let purged = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(purged.rows_affected())
    }

    /// Deletes the records of events published longer than `retention` ago
    /// (the order page then shows them without partition and offset); how many.
    pub async fn purge_published_events(&self, retention: Duration) -> Result<u64, StoreError> {
        let purged = sqlx::query(
            "DELETE FROM published_events WHERE published_at < now() - make_interval(secs => $1)",
        )
        .bind(retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(purged.rows_affected())
    }

    /// The order with `id`, if there is one.
    pub async fn find_order(&self, id: Uuid) -> Result<Option<OrderRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_order(&mut conn, id).await
    }

    /// One page of orders, newest first (ids are UUIDv7), fetching one extra
    /// row so the caller can tell whether another page follows.
    pub async fn list_orders(&self, page: PageRequest) -> Result<Vec<OrderRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<OrderRow> = sqlx::query_as(concat!(
            "SELECT ",
            order_columns!(),
            " FROM orders
              WHERE $1::uuid IS NULL OR id < $1
              ORDER BY id DESC
              LIMIT $2"
        ))
        .bind(page.before)
        .bind(page.fetch_limit())
        .fetch_all(&mut *conn)
        .await?;
        with_lines(&mut conn, rows).await
    }
}

/// Where the relay published one event of an order (`published_events`).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PublishedEvent {
    /// The event's type (`OrderPlaced`, `OrderCancelled`).
    pub event_type: String,
    /// The Kafka partition it went to.
    pub kafka_partition: i32,
    /// Its offset there.
    pub kafka_offset: i64,
    /// When the relay recorded Kafka's acknowledgement (database clock).
    pub published_at: DateTime<Utc>,
}

impl Store {
    /// The events of order `id` the relay has published, oldest first.
    pub async fn published_events(&self, id: Uuid) -> Result<Vec<PublishedEvent>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT event_type, kafka_partition, kafka_offset, published_at
             FROM published_events WHERE record_key = $1
             ORDER BY published_at, kafka_offset",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?)
    }
}

#[derive(Debug, FromRow)]
struct OrderRow {
    id: Uuid,
    status: String,
    customer_name: String,
    customer_email: String,
    billing_street: String,
    billing_zip: String,
    billing_city: String,
    billing_country: String,
    shipping_street: String,
    shipping_zip: String,
    shipping_city: String,
    shipping_country: String,
    currency: String,
    total_cents: i64,
    placed_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    cancel_reason: Option<String>,
}

impl OrderRow {
    fn into_record(self, lines: Vec<LineRecord>) -> Result<OrderRecord, StoreError> {
        Ok(OrderRecord {
            id: self.id,
            status: parse_status(&self.status)?,
            customer_name: self.customer_name,
            customer_email: self.customer_email,
            billing: AddressRecord {
                street: self.billing_street,
                zip: self.billing_zip,
                city: self.billing_city,
                country: self.billing_country,
            },
            shipping: AddressRecord {
                street: self.shipping_street,
                zip: self.shipping_zip,
                city: self.shipping_city,
                country: self.shipping_country,
            },
            currency: self.currency,
            lines,
            total_cents: self.total_cents,
            placed_at: self.placed_at,
            cancelled_at: self.cancelled_at,
            cancel_reason: self.cancel_reason,
        })
    }
}

#[derive(Debug, FromRow)]
struct LineRow {
    order_id: Uuid,
    #[sqlx(flatten)]
    line: LineRecord,
}

fn parse_status(status: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(status)
        .ok_or_else(|| StoreError::Inconsistent(format!("unknown order status {status:?}")))
}

/// Inserts the order row and its lines; returns `placed_at` from the database clock.
async fn insert_order(
    conn: &mut PgConnection,
    id: Uuid,
    order: &NewOrder,
) -> Result<DateTime<Utc>, StoreError> {
    let customer = order.customer();
    let billing = order.billing_address();
    let shipping = order.shipping_address();
    let placed_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO orders (
             id, status, customer_name, customer_email,
             billing_street, billing_zip, billing_city, billing_country,
             shipping_street, shipping_zip, shipping_city, shipping_country,
             currency, total_cents)
         VALUES ($1, 'placed', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING placed_at",
    )
    .bind(id)
    .bind(customer.name.as_str())
    .bind(customer.email.as_str())
    .bind(billing.street.as_str())
    .bind(billing.zip.as_str())
    .bind(billing.city.as_str())
    .bind(billing.country.as_str())
    .bind(shipping.street.as_str())
    .bind(shipping.zip.as_str())
    .bind(shipping.city.as_str())
    .bind(shipping.country.as_str())
    .bind(order.currency().as_str())
    .bind(order.total().get())
    .fetch_one(&mut *conn)
    .await?;

    // One statement for all lines: arrays in, one row per element out.
    let lines = order.lines();
    let line_numbers: Vec<i32> = (0..).take(lines.len()).collect();
    let skus: Vec<&str> = lines.iter().map(|l| l.sku().as_str()).collect();
    let names: Vec<&str> = lines.iter().map(|l| l.name().as_str()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity().as_i32()).collect();
    let unit_prices: Vec<i64> = lines.iter().map(|l| l.unit_price().get()).collect();
    let line_totals: Vec<i64> = lines.iter().map(|l| l.line_total().get()).collect();
    sqlx::query(
        "INSERT INTO order_lines
             (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents)
         SELECT $1, l.line_no, l.sku, l.name, l.quantity, l.unit_price_cents, l.line_total_cents
         FROM UNNEST($2::int4[], $3::text[], $4::text[], $5::int4[], $6::int8[], $7::int8[])
              AS l (line_no, sku, name, quantity, unit_price_cents, line_total_cents)",
    )
    .bind(id)
    .bind(line_numbers)
    .bind(skus)
    .bind(names)
    .bind(quantities)
    .bind(unit_prices)
    .bind(line_totals)
    .execute(&mut *conn)
    .await?;
    Ok(placed_at)
}

/// The outcome for a key that is already taken: replay, or refuse a different request.
async fn replay(
    conn: &mut PgConnection,
    claim: IdempotencyClaim<'_>,
) -> Result<Placed, StoreError> {
    let (request_sha256, order_id): (Vec<u8>, Uuid) =
        sqlx::query_as("SELECT request_sha256, order_id FROM idempotency_keys WHERE key = $1")
            .bind(claim.key)
            .fetch_one(&mut *conn)
            .await?;
    if request_sha256 != claim.request_sha256 {
        return Ok(Placed::KeyReused);
    }
    Ok(Placed::Replayed(fetch_existing(conn, order_id).await?))
}

async fn fetch_order(conn: &mut PgConnection, id: Uuid) -> Result<Option<OrderRecord>, StoreError> {
    let row: Option<OrderRow> = sqlx::query_as(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => Ok(with_lines(conn, vec![row]).await?.pop()),
    }
}

/// Fetches an order that a key row or a lock says exists.
async fn fetch_existing(conn: &mut PgConnection, id: Uuid) -> Result<OrderRecord, StoreError> {
    fetch_order(conn, id)
        .await?
        .ok_or_else(|| StoreError::Inconsistent(format!("order {id} vanished")))
}

/// Loads the lines of `rows` in one query and assembles the records, keeping the rows' order.
async fn with_lines(
    conn: &mut PgConnection,
    rows: Vec<OrderRow>,
) -> Result<Vec<OrderRecord>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let line_rows: Vec<LineRow> = sqlx::query_as(
        "SELECT order_id, sku, name, quantity, unit_price_cents, line_total_cents
         FROM order_lines
         WHERE order_id = ANY($1)
         ORDER BY order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut lines_by_order: std::collections::HashMap<Uuid, Vec<LineRecord>> =
        std::collections::HashMap::with_capacity(rows.len());
    for row in line_rows {
        lines_by_order
            .entry(row.order_id)
            .or_default()
            .push(row.line);
    }
    rows.into_iter()
        .map(|row| {
            let lines = lines_by_order.remove(&row.id).unwrap_or_default();
            row.into_record(lines)
        })
        .collect()
}
