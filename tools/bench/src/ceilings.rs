//! The ceilings: what this machine's PostgreSQL and Kafka do at best with the
//! same work, measured in the same run against the same servers.
//!
//! - **PostgreSQL**: `pgbench` with a custom script that is one order's
//!   transaction as order-service writes it (the order row, three lines in one
//!   statement, the outbox row with its `pg_notify`), 8 clients, prepared
//!   statements, in a database of its own with order-service's schema (so the
//!   relay never sees these rows). It runs a second time without the
//!   `pg_notify`, which prices the NOTIFY path.
//! - **Kafka**: `org.apache.kafka.tools.ProducerPerformance` from the broker's
//!   own jars, records as large as ours (value, key and headers together),
//!   `acks=all`, `enable.idempotence=true`, the relay's linger and batch size,
//!   to a topic with as many partitions as `orders`, authenticated with
//!   SCRAM-SHA-512 like the relay (and once more without authentication, for
//!   what SCRAM costs: [`super::scram`]).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use platform::services::ORDER_SERVICE;
use shared_events::topics;

use super::BenchError;
use super::cpu::CpuCost;
use super::scram::Listener;
use devinfra::kafka::KafkaRuntime;
use devinfra::postgres::{Postgres, create_owned_database, quote_literal, with_database};
use devinfra::{InfraError, prereq, workspace_root};

/// The database the pgbench ceiling writes to.
const CEILING_DATABASE: &str = "bench_ceiling";

/// The topic the producer ceiling writes to.
pub(crate) const CEILING_TOPIC: &str = "bench-ceiling";

/// pgbench clients.
pub(crate) const PGBENCH_CLIENTS: u32 = 8;

/// What pgbench measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct PgbenchResult {
    /// Transactions per second (without connection time).
    pub(crate) tps: f64,
    /// Average latency of one transaction, ms.
    pub(crate) latency_ms: f64,
    /// Transactions processed.
    pub(crate) transactions: u64,
    /// CPU time per transaction: PostgreSQL's and pgbench's own.
    pub(crate) cpu: CpuCost,
}

/// What ProducerPerformance measured.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub(crate) struct ProducerResult {
    /// Records sent.
    pub(crate) records: u64,
    /// Bytes per record.
    pub(crate) record_size: usize,
    /// Records acknowledged per second.
    pub(crate) records_per_s: f64,
    /// MB per second.
    pub(crate) mb_per_s: f64,
    /// Average and 99th percentile send latency, ms.
    pub(crate) avg_latency_ms: f64,
    pub(crate) p99_latency_ms: f64,
}

