//! A consuming service's view of the topic, read the way its API reads it:
//! one row by id, or a page at a time, newest first, optionally of one order.
//!
//! A view is a table or SQL view with `id` (UUIDv7, so "newest first" is
//! "id descending") and `order_id` columns; each service maps its own rows.

use platform_web::pagination::{Page, PageRequest};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, FromRow, PgPool};
use uuid::Uuid;

/// A consuming service's view: a table or SQL view named in the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View(pub &'static str);

impl View {
    /// The row with `id`, converted by `into`, if there is one.
    pub async fn find<R, T>(
        &self,
        pool: &PgPool,
        id: Uuid,
        into: impl FnOnce(R) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = format!("SELECT * FROM {} WHERE id = $1", self.0);
        let row: Option<R> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?;
        row.map(into).transpose()
    }

    /// One page of rows, newest first, only those of `order_id` if given,
    /// each converted by `into`.
    pub async fn page<R, T>(
        &self,
        pool: &PgPool,
        order_id: Option<Uuid>,
        page: PageRequest,
        into: impl Fn(R) -> Result<T, sqlx::Error>,
        id_of: impl Fn(&T) -> Uuid,
    ) -> Result<Page<T>, sqlx::Error>
    where
        R: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = format!(
            "SELECT * FROM {}
             WHERE ($1::uuid IS NULL OR order_id = $1) AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC
             LIMIT $3",
            self.0
        );
        let rows: Vec<R> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(order_id)
            .bind(page.before)
            .bind(page.fetch_limit())
            .fetch_all(pool)
            .await?;
        let items = rows.into_iter().map(into).collect::<Result<Vec<T>, _>>()?;
        Ok(Page::from_rows(items, page, id_of))
    }
}
