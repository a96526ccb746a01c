//! The invoicing-service binary: the consumer kit's process around
//! [`invoicing_service::Invoicing`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    consumer_kit::main::<invoicing_service::Invoicing>().await
}
