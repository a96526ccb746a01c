//! Keeps the Docker path honest on machines without a Docker engine.
//!
//! docker-compose.yml and the Dockerfile are not exercised here (no engine),
//! so these tests read them and check that they agree with the code: every
//! variable a service reads is set for it, every service has a port and a
//! healthcheck, every pulled image is pinned, the Kafka image runs the same
//! version as the native harness, and the Dockerfile builds exactly the
//! workspace's service binaries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use messaging::service::ConsumingService;
use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yml"))
        .expect("docker-compose.yml at the repo root");
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn environment(service: &Value) -> BTreeSet<String> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => map
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(|v| v.as_str())
            .map(|kv| kv.split('=').next().unwrap_or(kv).to_owned())
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// The three services and the variables each reads at start-up, from the code.
fn services() -> [(&'static str, &'static [&'static str]); 3] {
    [
        ("order-service", order_service::ENV_VARS),
        ("invoicing-service", invoicing_service::ENV_VARS),
        ("shipping-service", shipping_service::ENV_VARS),
    ]
}

#[test]
fn every_variable_a_service_reads_is_set_for_it_in_compose() {
    let compose = compose();
    for (name, vars) in services() {
        let set = environment(service(&compose, name));
        let missing: Vec<_> = vars.iter().filter(|v| !set.contains(**v)).collect();
        assert!(
            missing.is_empty(),
            "docker-compose.yml does not set {missing:?} for {name}"
        );
        let unknown: Vec<_> = set.iter().filter(|v| !vars.contains(&v.as_str())).collect();
        assert!(
            unknown.is_empty(),
            "docker-compose.yml sets {unknown:?} for {name}, which the service never reads"
        );
    }
}

#[test]
fn services_publish_their_ports_and_have_healthchecks() {
    let compose = compose();
    // The ports the services listen on by default, from the code.
    for (name, port) in [
        (
            "order-service",
            order_service::config::DEFAULT_HTTP_ADDR.port(),
        ),
        (
            "invoicing-service",
            invoicing_service::Invoicing::DEFAULT_PORT,
        ),
        ("shipping-service", shipping_service::Shipping::DEFAULT_PORT),
    ] {
        let svc = service(&compose, name);
        let ports: Vec<&str> = svc["ports"]
            .as_sequence()
            .map(|s| s.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
            "{name} does not publish container port {port}: {ports:?}"
        );
        let addr = environment(svc)
            .contains("HTTP_ADDR")
            .then(|| svc["environment"]["HTTP_ADDR"].as_str().unwrap_or(""));
        assert_eq!(
            addr,
            Some(format!("0.0.0.0:{port}").as_str()),
            "{name} must listen on 0.0.0.0:{port} inside its container"
        );
        assert!(
            svc.get("healthcheck").is_some(),
            "{name} has no healthcheck"
        );
    }
    for infra in ["kafka", "postgres"] {
        assert!(
            service(&compose, infra).get("healthcheck").is_some(),
            "{infra} has no healthcheck"
        );
    }
}

#[test]
fn every_pulled_image_is_pinned_to_a_version() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services mapping");
    for (name, svc) in services {
        let Some(image) = svc.get("image").and_then(Value::as_str) else {
            continue;
        };
        let name = name.as_str().unwrap_or("?");
        let tag = image.rsplit_once(':').map(|(_, tag)| tag);
        let built_here = svc.get("build").is_some() || image.ends_with(":local");
        if built_here {
            continue;
        }
        let pinned = tag.is_some_and(|t| {
            t.trim_start_matches('v')
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        });
        assert!(
            pinned,
            "{name} uses {image}, which is not pinned to a version"
        );
    }
}

#[test]
fn kafka_image_matches_the_native_harness_version() {
    let pom = std::fs::read_to_string(repo_root().join("infra/kafka/pom.xml")).expect("pom");
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .expect("pom.xml defines <kafka.version>")
        .trim()
        .to_owned();
    let compose = compose();
    for name in ["kafka", "kafka-init"] {
        let image = service(&compose, name)["image"].as_str().unwrap_or("");
        assert_eq!(
            image,
            format!("apache/kafka:{version}"),
            "{name} must run the version the native harness pins"
        );
    }
}

#[test]
fn testcontainers_start_the_images_compose_pins() {
    let compose = compose();
    for (service_name, (image, tag)) in [
        ("kafka", e2e::containers::KAFKA_IMAGE),
        ("postgres", e2e::containers::POSTGRES_IMAGE),
    ] {
        assert_eq!(
            service(&compose, service_name)["image"].as_str(),
            Some(format!("{image}:{tag}").as_str()),
            "the {service_name} container of the end-to-end tests must match docker-compose.yml"
        );
    }
}

#[test]
fn dockerfile_builds_exactly_the_workspace_services() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let built: BTreeSet<String> = dockerfile
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1].to_owned())
        .collect();
    let root = repo_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<String> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members")
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    // A service is a member with a binary that docker-compose runs.
    let compose = compose();
    let services: BTreeSet<String> = members
        .into_iter()
        .filter(|m| root.join(m).join("src/main.rs").exists())
        .filter(|m| compose["services"].get(m.as_str()).is_some())
        .collect();
    assert_eq!(
        built, services,
        "Dockerfile -p list differs from the workspace's services"
    );
    for name in &services {
        let command = service(&compose, name)["command"][0].as_str().unwrap_or("");
        assert_eq!(command, name, "{name} must run its own binary");
    }
}
