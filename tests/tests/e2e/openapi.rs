//! Each service's OpenAPI document, checked by a fuzzer nobody here wrote.
//!
//! Schemathesis (PyPI, installed by `cargo xtask test` into `.tools/venv`)
//! reads each running service's `/openapi.json` and sends it what the
//! document allows and what it forbids (`--mode all`), in every phase
//! including the stateful one (following the links it infers, e.g.
//! `Location` to `GET /orders/{id}`), with every check. So the run fails on
//! any 5xx, any answer that breaks the document's schema or content type,
//! any status the document does not list, any forbidden request the service
//! accepts, and any allowed request it refuses
//! (`positive_data_acceptance`): the document must state every rule the
//! service enforces (patterns, enums, lengths, bounds; see
//! `platform_web::schema`). One rule has no JSON Schema (a SKU on one line of
//! an order only): a hook (`tests/contracts/schemathesis_hooks.py`) drops
//! exactly the refusals that name nothing but a repeated SKU, and says why.
//! Its size is bounded (`--max-examples`), so it takes seconds per service.

use platform::services::{INVOICING_SERVICE, SHIPPING_SERVICE};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use e2e::TestInfra;
use e2e::events::placed;
use e2e::flow::TestFlow;
use e2e::services::{EventProducer, wait_until};
use invoicing_service::Invoicing;
use shipping_service::Shipping;

/// The checks: every one, on every operation.
const CONFIG: &str = "tests/contracts/schemathesis.toml";

/// The hook that knows the one rule JSON Schema cannot state (a SKU on one
/// line of an order only) and drops the refusals of that rule alone.
const HOOKS: &str = "tests/contracts/schemathesis_hooks.py";

/// Examples per operation and phase: enough to find what the checks look
/// for, few enough for CI's time budget.
const MAX_EXAMPLES: &str = "25";

/// The Schemathesis that `cargo xtask test` (through
/// `.ci/install-contract-tools`) installed.
fn schemathesis() -> anyhow::Result<PathBuf> {
    let installed = devinfra::contract_tools::schemathesis();
    if installed.is_file() {
        return Ok(installed);
    }
    bail!(
        "Schemathesis is not installed at {}: `cargo xtask test` installs it, or run \
         `.ci/install-contract-tools` (the pinned version from PyPI into .tools/venv)",
        installed.display()
    )
}

#[tokio::test]
async fn schemathesis_finds_nothing_in_any_service() -> anyhow::Result<()> {
    let schemathesis = schemathesis()?;
    let infra = TestInfra::acquire().await?;
    // The order API's patient test limits (as `OrdersApi` has them): the
    // fuzzer checks answers, not latency, and a busy machine is slow.
    let flow = TestFlow::start_with(&infra, 1, |config| {
        config.database.max_connections = 8;
        config.database.acquire_timeout = Duration::from_secs(30);
        config.http.request_timeout = Duration::from_secs(60);
    })
    .await?
    .with_consumer::<Invoicing>()
    .await?
    .with_consumer::<Shipping>()
    .await?;
    let topic = flow.topic();
    let consumers = [
        (INVOICING_SERVICE.name, flow.consumer::<Invoicing>()?),
        (SHIPPING_SERVICE.name, flow.consumer::<Shipping>()?),
    ];
    // One order for the consumers to hold, so that the stateful phase can
    // follow `items[].id` to `GET /invoices/{id}` and `GET /shipments/{id}`.
    let order_id = uuid::Uuid::now_v7();
    EventProducer::new(&infra, topic)?
        .send(&placed(order_id))
        .await?;
    for (name, service) in &consumers {
        let path = if *name == "invoicing-service" {
            "invoices"
        } else {
            "shipments"
        };
        wait_until(&format!("{name} to hold the order"), || async {
            let page = service
                .get_ok(&format!("/{path}?order_id={order_id}"))
                .await?;
            Ok(page["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty()))
        })
        .await?;
    }
    let mut targets = vec![("order-service", flow.order_base_url().to_owned())];
    targets.extend(
        consumers
            .iter()
            .map(|(name, service)| (*name, service.base_url().to_owned())),
    );
    let config = devinfra::workspace_root().join(CONFIG);
    let hooks = devinfra::workspace_root().join(HOOKS);
    let mut failed = Vec::new();
    for (name, base) in &targets {
        let output = tokio::process::Command::new(&schemathesis)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--mode", "all", "--max-examples", MAX_EXAMPLES])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--workers", "1", "--no-color", "--seed", "1"])
            .env("SCHEMATHESIS_HOOKS", &hooks)
            .current_dir(devinfra::workspace_root().join("target"))
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {}", schemathesis.display()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        println!("=== schemathesis against {name}\n{text}");
        if !output.status.success() {
            failed.push(format!(
                "{name}: schemathesis exited with {}\n{text}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    flow.stop().await?;
    if !failed.is_empty() {
        bail!("{}", failed.join("\n\n"));
    }
    Ok(())
}
