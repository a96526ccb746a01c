//! The order-service binary: telemetry, configuration, then the application
//! until SIGTERM or Ctrl-C. Everything else lives in the library.

use anyhow::Context;
use order_service::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let config = Config::from_env().context("reading the order-service configuration")?;
    let app = order_service::build(config)
        .await
        .context("starting order-service")?;
    tracing::info!(addr = %app.local_addr(), "order-service listening");
    app.run_until_stopped(platform::shutdown::on_signal())
        .await
        .context("order-service stopped with an error")?;
    Ok(())
}