/// Creates the pgbench database with order-service's schema (its migrations,
/// then the outbox's, as its role).
pub(crate) async fn prepare_pgbench_database(postgres: &Postgres) -> Result<(), BenchError> {
    let role = ORDER_SERVICE.role();
    create_owned_database(&postgres.admin_url(), CEILING_DATABASE, role).await?;
    let url = with_database(&postgres.service_url(role), CEILING_DATABASE);
    let mut conn = PgConnection::connect(&url).await?;
    for dir in ["order-service/migrations", "messaging/migrations/outbox"] {
        let dir = workspace_root().join(dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| InfraError::io("read directory", &dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        for file in files {
            let sql =
                std::fs::read_to_string(&file).map_err(|e| InfraError::io("read", &file, e))?;
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
        }
    }
    conn.close().await?;
    Ok(())
}

/// The pgbench script: one order's transaction; `payload` is a real event's JSON.
pub(crate) fn pgbench_script(payload: &str, notify: bool) -> String {
    let outbox = format!(
        "INSERT INTO outbox (event_id, topic, record_key, event_type, schema_version, payload) \
         VALUES (gen_random_uuid(), {}, :id, 'OrderPlaced', 1, {})",
        quote_literal(topics::ORDERS),
        quote_literal(payload)
    );
    let outbox = if notify {
        format!(
            "WITH inserted AS ({outbox} RETURNING id) SELECT pg_notify('outbox', '') FROM inserted;"
        )
    } else {
        format!("{outbox};")
    };
    format!(
        "\\set total random(100, 500000)\n\
         BEGIN;\n\
         INSERT INTO orders (id, status, customer_name, customer_email, billing_street, billing_zip, billing_city, billing_country, shipping_street, shipping_zip, shipping_city, shipping_country, currency, total_cents) \
         VALUES (gen_random_uuid(), 'placed', 'Grace Hopper', 'grace.hopper17@example.com', '12 High Street', 'EC1A 112', 'London', 'GB', '7 Station Road', 'M1 114', 'Manchester', 'GB', 'GBP', :total) RETURNING id \\gset\n\
         INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_cents, line_total_cents) \
         SELECT :id::uuid, l.n, 'SKU-' || l.n, 'Product number ' || l.n, 2, 1999, 3998 FROM generate_series(0, 2) AS l (n);\n\
         {outbox}\n\
         COMMIT;\n"
    )
}

/// Runs pgbench with `script` for `duration`, [`PGBENCH_CLIENTS`] clients.
pub(crate) async fn pgbench(
    postgres: &Postgres,
    dir: &Path,
    name: &str,
    script: &str,
    duration: Duration,
) -> Result<PgbenchResult, BenchError> {
    let bin = prereq::postgres_bin_dir().map_err(|m| InfraError::MissingPrerequisites(vec![m]))?;
    let file = dir.join(format!("{name}.sql"));
    std::fs::write(&file, script).map_err(|e| InfraError::io("write", &file, e))?;
    let port = postgres
        .address()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let output = tokio::process::Command::new(bin.join("pgbench"))
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(PGBENCH_CLIENTS.to_string())
        .arg("-T")
        .arg(duration.as_secs().max(1).to_string())
        .arg("-f")
        .arg(&file)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            ORDER_SERVICE.role(),
            CEILING_DATABASE,
        ])
        // LOCAL DEVELOPMENT DEFAULT: each role's password is its name.
        .env("PGPASSWORD", ORDER_SERVICE.role())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| InfraError::Spawn {
            program: "pgbench".into(),
            source: e,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed = parse_pgbench(&text);
    match (output.status.success(), parsed) {
        (true, Some(result)) => Ok(result),
        _ => Err(BenchError::Tool {
            tool: "pgbench",
            detail: format!("{}: {}", output.status, text.trim()),
        }),
    }
}

/// `tps = ...`, `latency average = ... ms` and the transactions processed
/// from pgbench's report (the CPU cost is measured around the run).
pub(crate) fn parse_pgbench(text: &str) -> Option<PgbenchResult> {
    let number_after = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let transactions = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("number of transactions actually processed: ")
        })
        .and_then(|rest| rest.split(['/', ' ']).next())
        .and_then(|n| n.parse::<u64>().ok())?;
    Some(PgbenchResult {
        tps: number_after("tps = ")?,
        latency_ms: number_after("latency average = ")?,
        transactions,
        cpu: CpuCost::default(),
    })
}

/// Creates the ceiling topic with `partitions` partitions.
pub(crate) async fn create_ceiling_topic(
    bootstrap: &str,
    partitions: i32,
) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> =
        devinfra::kafka::access::admin_client_config(bootstrap).create()?;
    let topic = NewTopic::new(CEILING_TOPIC, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        if let Err((name, code)) = result {
            return Err(BenchError::Run(format!(
                "cannot create topic {name}: {code}"
            )));
        }
    }
    Ok(())
}

/// How ProducerPerformance runs: its records and the relay's producer settings.
#[derive(Debug, Clone)]
pub(crate) struct ProducerPlan {
    /// Records sent.
    pub(crate) records: u64,
    /// Bytes per record.
    pub(crate) record_size: usize,
    /// `linger.ms`.
    pub(crate) linger_ms: String,
    /// `batch.size`.
    pub(crate) batch_size: String,
}

