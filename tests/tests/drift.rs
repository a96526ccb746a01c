//! Keeps the Docker path honest without a Docker engine, and needs no
//! infrastructure at all: a test binary of its own (`cargo test -p e2e --test
//! drift`), apart from the end-to-end tests.
//!
//! `cargo xtask docker-check` runs docker-compose.yml, the Dockerfile and the
//! testcontainers path for real where an engine runs (CI starts one). These
//! tests need none: they read the files and check that they agree with the
//! code, which `cargo xtask` runs every day, on every machine:
//!
//! - every variable a service reads is set for it, and nothing else;
//! - every service publishes its port and has a healthcheck, every port is
//!   published on 127.0.0.1 only, as one fixed port (no range), on the port
//!   `cargo xtask` uses for the same thing, and Kafka advertises the address
//!   it is published on; extra shipping instances are shipping-service
//!   without a host port;
//! - the broker runs the broker settings of `cargo xtask` and of the tests'
//!   container, keeps its log on a named volume, and PostgreSQL has the
//!   native `max_connections`;
//! - PostgreSQL counts as healthy only over TCP, and long-running services
//!   restart on failure;
//! - every pulled image is pinned (kafka-ui is kafbat's), images built here
//!   are never pulled, the Kafka image runs the native harness's version, the
//!   test containers use the compose images;
//! - the Dockerfile builds exactly the workspace's services and needs no
//!   frontend image, and .dockerignore keeps everything large or private
//!   (build output, the native infrastructure's data and settings, the
//!   contract tools, whatever git ignores) out of the build context but
//!   everything the build needs in;
//! - the README's Docker section says which Compose it needs (and what
//!   Compose v1 really refuses), which ports are published, and runs the
//!   console consumer with Kafka 4's flags.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use devinfra::infra::{DEFAULT_KAFKA_PORT, DEFAULT_POSTGRES_PORT};
use globset::{GlobBuilder, GlobMatcher};
use platform::services;
use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Whether the derived sections are to be rewritten rather than checked:
/// `ORDERFLOW_BLESS=1`, which `cargo xtask new-consumer` sets once, after
/// it registered a service, to render compose's `kafka-init` commands and
/// the README's configuration table from the new declarations. Every other
/// run checks them.
fn blessing() -> bool {
    std::env::var_os("ORDERFLOW_BLESS").is_some()
}

/// Writes `text` over `path` (relative to the workspace root), in bless mode.
fn bless(path: &str, text: &str) {
    std::fs::write(repo_root().join(path), text).unwrap_or_else(|e| panic!("blessing {path}: {e}"));
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("{path} at the repo root: {e}"))
}

/// docker-compose.yml as Compose reads it: YAML merge keys (`<<: *anchor`) applied.
fn compose() -> Value {
    let mut compose: Value = serde_norway::from_str(&read("docker-compose.yml"))
        .expect("docker-compose.yml is valid YAML");
    compose
        .apply_merge()
        .expect("docker-compose.yml's merge keys name mappings");
    compose
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn services(compose: &Value) -> impl Iterator<Item = (&str, &Value)> {
    compose["services"]
        .as_mapping()
        .expect("services mapping")
        .iter()
        .map(|(name, svc)| (name.as_str().unwrap_or("?"), svc))
}

/// A YAML scalar as the string a container sees.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A service's environment, as name → value.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), scalar(v).unwrap_or_default())))
            .collect(),
        Some(Value::Sequence(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// A service's string list (`ports`, `volumes`, `command`).
fn strings<'a>(service: &'a Value, key: &str) -> Vec<&'a str> {
    service
        .get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// One `ports` entry in short syntax: `[ip:]host:container`.
#[derive(Debug, PartialEq, Eq)]
struct Published<'a> {
    ip: Option<&'a str>,
    host: &'a str,
    container: &'a str,
}

fn published(entry: &str) -> Published<'_> {
    let mut parts = entry.rsplitn(3, ':');
    let container = parts.next().unwrap_or("");
    let host = parts.next().unwrap_or("");
    Published {
        ip: parts.next(),
        host,
        container,
    }
}

/// The registered services' command lines: every setting each reads, declared once.
fn service_commands() -> Vec<(&'static str, clap::Command)> {
    e2e::commands::all()
        .into_iter()
        .map(|(service, command)| (service.name, command))
        .collect()
}

/// The registered services and the variables each reads at start-up, from their
/// declarations (fault-injection settings, hidden and compiled into test
/// builds only, are never part of a deployment).
fn service_variables() -> Vec<(&'static str, Vec<String>)> {
    service_commands()
        .into_iter()
        .map(|(name, command)| {
            let names = platform::config::variables(&command)
                .into_iter()
                .filter(|v| !v.hidden)
                .map(|v| v.name)
                .collect();
            (name, names)
        })
        .collect()
}

