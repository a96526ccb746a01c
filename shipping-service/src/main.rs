//! The shipping-service binary: telemetry, configuration, run until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::telemetry::init();
    let config = shipping_service::Config::from_env()?;
    let app = shipping_service::build(config).await?;
    app.run_until_stopped(platform::shutdown::on_signal())
        .await?;
    Ok(())
}
