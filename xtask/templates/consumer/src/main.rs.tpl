//! The {{name}}-service binary: the consumer kit's process around
//! [`{{name}}_service::{{Name}}`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    consumer_kit::main::<{{name}}_service::{{Name}}>().await
}
