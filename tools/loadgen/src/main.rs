//! `loadgen`: open-loop `POST /orders` at a fixed rate (see [`loadgen::open_loop`]).
//!
//! Writes one JSON line per scheduled request to `--out` and the summary as
//! one JSON object to stdout; `cargo xtask bench` runs it once per rate.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use loadgen::open_loop::{self, Plan};

/// Open-loop load for the order service: requests on a fixed schedule,
/// latency measured from each request's due time.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// The orders endpoint, e.g. http://127.0.0.1:8081/orders.
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long)]
    rate: f64,
    /// Seconds during which requests are started.
    #[arg(long, default_value_t = 20.0)]
    duration_secs: f64,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests open at once at most; one due beyond this is counted as not sent.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: usize,
    /// Milliseconds one request may take.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Where to write one JSON line per scheduled request.
    #[arg(long)]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan {
        url: args.url,
        rate: args.rate,
        duration: Duration::try_from_secs_f64(args.duration_secs)
            .context("--duration-secs must be a non-negative number")?,
        seed: args.seed,
        max_in_flight: args.max_in_flight.max(1),
        timeout: Duration::from_millis(args.timeout_ms),
    };
    eprintln!(
        "loadgen: {} requests at {}/s to {}",
        plan.requests(),
        plan.rate,
        plan.url
    );
    let (outcomes, summary) = open_loop::run(&plan).await?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for outcome in &outcomes {
        serde_json::to_writer(&mut out, outcome)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{}", serde_json::to_string(&summary)?);
    eprintln!(
        "loadgen: {} sent, {} created, {} other status, {} failed, {} not sent",
        summary.sent, summary.created, summary.other_status, summary.failed, summary.not_sent
    );
    Ok(())
}
