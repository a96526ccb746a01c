//! The invoicing-service binary: settings, telemetry, then the service until
//! SIGTERM or Ctrl-C. Everything else lives in the library.

use anyhow::Context;
use clap::FromArgMatches;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = invoicing_service::cli()
        .try_get_matches()
        .and_then(|matches| invoicing_service::Config::from_arg_matches(&matches))
        .unwrap_or_else(|e| e.exit());
    let telemetry = platform::telemetry::init_service(
        &config.log.filter,
        platform::services::INVOICING_SERVICE.name,
    )
    .context("invoicing-service could not set up its span export")?;
    let app = invoicing_service::build(config)
        .await
        .context("invoicing-service could not start")?;
    app.run_until_stopped(platform::shutdown::on_signal())
        .await
        .context("invoicing-service stopped with an error")?;
    telemetry.shutdown();
    Ok(())
}