/// Runs ProducerPerformance as `plan` says, through `listener`.
pub(crate) async fn producer_performance(
    runtime: &KafkaRuntime,
    listener: &Listener,
    logs: &Path,
    plan: &ProducerPlan,
) -> Result<ProducerResult, BenchError> {
    // The client's authentication in a properties file (a JAAS line holds
    // spaces, which the tool's `key=value` arguments cannot carry).
    let properties = logs.join(format!(
        "producer-performance-{}.properties",
        listener.auth.security_protocol.to_ascii_lowercase()
    ));
    std::fs::write(
        &properties,
        devinfra::kafka::access::java_client_properties(&listener.auth),
    )
    .map_err(|e| InfraError::io("write", &properties, e))?;
    let mut command = runtime.java_command(
        "512m",
        logs,
        std::iter::empty::<&str>(),
        "org.apache.kafka.tools.ProducerPerformance",
    );
    command
        .args(["--topic", CEILING_TOPIC, "--throughput", "-1"])
        .arg("--num-records")
        .arg(plan.records.to_string())
        .arg("--record-size")
        .arg(plan.record_size.to_string())
        .arg("--command-config")
        .arg(&properties)
        .arg("--command-property")
        .arg(format!("bootstrap.servers={}", listener.bootstrap))
        .arg("acks=all")
        .arg("enable.idempotence=true")
        .arg(format!("linger.ms={}", plan.linger_ms))
        .arg(format!("batch.size={}", plan.batch_size))
        .stdin(Stdio::null());
    let output = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| InfraError::Spawn {
            program: "java ProducerPerformance".into(),
            source: e,
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match (output.status.success(), parse_producer_performance(&stdout)) {
        (true, Some((records_per_s, mb_per_s, avg, p99))) => Ok(ProducerResult {
            records: plan.records,
            record_size: plan.record_size,
            records_per_s,
            mb_per_s,
            avg_latency_ms: avg,
            p99_latency_ms: p99,
        }),
        _ => Err(BenchError::Tool {
            tool: "ProducerPerformance",
            detail: format!(
                "{}: {}{}",
                output.status,
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

/// From the final line `N records sent, R records/sec (M MB/sec), A ms avg
/// latency, X ms max latency, p50 ms 50th, p95 ms 95th, p99 ms 99th, ...`:
/// records/s, MB/s, average and 99th percentile latency.
pub(crate) fn parse_producer_performance(text: &str) -> Option<(f64, f64, f64, f64)> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("records sent") && l.contains("99th"))?;
    let number_before = |marker: &str| {
        let end = line.find(marker)?;
        line[..end]
            .trim_end()
            .rsplit([' ', '('])
            .next()
            .and_then(|n| n.parse::<f64>().ok())
    };
    Some((
        number_before(" records/sec")?,
        number_before(" MB/sec")?,
        number_before(" ms avg latency")?,
        number_before(" ms 99th")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_reports_are_parsed() {
        let text = "transaction type: bench.sql\nnumber of clients: 8\n\
                    number of transactions actually processed: 18370\n\
                    latency average = 6.532 ms\n\
                    initial connection time = 12.345 ms\n\
                    tps = 1224.701538 (without initial connection time)\n";
        assert_eq!(
            parse_pgbench(text),
            Some(PgbenchResult {
                tps: 1224.701538,
                latency_ms: 6.532,
                transactions: 18370,
                cpu: CpuCost::default(),
            })
        );
        assert_eq!(parse_pgbench("pgbench: error: connection refused"), None);
    }

    #[test]
    fn producer_performance_reports_are_parsed() {
        let text = "49811 records sent, 9962.2 records/sec (9.73 MB/sec), 30.1 ms avg latency, 250.0 ms max latency.\n\
                    300000 records sent, 61124.694377 records/sec (59.69 MB/sec), 41.27 ms avg latency, 312.00 ms max latency, 35 ms 50th, 90 ms 95th, 120 ms 99th, 300 ms 99.9th.\n";
        let (rps, mbps, avg, p99) = parse_producer_performance(text).expect("parsed");
        assert!((rps - 61124.694377).abs() < 1e-6);
        assert!((mbps - 59.69).abs() < 1e-9);
        assert!((avg - 41.27).abs() < 1e-9);
        assert!((p99 - 120.0).abs() < 1e-9);
    }

    #[test]
    fn the_script_is_one_transaction_with_or_without_notify() {
        let with = pgbench_script("{\"it's\":1}", true);
        assert!(with.contains("BEGIN;") && with.contains("COMMIT;"));
        assert!(with.contains("pg_notify"));
        assert!(with.contains("'{\"it''s\":1}'"));
        assert!(!pgbench_script("{}", false).contains("pg_notify"));
    }
}
