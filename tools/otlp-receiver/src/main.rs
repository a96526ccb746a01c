//! `otlp-receiver`: the OTLP receiver in front of Zipkin as a process (see
//! the library). `cargo xtask up --tracing` starts it detached; SIGTERM or
//! Ctrl-C stops it after the exports in flight.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use otlp_receiver::OtlpReceiver;

/// Accepts OTLP/HTTP trace exports (`POST /v1/traces`) and forwards their
/// spans to a Zipkin server.
#[derive(Debug, Parser)]
#[command(name = "otlp-receiver", version)]
struct Args {
    /// Where to listen for OTLP/HTTP, e.g. 127.0.0.1:4318.
    #[arg(long)]
    listen: SocketAddr,
    /// Zipkin's base URL, e.g. http://127.0.0.1:9411.
    #[arg(long)]
    zipkin: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    platform::telemetry::init();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, zipkin = %args.zipkin, "receiving OTLP traces");
    OtlpReceiver::new(&args.zipkin)
        .serve(listener, platform::shutdown::on_signal())
        .await
        .with_context(|| format!("serving OTLP on {}", args.listen))
}
