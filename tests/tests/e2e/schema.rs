//! The orders database's schema: order-service's own migrations, then the
//! outbox's (`messaging::outbox::MIGRATOR`), each with its own history, and
//! a database made by the layout before the outbox had its own migrations
//! refused with what to do.

use e2e::TestInfra;
use order_service::store::{MigrateError, migrate};
use platform::services::ORDER_SERVICE;
use sqlx::PgPool;

/// The tables of the public schema, sorted.
async fn tables(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await?)
}

#[tokio::test]
async fn the_service_and_the_outbox_each_migrate_their_own_tables_with_their_own_history()
-> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let (_, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    migrate(&pool).await?;
    // A second start finds everything applied.
    migrate(&pool).await?;
    assert_eq!(
        tables(&pool).await?,
        [
            "_outbox_migrations",
            "_sqlx_migrations",
            "idempotency_keys",
            "order_lines",
            "orders",
            "outbox",
            "outbox_discarded",
            "published_events",
        ]
    );
    let service: Vec<String> =
        sqlx::query_scalar("SELECT description FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(service, ["orders"]);
    let outbox: Vec<String> =
        sqlx::query_scalar("SELECT description FROM _outbox_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(outbox, ["outbox"]);
    Ok(())
}

#[tokio::test]
async fn a_database_of_the_layout_before_the_outbox_migrator_is_refused_with_what_to_do()
-> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let (_, pool) = infra.fresh_database(&ORDER_SERVICE).await?;
    // The history an order-service database of the old layout has: sqlx's
    // table with the versions of the old migrations.
    sqlx::raw_sql(
        "CREATE TABLE _sqlx_migrations (
             version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
         INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20261121000001, 'orders', true, '\\x00', 1),
                (20261223000001, 'outbox key hash', true, '\\x00', 1);",
    )
    .execute(&pool)
    .await?;
    let refused = migrate(&pool).await.expect_err("the old layout is refused");
    let MigrateError::OldLayout { versions } = &refused else {
        panic!("not refused as the old layout: {refused:?}");
    };
    assert_eq!(versions, &[20261121000001, 20261223000001]);
    let message = refused.to_string();
    assert!(message.contains("Recreate it"), "{message}");
    assert!(message.contains("_outbox_migrations"), "{message}");
    // Nothing was applied.
    assert_eq!(tables(&pool).await?, ["_sqlx_migrations"]);
    Ok(())
}
