//! The order-service binary: settings, telemetry, then the application
//! until SIGTERM or Ctrl-C. Everything else lives in the library.

use anyhow::Context;
use order_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().unwrap_or_else(|e| e.exit());
    let telemetry = platform::telemetry::init_service(
        &config.log.filter,
        platform::services::ORDER_SERVICE.name,
    )
    .context("order-service could not set up its span export")?;
    let app = order_service::build(config)
        .await
        .context("order-service could not start")?;
    app.run_until_stopped(platform::shutdown::on_signal())
        .await
        .context("order-service stopped with an error")?;
    telemetry.shutdown();
    Ok(())
}