#[test]
fn every_variable_a_service_reads_is_set_for_it_in_compose() {
    let compose = compose();
    for (name, vars) in service_variables() {
        let set: BTreeSet<String> = environment(service(&compose, name)).into_keys().collect();
        let missing: Vec<_> = vars.iter().filter(|v| !set.contains(*v)).collect();
        assert!(
            missing.is_empty(),
            "docker-compose.yml does not set {missing:?} for {name}"
        );
        let unknown: Vec<_> = set
            .iter()
            .filter(|v| !vars.contains(v) && !STANDARD_OTEL_VARIABLES.contains(&v.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "docker-compose.yml sets {unknown:?} for {name}, which the service never reads"
        );
    }
}

/// The OpenTelemetry SDK's own variables the services honour (see
/// `platform::telemetry`): documented in the README, not declared settings.
const STANDARD_OTEL_VARIABLES: [&str; 2] = [
    platform::telemetry::OTLP_ENDPOINT_VAR,
    platform::telemetry::SERVICE_NAME_VAR,
];

#[test]
fn the_services_export_spans_to_jaeger_under_the_tracing_profile() {
    let compose = compose();
    for (name, _) in service_variables() {
        let env = environment(service(&compose, name));
        assert_eq!(
            env.get(platform::telemetry::SERVICE_NAME_VAR)
                .map(String::as_str),
            Some(name),
            "{name} must name itself in its spans"
        );
        assert_eq!(
            env.get(platform::telemetry::OTLP_ENDPOINT_VAR)
                .map(String::as_str),
            Some("${OTEL_EXPORTER_OTLP_ENDPOINT:-}"),
            "{name} exports only when the caller sets the endpoint"
        );
    }
    let jaeger = service(&compose, "jaeger");
    assert_eq!(
        jaeger
            .get("profiles")
            .and_then(Value::as_sequence)
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(strings(jaeger, "profiles"), ["tracing"]);
    assert_eq!(strings(jaeger, "ports"), ["127.0.0.1:16686:16686"]);
    let readme = read("README.md");
    assert!(
        readme.contains(
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318 docker compose --profile tracing up"
        ),
        "the README shows how to start the tracing profile"
    );
}

#[test]
fn services_publish_the_ports_cargo_xtask_uses_and_have_healthchecks() {
    let compose = compose();
    // The ports the services listen on by default, from the code.
    for facts in services::ALL {
        let (name, port) = (facts.name, facts.port);
        let svc = service(&compose, name);
        let ports: Vec<Published> = strings(svc, "ports").into_iter().map(published).collect();
        let own = ports
            .iter()
            .find(|p| p.container == port.to_string())
            .unwrap_or_else(|| panic!("{name} does not publish container port {port}: {ports:?}"));
        assert_eq!(
            own.host,
            facts.port.to_string(),
            "{name} must be published where `cargo xtask up` serves it"
        );
        assert_eq!(
            environment(svc).get("HTTP_ADDR").map(String::as_str),
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

/// The authority (`host[:port]`) of a URL, without user and password.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    rest.split(['/', '?']).next()?.rsplit('@').next()
}

#[test]
fn each_service_allows_every_name_it_is_reached_under_in_compose() {
    // A service answers only the Host values of its ALLOWED_HOSTS: in
    // compose it must list the names the host, its healthcheck and the
    // other containers use, or they are refused with 421.
    let compose = compose();
    for (name, _) in service_variables() {
        let svc = service(&compose, name);
        let env = environment(svc);
        let allowed = platform_web::web::security::parse_hosts(
            env.get("ALLOWED_HOSTS").map_or("", String::as_str),
        )
        .unwrap_or_else(|e| panic!("{name}'s ALLOWED_HOSTS: {e}"));
        let mut reached = Vec::new();
        for entry in strings(svc, "ports") {
            let range = published(entry).host;
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let (first, last): (u16, u16) = (first.parse().unwrap(), last.parse().unwrap());
            for port in first..=last {
                reached.push(format!("127.0.0.1:{port}"));
                reached.push(format!("localhost:{port}"));
            }
        }
        let check = svc["healthcheck"]["test"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        reached.extend(check.filter_map(authority).map(str::to_owned));
        for (_, other) in services(&compose) {
            for (variable, url) in environment(other) {
                let Some(host) = authority(&url) else {
                    continue;
                };
                let names_it = host.split(':').next() == Some(name);
                if variable.ends_with("_URL") && names_it {
                    reached.push(host.to_owned());
                }
            }
        }
        assert!(reached.len() > 2, "{name}: {reached:?}");
        for host in reached {
            assert!(
                allowed.allows(&host),
                "{name} is reached as {host} in compose, which its ALLOWED_HOSTS ({:?}) refuses",
                allowed.hosts()
            );
        }
    }
}

#[test]
fn every_port_is_published_on_loopback_only() {
    // Docker publishes around the host firewall; on 0.0.0.0 the local
    // development passwords would face the whole network.
    let compose = compose();
    for (name, svc) in services(&compose) {
        for entry in strings(svc, "ports") {
            assert_eq!(
                published(entry).ip,
                Some("127.0.0.1"),
                "{name} publishes {entry:?} beyond 127.0.0.1"
            );
        }
    }
}

#[test]
fn every_published_port_is_one_fixed_port() {
    // A host port range lets the engine pick any port of it for an instance,
    // round-robin: a recreated container lands elsewhere and the README's
    // URLs and the pages' links miss it.
    let compose = compose();
    for (name, svc) in services(&compose) {
        for entry in strings(svc, "ports") {
            let host = published(entry).host;
            assert!(
                host.parse::<u16>().is_ok(),
                "{name} publishes {entry:?}: the host side must be one port, not {host:?}"
            );
        }
    }
}

#[test]
fn extra_shipping_instances_are_the_shipping_service_without_a_host_port() {
    let compose = compose();
    let shipping = service(&compose, "shipping-service");
    let extra = service(&compose, "shipping-service-extra");
    assert_eq!(
        strings(extra, "profiles"),
        ["scale"],
        "extra instances are optional"
    );
    assert!(
        strings(extra, "ports").is_empty(),
        "scaled instances cannot share a fixed host port"
    );
    let mapping = |svc: &Value| {
        let mut map = svc.as_mapping().cloned().unwrap_or_default();
        for key in ["profiles", "ports"] {
            map.remove(key);
        }
        map
    };
    assert_eq!(
        mapping(extra),
        mapping(shipping),
        "shipping-service-extra must be shipping-service (same image, settings, group) apart from its profile and ports"
    );
    assert_eq!(
        environment(extra).get("KAFKA_GROUP_ID").map(String::as_str),
        Some("shipping"),
        "extra instances share shipping's consumer group, so they split its partitions"
    );
}

#[test]
fn kafka_and_postgresql_are_published_where_the_native_ones_listen() {
    let compose = compose();
    let kafka = service(&compose, "kafka");
    let ports = strings(kafka, "ports");
    assert_eq!(ports.len(), 1, "kafka publishes one listener: {ports:?}");
    let external = published(ports[0]);
    assert_eq!(external.host, DEFAULT_KAFKA_PORT.to_string());
    // Clients are sent to the advertised address: it must be the published one.
    let env = environment(kafka);
    let advertised = env
        .get("KAFKA_ADVERTISED_LISTENERS")
        .map(String::as_str)
        .unwrap_or("");
    let listeners = env.get("KAFKA_LISTENERS").map(String::as_str).unwrap_or("");
    assert!(
        advertised
            .split(',')
            .any(|l| l == format!("EXTERNAL://127.0.0.1:{DEFAULT_KAFKA_PORT}")),
        "kafka advertises {advertised:?}, not the address it is published on"
    );
    assert!(
        listeners
            .split(',')
            .any(|l| l == format!("EXTERNAL://:{}", external.container)),
        "the published container port {} is not the EXTERNAL listener: {listeners:?}",
        external.container
    );

    let postgres = strings(service(&compose, "postgres"), "ports");
    assert_eq!(postgres.len(), 1, "{postgres:?}");
    let postgres = published(postgres[0]);
    assert_eq!(postgres.host, DEFAULT_POSTGRES_PORT.to_string());
    assert_ne!(
        postgres.host, "5432",
        "5432 belongs to the PostgreSQL the README's prerequisites install"
    );
    assert_eq!(postgres.container, "5432");
}

#[test]
fn the_compose_broker_runs_the_broker_settings_of_cargo_xtask() {
    let compose = compose();
    let env = environment(service(&compose, "kafka"));
    for (name, value) in devinfra::kafka::single_node_image_env(&["INTERNAL", "EXTERNAL"]) {
        assert_eq!(
            env.get(&name),
            Some(&value),
            "kafka's {name} differs from tools/devinfra/src/kafka/settings.rs"
        );
    }
}

/// Where kafka and kafka-init find the administrator's client properties.
const ADMIN_PROPERTIES: &str = "/etc/orderflow/admin.properties";

#[test]
fn kafka_init_provisions_the_declared_topics_principals_and_acls() {
    use devinfra::kafka::access;
    let compose = compose();
    let init = service(&compose, "kafka-init");
    let script = init["command"][0].as_str().unwrap_or_default();
    let commands: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "set -e" && !l.starts_with('#'))
        .collect();
    let partitions = shared_events::topics::ORDERS_PARTITIONS;
    let declared = access::init_commands("kafka:9092", ADMIN_PROPERTIES, partitions, 1);
    if blessing() && commands != declared {
        let file = read("docker-compose.yml");
        let (first, last) = (commands[0], commands[commands.len() - 1]);
        let start = file.find(first).expect("kafka-init's first command");
        let start = file[..start].rfind('\n').map_or(0, |i| i + 1);
        let end = file.find(last).expect("kafka-init's last command") + last.len();
        let indent = "        ";
        let rendered: Vec<String> = declared.iter().map(|c| format!("{indent}{c}")).collect();
        bless(
            "docker-compose.yml",
            &format!("{}{}{}", &file[..start], rendered.join("\n"), &file[end..]),
        );
        return;
    }
    assert_eq!(
        commands, declared,
        "kafka-init's commands differ from tools/devinfra/src/kafka/access.rs (init_commands)"
    );
    let mounted = format!("./infra/kafka/admin.properties:{ADMIN_PROPERTIES}:ro");
    for name in ["kafka", "kafka-init"] {
        assert!(
            strings(service(&compose, name), "volumes").contains(&mounted.as_str()),
            "{name} mounts the administrator's properties"
        );
    }
    assert_eq!(
        read("infra/kafka/admin.properties"),
        access::admin_client_properties(),
        "infra/kafka/admin.properties is what access::admin_client_properties renders"
    );
}

#[test]
fn each_service_authenticates_as_its_own_principal_in_compose() {
    let compose = compose();
    for facts in platform::services::ALL {
        let env = environment(service(&compose, facts.name));
        assert_eq!(
            env.get("KAFKA_SASL_USERNAME").map(String::as_str),
            Some(facts.name)
        );
        assert_eq!(
            env.get("KAFKA_SASL_MECHANISM").map(String::as_str),
            Some(devinfra::kafka::access::SCRAM_MECHANISM)
        );
        let principal =
            devinfra::kafka::access::principals(&devinfra::kafka::access::Scope::flow())
                .into_iter()
                .find(|p| p.name == facts.name)
                .expect("every service is a declared principal");
        assert_eq!(
            env.get("KAFKA_SASL_PASSWORD"),
            Some(&principal.password),
            "{}'s password is the one kafka-init creates",
            facts.name
        );
    }
}

#[test]
fn the_broker_keeps_its_log_on_a_named_volume() {
    // Configured from the environment, the apache/kafka image leaves log.dirs
    // at /tmp/kafka-logs. /var/lib/kafka/data exists in the image and belongs
    // to its user; a volume on a path the image lacks would be root's.
    const IMAGE_DATA_DIR: &str = "/var/lib/kafka/data";
    let compose = compose();
    let kafka = service(&compose, "kafka");
    assert_eq!(
        environment(kafka).get("KAFKA_LOG_DIRS").map(String::as_str),
        Some(IMAGE_DATA_DIR)
    );
    let volume = strings(kafka, "volumes")
        .into_iter()
        .find_map(|v| v.strip_suffix(&format!(":{IMAGE_DATA_DIR}")))
        .expect("a volume mounted on the log directory");
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{volume} is not a named volume of docker-compose.yml"
    );
}

#[test]
fn compose_postgresql_allows_the_native_max_connections() {
    let compose = compose();
    let command = strings(service(&compose, "postgres"), "command");
    let setting = format!("max_connections={}", devinfra::postgres::MAX_CONNECTIONS);
    assert!(
        command.windows(2).any(|w| w == ["-c", setting.as_str()]),
        "postgres runs {command:?}, not -c {setting}"
    );
}

#[test]
fn postgresql_is_healthy_only_over_tcp_and_services_restart_on_failure() {
    let compose = compose();
    let check = strings(&service(&compose, "postgres")["healthcheck"], "test").join(" ");
    for client in ["pg_isready", "psql"] {
        let call = check
            .split("&&")
            .find(|part| part.contains(client))
            .unwrap_or_else(|| panic!("the healthcheck does not run {client}: {check}"));
        assert!(
            call.contains("-h 127.0.0.1"),
            "{client} must connect over TCP (the init server listens on the socket only): {call}"
        );
    }
    for (name, svc) in services(&compose) {
        // kafka-init runs once; the services wait for it to succeed.
        if name == "kafka-init" {
            continue;
        }
        assert_eq!(
            svc.get("restart").and_then(Value::as_str),
            Some("on-failure"),
            "{name} does not restart on failure"
        );
    }
}

/// The tag of an image reference (`[registry[:port]/]path[:tag][@digest]`).
fn tag_of(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Pinned: a digest, or a tag that is a version (`1.2`, `v1.5.0`, `15.10-bookworm`).
fn is_pinned(image: &str) -> bool {
    image.contains("@sha256:")
        || tag_of(image).is_some_and(|tag| {
            tag.trim_start_matches('v')
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
}

fn built_here(svc: &Value) -> bool {
    svc.get("build").is_some()
        || svc
            .get("image")
            .and_then(Value::as_str)
            .is_some_and(|i| tag_of(i) == Some("local"))
}

#[test]
fn the_pinning_rule_reads_registries_tags_and_digests() {
    for pinned in [
        "ghcr.io/kafbat/kafka-ui:v1.5.0",
        "apache/kafka:4.4.0",
        "postgres:15.10-bookworm",
        "registry.example:5000/team/img:2.1",
        "img@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(is_pinned(pinned), "{pinned}");
    }
    for floating in [
        "ghcr.io/kafbat/kafka-ui",
        "ghcr.io/kafbat/kafka-ui:main",
        "apache/kafka:latest",
        "localhost:5000/img",
        "registry.example:5000/team/img",
    ] {
        assert!(!is_pinned(floating), "{floating}");
    }
}

#[test]
fn every_pulled_image_is_pinned_and_the_ui_is_kafbats() {
    let compose = compose();
    for (name, svc) in services(&compose) {
        let Some(image) = svc.get("image").and_then(Value::as_str) else {
            continue;
        };
        if built_here(svc) {
            continue;
        }
        assert!(
            is_pinned(image),
            "{name} uses {image}, which is not pinned to a version"
        );
        assert!(
            !image.starts_with("provectuslabs/"),
            "{name}: provectuslabs/kafka-ui is unmaintained; use ghcr.io/kafbat/kafka-ui"
        );
    }
    let ui = service(&compose, "kafka-ui")["image"]
        .as_str()
        .unwrap_or("");
    assert!(ui.starts_with("ghcr.io/kafbat/kafka-ui:"), "{ui}");
}

#[test]
fn images_built_here_are_never_pulled() {
    // `docker compose pull` fails on an image no registry has, unless the
    // service says it is never pulled.
    let compose = compose();
    let built: BTreeSet<&str> = services(&compose)
        .filter(|(_, svc)| svc.get("build").is_some())
        .filter_map(|(_, svc)| svc.get("image").and_then(Value::as_str))
        .collect();
    for (name, svc) in services(&compose).filter(|(_, svc)| built_here(svc)) {
        let policy = svc.get("pull_policy").and_then(Value::as_str);
        assert!(
            matches!(policy, Some("never" | "build")),
            "{name} is built here but has pull_policy {policy:?}"
        );
        let image = svc.get("image").and_then(Value::as_str).unwrap_or("");
        assert!(
            built.contains(image),
            "{name} runs {image}, which no service builds"
        );
    }
}

#[test]
fn kafka_image_matches_the_native_harness_version() {
    let version = devinfra::kafka::pinned_version(&read("infra/kafka/pom.xml"))
        .expect("pom.xml defines <kafka.version>");
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
    for (service_name, image) in [
        ("kafka", e2e::containers::kafka_request().descriptor()),
        ("postgres", e2e::containers::postgres_request().descriptor()),
    ] {
        assert_eq!(
            service(&compose, service_name)["image"].as_str(),
            Some(image.as_str()),
            "the {service_name} container of the end-to-end tests must match docker-compose.yml"
        );
    }
}

/// The workspace's members, from the root manifest.
fn workspace_members() -> Vec<String> {
    read("Cargo.toml")
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members")
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn dockerfile_builds_exactly_the_workspace_services() {
    let dockerfile = read("Dockerfile");
    let built: BTreeSet<String> = dockerfile
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1].to_owned())
        .collect();
    let root = repo_root();
    // A service is a member with a binary that docker-compose runs.
    let compose = compose();
    let services: BTreeSet<String> = workspace_members()
        .into_iter()
        .filter(|m| root.join(m).join("src/main.rs").exists())
        .filter(|m| compose["services"].get(m.as_str()).is_some())
        .collect();
    assert_eq!(
        built, services,
        "Dockerfile -p list differs from the workspace's services"
    );
    let registered: BTreeSet<String> = platform::services::ALL
        .iter()
        .map(|s| s.name.to_owned())
        .collect();
    assert_eq!(
        services, registered,
        "the services compose runs differ from the registry (platform::services::ALL)"
    );
    let runtime = dockerfile.split("\nFROM ").last().expect("a runtime stage");
    for name in &registered {
        assert!(
            dockerfile.contains(&format!("target/release/{name}")),
            "the Dockerfile's builder stage does not install {name}"
        );
        assert!(
            runtime.contains(&format!("/app/bin/{name}")),
            "the Dockerfile's runtime stage does not copy {name}"
        );
    }
    for name in &services {
        let command = service(&compose, name)["command"][0].as_str().unwrap_or("");
        assert_eq!(command, name, "{name} must run its own binary");
    }
}

#[test]
fn compose_postgresql_creates_each_registered_database_and_role() {
    // What `cargo xtask infra up` provisions from the registry
    // (devinfra::postgres), docker-compose's PostgreSQL runs at its first start.
    let init: Vec<String> = read("infra/postgres/init.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    let mut expected = Vec::new();
    for statement in [
        "CREATE ROLE {} LOGIN PASSWORD '{}';",
        "CREATE DATABASE {} OWNER {};",
        "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC;",
    ] {
        for service in services::ALL {
            let database = service.database;
            expected.push(
                statement
                    .replacen("{}", database, 1)
                    .replacen("{}", service.role(), 1),
            );
        }
    }
    assert_eq!(
        init, expected,
        "infra/postgres/init.sql differs from the registry (platform::services::ALL)"
    );
    let compose = compose();
    assert!(
        strings(service(&compose, "postgres"), "volumes")
            .iter()
            .any(|v| v.starts_with("./infra/postgres/init.sql:")),
        "compose's PostgreSQL runs infra/postgres/init.sql"
    );
}

/// The patterns of a `.dockerignore`, with Docker's meaning: relative to the
/// context root, `*` within one path segment, `**` across segments, a match
/// of a directory covers everything in it, and the last matching pattern wins
/// (`!` re-includes).
struct DockerIgnore(Vec<(GlobMatcher, bool)>);

impl DockerIgnore {
    fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (keep, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .unwrap_or_else(|e| panic!(".dockerignore pattern {pattern:?}: {e}"));
                (glob.compile_matcher(), !keep)
            })
            .collect();
        DockerIgnore(rules)
    }

    /// Whether `path` (relative, `/`-separated) stays out of the build context.
    fn excludes(&self, path: &str) -> bool {
        let mut covering = vec![path];
        let mut rest = path;
        while let Some((parent, _)) = rest.rsplit_once('/') {
            covering.push(parent);
            rest = parent;
        }
        self.0.iter().fold(false, |excluded, (glob, exclude)| {
            if covering.iter().any(|p| glob.is_match(p)) {
                *exclude
            } else {
                excluded
            }
        })
    }
}

/// Every file under `dir` (relative to the repo root), except build output.
fn files_under(dir: &str, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(repo_root().join(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{dir}/{name}");
        if entry.path().is_dir() {
            if name != "target" {
                files_under(&path, found);
            }
        } else {
            found.push(path);
        }
    }
}

#[test]
fn the_matcher_follows_dockers_rules() {
    let ignore = DockerIgnore::parse("target\n**/target\n*.md\n!README.md\n/.infra/\n");
    assert!(ignore.excludes("target/release/order-service"));
    assert!(ignore.excludes("xtask/target/debug/x"));
    assert!(ignore.excludes(".infra/postgres/data/PG_VERSION"));
    assert!(ignore.excludes("NOTES.md"));
    assert!(!ignore.excludes("README.md"), "! re-includes");
    assert!(
        !ignore.excludes("docs/NOTES.md"),
        "* stays within one segment"
    );
    assert!(!ignore.excludes("order-service/src/main.rs"));

    let allowlist = DockerIgnore::parse("*\n!Cargo.toml\n!tools/client\n**/target\n");
    assert!(ignore_all_but(&allowlist, "Cargo.toml", "Cargo.lock"));
    assert!(ignore_all_but(
        &allowlist,
        "tools/client/src/lib.rs",
        "tools/chaos/src/lib.rs"
    ));
    assert!(allowlist.excludes("tools/client/target/debug/x"));
}

/// Whether `ignore` lets `kept` into the context and keeps `dropped` out.
fn ignore_all_but(ignore: &DockerIgnore, kept: &str, dropped: &str) -> bool {
    !ignore.excludes(kept) && ignore.excludes(dropped)
}

#[test]
fn the_build_context_keeps_the_sources_and_leaves_out_everything_large_or_private() {
    let ignore = DockerIgnore::parse(&read(".dockerignore"));
    // Large or private things a checkout gathers: build output, the native
    // infrastructure's data and settings, the contract tools (`.tools/`,
    // hundreds of MB), version control, environment files, scratch.
    let mut left_out: Vec<String> = [
        "target/release/order-service",
        "order-service/target/debug/x",
        "tools/chaos/target/debug/x",
        ".infra/postgres/data/PG_VERSION",
        ".infra-settings.env",
        ".tools/venv/bin/python",
        ".tools/npm/lib/node_modules/x/package.json",
        ".git/HEAD",
        ".env",
        ".env.local",
        ".idea/workspace.xml",
        "order-service/src/main.rs.swp",
        "tmp/notes.txt",
        "scratch/core.1234",
        "docs/BENCHMARKS.md",
        "docs/screenshots/orders.png",
        "docs/benchmarks/latency.svg",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    // ...and everything git is told to ignore.
    left_out.extend(
        read(".gitignore")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .map(|l| format!("{}/x", l.trim_matches('/').replace('*', "x"))),
    );
    let let_in: Vec<&String> = left_out.iter().filter(|p| !ignore.excludes(p)).collect();
    assert!(
        let_in.is_empty(),
        ".dockerignore lets these into the build context: {let_in:?}"
    );

    // What the Dockerfile's context copies must hold: the manifests, every
    // member's sources (include_str! and sqlx::migrate! read beside them),
    // cargo's configuration, and any path a COPY names.
    let mut needed: Vec<String> = ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"]
        .iter()
        .map(|p| (*p).to_owned())
        .filter(|p| repo_root().join(p).exists())
        .collect();
    for member in workspace_members() {
        files_under(&member, &mut needed);
    }
    for line in read("Dockerfile").lines().map(str::trim) {
        let Some(args) = line.strip_prefix("COPY ") else {
            continue;
        };
        if args.contains("--from=") {
            continue;
        }
        let paths: Vec<&str> = args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        let sources = &paths[..paths.len().saturating_sub(1)];
        needed.extend(
            sources
                .iter()
                .filter(|s| **s != ".")
                .map(|s| s.trim_start_matches("./").to_owned()),
        );
    }
    assert!(needed.iter().any(|p| p == "order-service/src/main.rs"));
    let dropped: Vec<&String> = needed.iter().filter(|p| ignore.excludes(p)).collect();
    assert!(
        dropped.is_empty(),
        ".dockerignore keeps out what the build needs: {dropped:?}"
    );
}

/// The README's section on Docker, up to the next section of its level.
fn readme_docker_section() -> String {
    let readme = read("README.md");
    let start = readme
        .find("\n## With Docker")
        .expect("README has a \"## With Docker\" section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_owned()
}

#[test]
fn the_readme_runs_the_kafka_tools_logged_in_and_with_kafka_4_flags() {
    let section = readme_docker_section();
    // Commands continue over lines ending in '\'.
    let commands = section.replace("\\\n", " ");
    let tools: Vec<&str> = commands
        .lines()
        .filter(|l| l.contains("/opt/kafka/bin/kafka-"))
        .collect();
    assert!(
        tools
            .iter()
            .any(|c| c.contains("kafka-console-consumer.sh")),
        "no console-consumer example"
    );
    for command in tools {
        assert!(
            command.contains("--bootstrap-server kafka:9092"),
            "inside the compose network the broker is kafka:9092: {command}"
        );
        // Every tool, not only the console consumer: the consumer-groups
        // example without it got no answer from the broker.
        assert!(
            command.contains(&format!("--command-config {ADMIN_PROPERTIES}")),
            "the broker takes authenticated clients only: {command}"
        );
        if command.contains("kafka-console-consumer.sh") {
            assert!(
                !command.contains("--property "),
                "Kafka 4 deprecates --property for the consumer's formatter: {command}"
            );
            assert!(command.contains("--formatter-property "), "{command}");
        }
    }
}

#[test]
fn the_readme_names_the_compose_it_needs_and_the_ports_it_publishes() {
    let section = readme_docker_section();
    if compose().get("name").is_some() {
        assert!(
            section.contains("Compose v2"),
            "docker-compose.yml has a top-level name:, which Compose v1 refuses; the README must say v2 is needed"
        );
    }
    let compose = compose();
    for (name, svc) in services(&compose) {
        for entry in strings(svc, "ports") {
            let p = published(entry);
            let address = format!("127.0.0.1:{}", p.host);
            assert!(
                section.contains(&address),
                "the README's Docker section does not mention {address}, where {name} is published"
            );
        }
    }
}

/// What Debian's Compose v1 (`docker-compose` 1.29.2, bookworm's package)
/// refuses in docker-compose.yml: the top-level `name:` (its schema has no
/// such key). It accepts `pull_policy`, `never` included, and the rest.
const COMPOSE_V1_REFUSES: &[&str] = &["name:"];

/// The keys a text says Compose v1 refuses: the backticked words after
/// "refuses" in each sentence that names v1.
fn said_refused_by_compose_v1(text: &str) -> Vec<String> {
    let prose = text
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim())
        .collect::<Vec<_>>()
        .join(" ");
    prose
        .split(". ")
        .filter(|sentence| sentence.contains("v1"))
        .filter_map(|sentence| sentence.split_once("refuses").map(|(_, after)| after))
        .flat_map(|after| after.split('`').skip(1).step_by(2).map(str::to_owned))
        .collect()
}

#[test]
fn the_docs_say_compose_v1_refuses_only_what_it_refuses() {
    let compose_file = read("docker-compose.yml");
    let header: String = compose_file
        .lines()
        .take_while(|l| l.starts_with('#') || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    for (place, text) in [
        ("the README's Docker section", readme_docker_section()),
        ("docker-compose.yml's header", header),
    ] {
        let said = said_refused_by_compose_v1(&text);
        assert!(
            !said.is_empty(),
            "{place} no longer says why Compose v2 is needed"
        );
        for key in &said {
            assert!(
                COMPOSE_V1_REFUSES.contains(&key.as_str()),
                "{place} says Compose v1 refuses `{key}`; v1.29.2 refuses only {COMPOSE_V1_REFUSES:?}"
            );
        }
    }
    assert_eq!(
        said_refused_by_compose_v1(
            "Compose v1 (`docker-compose`) refuses the top-level `name:` and `pull_policy`."
        ),
        ["name:", "pull_policy"]
    );
}

#[test]
fn the_dockerfile_builds_without_a_frontend_image() {
    // A `# syntax=` line makes BuildKit pull that frontend image before it
    // reads the rest: no build without a registry. The built-in frontend
    // reads everything this Dockerfile uses.
    let dockerfile = read("Dockerfile");
    let directive = dockerfile
        .lines()
        .take_while(|l| l.starts_with('#'))
        .find(|l| {
            l.trim_start_matches('#')
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("syntax")
        });
    assert_eq!(directive, None, "the Dockerfile names a frontend image");
}

/// The README's configuration table, rendered from the services'
/// declarations: one row per variable, the services that read it, its
/// default (per service where they differ) and its help text.
fn configuration_table() -> String {
    struct Row {
        name: String,
        readers: Vec<(&'static str, Option<String>)>,
        help: String,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (service, command) in e2e::commands::all() {
        let short = service.short;
        for variable in platform::config::variables(&command) {
            if variable.hidden {
                continue;
            }
            match rows.iter_mut().find(|r| r.name == variable.name) {
                Some(row) => {
                    assert_eq!(
                        row.help, variable.help,
                        "{} has different help texts in different services",
                        variable.name
                    );
                    row.readers.push((short, variable.default));
                }
                None => rows.push(Row {
                    name: variable.name,
                    readers: vec![(short, variable.default)],
                    help: variable.help,
                }),
            }
        }
    }
    let all: Vec<&str> = services::ALL.iter().map(|s| s.short).collect();
    let consumers: Vec<&str> = services::consumers().map(|s| s.short).collect();
    let who = |shorts: &[&str]| {
        if shorts == all.as_slice() {
            "all".to_owned()
        } else if shorts == consumers.as_slice() {
            "consumers".to_owned()
        } else {
            shorts.join(", ")
        }
    };
    let shown = |default: &Option<String>| {
        default
            .as_deref()
            .map_or_else(|| "(unset)".to_owned(), |d| format!("`{d}`"))
    };
    let mut table =
        String::from("| Variable | Services | Default | Meaning |\n|---|---|---|---|\n");
    for row in rows {
        let shorts: Vec<&str> = row.readers.iter().map(|(s, _)| *s).collect();
        // Readers grouped by default, in order of first appearance.
        let mut groups: Vec<(Option<String>, Vec<&str>)> = Vec::new();
        for (short, default) in &row.readers {
            match groups.iter_mut().find(|(d, _)| d == default) {
                Some((_, members)) => members.push(short),
                None => groups.push((default.clone(), vec![short])),
            }
        }
        let default = if groups.len() == 1 {
            shown(&groups[0].0)
        } else {
            groups
                .iter()
                .map(|(d, members)| format!("{} ({})", shown(d), who(members)))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.name,
            who(&shorts),
            default,
            row.help
        ));
    }
    table
}

#[test]
fn the_readme_configuration_table_is_what_the_services_declare() {
    let table = configuration_table();
    let readme = read("README.md");
    let header = "| Variable | Services | Default | Meaning |";
    if blessing() && !readme.contains(&table) {
        let start = readme
            .find(header)
            .expect("the README's configuration table");
        let end = readme[start..]
            .find("\n\n")
            .map_or(readme.len(), |i| start + i + 1);
        bless(
            "README.md",
            &format!("{}{table}{}", &readme[..start], &readme[end..]),
        );
        return;
    }
    assert!(
        read("README.md").contains(&table),
        "README.md's configuration table differs from the services' declarations; it should read:\n\n{table}"
    );
}
