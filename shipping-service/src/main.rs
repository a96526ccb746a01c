//! The shipping-service binary: the consumer kit's process around
//! [`shipping_service::Shipping`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    consumer_kit::main::<shipping_service::Shipping>().await
}
