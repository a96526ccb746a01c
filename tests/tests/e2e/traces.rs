//! One trace per order, read back from a real trace backend.
//!
//! The three services run as processes (each exports under its own service
//! name, which one process could not do) on fresh databases and a fresh
//! topic, with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at the OTLP receiver
//! (the `otlp-receiver` crate, served in-process), which forwards to a Zipkin
//! server devinfra starts from its Maven jar. An order is placed with a
//! caller's `traceparent`; the test then asks Zipkin's own query API for that
//! trace and checks that it holds the spans of all three services with the
//! right parents: request → transaction → publish → each consumer.

use std::collections::HashMap;

use anyhow::{Context as _, bail, ensure};
use devinfra::infra::{Settings, service_url_var};
use devinfra::stack::{Launch, ServicePorts, Stack};
use devinfra::zipkin::Zipkin;
use e2e::TestInfra;
use e2e::services::{fresh_group, wait_until};
use otlp_receiver::OtlpReceiver;
use platform::services::{self, ORDER_SERVICE};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The caller's trace: the order's spans must all land in it.
const TRACE_ID: &str = "5ef1a2b3c4d5e6f708192a3b4c5d6e7f";
/// The caller's span: the parent of order-service's request span.
const CALLER_SPAN: &str = "a1b2c3d4e5f60718";

#[tokio::test]
async fn one_order_is_one_trace_across_the_three_services_in_zipkin() -> anyhow::Result<()> {
    let infra = TestInfra::acquire().await?;
    let dir = devinfra::workspace_root()
        .join("target")
        .join("e2e-traces")
        .join(Uuid::new_v4().simple().to_string());
    // Zipkin, the OTLP receiver, then one per registered service.
    let ports = devinfra::process::free_ports(2 + services::ALL.len())?;
    let mut zipkin = Zipkin::start(&devinfra::workspace_root(), &dir.join("zipkin"), ports[0])
        .await
        .context("starting Zipkin")?;
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports[1])).await?;
    let receiver = tokio::spawn(OtlpReceiver::new(&zipkin.url()).serve(listener, stop.clone()));

    let topic = infra.fresh_topic(3).await?;
    let mut urls = Vec::new();
    for role in services::ALL {
        let (url, _pool) = infra.fresh_database(role).await?;
        urls.push((service_url_var(role.database), url));
    }
    let settings = Settings {
        kafka_bootstrap_servers: infra.kafka_bootstrap_servers().to_owned(),
        postgres_admin_url: infra.admin_url().to_owned(),
        service_database_urls: urls,
    };
    let stack = Stack::in_dir(
        dir.join("services"),
        &settings,
        ServicePorts::in_order(&ports[2..]),
    );
    let otlp = format!("http://127.0.0.1:{}", ports[1]);
    let outcome = async {
        for &service in services::ALL {
            let mut env = vec![
                ("ORDERS_TOPIC".to_owned(), topic.clone()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), otlp.clone()),
                // The SDK's standard batch delay, shortened so the test waits less.
                ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
            ];
            if let Some(group) = service.consumer_group {
                env.push(("KAFKA_GROUP_ID".to_owned(), fresh_group(group)));
            }
            // The test's own topic and groups, which no service's principal
            // has ACLs on: the services run as the administrative principal.
            env.extend(devinfra::kafka::access::admin_env());
            stack
                .launch(Launch {
                    service,
                    name: service.name.to_owned(),
                    port: Some(stack.ports().port(service)),
                    env,
                })
                .await
                .with_context(|| format!("starting {}", service.name))?;
        }
        place_and_follow(&stack, &zipkin.url()).await
    }
    .await;

    let stopped = stack.stop_all().await;
    stop.cancel();
    let _ = receiver.await;
    let zipkin_stopped = zipkin.stop().await;
    outcome?;
    stopped?;
    zipkin_stopped?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Places an order under the caller's trace and checks its trace in Zipkin.
