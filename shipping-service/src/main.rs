//! The shipping-service binary: settings, telemetry, then the service until
//! SIGTERM or Ctrl-C. Everything else lives in the library.

use anyhow::Context;
use clap::FromArgMatches;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = shipping_service::cli()
        .try_get_matches()
        .and_then(|matches| shipping_service::Config::from_arg_matches(&matches))
        .unwrap_or_else(|e| e.exit());
    let telemetry = platform::telemetry::init_service(
        &config.log.filter,
        platform::services::SHIPPING_SERVICE.name,
    )
    .context("shipping-service could not set up its span export")?;
    let app = shipping_service::build(config)
        .await
        .context("shipping-service could not start")?;
    app.run_until_stopped(platform::shutdown::on_signal())
        .await
        .context("shipping-service stopped with an error")?;
    telemetry.shutdown();
    Ok(())
}