async fn place_and_follow(stack: &Stack, zipkin: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/orders", stack.base_url(ORDER_SERVICE)))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({
            "customer": { "name": "Ada Lovelace", "email": "ada@example.com" },
            "billing_address": { "street": "1 Analytical Way", "zip": "10115", "city": "Berlin", "country": "DE" },
            "shipping_address": { "street": "2 Engine Road", "zip": "80331", "city": "Munich", "country": "DE" },
            "currency": "EUR",
            "lines": [ { "sku": "IPOD-NANO", "name": "iPod nano", "quantity": 2, "unit_price_cents": 14900 } ]
        }))
        .send()
        .await?;
    ensure!(
        response.status() == 201,
        "POST /orders: {}",
        response.status()
    );

    let trace_url = format!("{zipkin}/api/v2/trace/{TRACE_ID}");
    let complete = |spans: &[Value]| {
        let services: Vec<&str> = spans.iter().filter_map(service_of).collect();
        ["invoicing-service", "shipping-service"]
            .iter()
            .all(|s| services.contains(s))
    };
    wait_until(
        "the order's trace in Zipkin to hold both consumers' spans",
        || async { Ok(complete(&trace(&client, &trace_url).await?)) },
    )
    .await?;
    let spans = trace(&client, &trace_url).await?;

    let by_id: HashMap<&str, &Value> = spans
        .iter()
        .filter_map(|s| Some((s["id"].as_str()?, s)))
        .collect();
    let find = |service: &str, name_starts: &str| -> anyhow::Result<&Value> {
        spans
            .iter()
            .find(|s| {
                service_of(s) == Some(service)
                    && s["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(name_starts))
            })
            .with_context(|| format!("no span {name_starts:?} of {service} in {spans:#?}"))
    };
    let request = find("order-service", "post /orders")?;
    ensure!(
        request["parentId"] == CALLER_SPAN,
        "the request span continues the caller's span: {request}"
    );
    let transaction = find("order-service", "place order: transaction")?;
    ensure!(
        descends_from(transaction, request, &by_id),
        "the transaction is under the request: {transaction}"
    );
    let publish = find("order-service", "publish orderplaced")?;
    ensure!(
        publish["parentId"] == transaction["id"],
        "the relay's publish continues the transaction: {publish}"
    );
    ensure!(publish["kind"] == "PRODUCER", "{publish}");
    for (service, group_prefix) in [
        ("invoicing-service", "invoicing"),
        ("shipping-service", "shipping"),
    ] {
        let apply = find(service, group_prefix)?;
        ensure!(
            apply["parentId"] == publish["id"],
            "{service}'s span continues the publish span: {apply}"
        );
        ensure!(apply["kind"] == "CONSUMER", "{apply}");
    }
    for span in &spans {
        ensure!(
            span["traceId"] == TRACE_ID,
            "a span of another trace: {span}"
        );
    }
    Ok(())
}

/// The spans Zipkin holds for the trace at `url` (none yet: empty).
async fn trace(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Value>> {
    let response = client.get(url).send().await?;
    if response.status() == 404 {
        return Ok(Vec::new());
    }
    Ok(response.error_for_status()?.json().await?)
}

fn service_of(span: &Value) -> Option<&str> {
    span["localEndpoint"]["serviceName"].as_str()
}

/// Whether `span`'s parent chain (within the trace) reaches `ancestor`.
fn descends_from(span: &Value, ancestor: &Value, by_id: &HashMap<&str, &Value>) -> bool {
    let mut current = span;
    for _ in 0..32 {
        let Some(parent) = current["parentId"].as_str() else {
            return false;
        };
        if Some(parent) == ancestor["id"].as_str() {
            return true;
        }
        match by_id.get(parent) {
            Some(next) => current = next,
            None => return false,
        }
    }
    false
}

#[test]
fn the_parent_chain_is_followed_through_the_trace() -> anyhow::Result<()> {
    let root = json!({ "id": "a" });
    let middle = json!({ "id": "b", "parentId": "a" });
    let leaf = json!({ "id": "c", "parentId": "b" });
    let stray = json!({ "id": "d", "parentId": "x" });
    let by_id: HashMap<&str, &Value> = [("a", &root), ("b", &middle), ("c", &leaf)].into();
    if !descends_from(&leaf, &root, &by_id) || descends_from(&stray, &root, &by_id) {
        bail!("descends_from is wrong");
    }
    Ok(())
}
