//! Keeps the Kubernetes chart (`deploy/orderflow`) equal to the code.
//!
//! No cluster is reachable where this runs, so, as the docker-compose drift
//! tests do for compose, these tests read what the chart renders
//! (`helm template`, for the default values and for the scaled-out values
//! file) and check it against the declarations the services run on:
//!
//! - every setting a service declares (its clap arguments, what `--help`
//!   lists) is set in its Deployment, and nothing it does not read; the
//!   chart's tuning values are the declared defaults;
//! - the KafkaTopics are the topics the services use, with the partition
//!   count the services are told, and a retention the dedup window covers;
//! - every principal has exactly the ACLs of its role;
//! - the Deployments run the workspace's services from the image the
//!   Dockerfile builds, on the PostgreSQL major version of the other stacks;
//! - a consumer never gets more replicas than the topic has partitions, and
//!   each service's pods reach only what they need on the network.
//!
//! They need helm from `.ci/install-chart-tools` (as the Schemathesis test
//! needs `.ci/install-contract-tools`), and no infrastructure.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use platform::services::{self, INVOICING_SERVICE, ORDER_SERVICE, SHIPPING_SERVICE, ServiceFacts};
use serde::Deserialize;
use serde_norway::Value;

const CHART: &str = "deploy/orderflow";
const SCALED_OUT: &str = "deploy/orderflow/ci/scaled-out-values.yaml";

fn read(path: &str) -> String {
    std::fs::read_to_string(devinfra::workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path} at the repo root: {e}"))
}

/// `helm template` of the chart with `args` (values files, `--set`s): the
/// rendered objects, or helm's error message.
fn try_render(args: &[&str]) -> Result<Vec<Value>, String> {
    let helm = devinfra::workspace_root().join(".tools/chart/bin/helm");
    assert!(
        helm.is_file(),
        "{} is missing: run .ci/install-chart-tools (builds helm from the Go module proxy)",
        helm.display()
    );
    let output = Command::new(&helm)
        .current_dir(devinfra::workspace_root())
        .args(["template", "orderflow", CHART, "--namespace", "orderflow"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", helm.display()));
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8(output.stdout).expect("helm prints UTF-8");
    Ok(serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("helm renders valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect())
}

fn render(args: &[&str]) -> Vec<Value> {
    try_render(args).unwrap_or_else(|e| panic!("helm template {args:?} failed: {e}"))
}

/// The chart rendered with its default values, and scaled out.
fn renderings() -> [(&'static str, Vec<Value>); 2] {
    [
        ("default values", render(&[])),
        ("scaled-out values", render(&["-f", SCALED_OUT])),
    ]
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects
        .iter()
        .filter(move |o| o["kind"].as_str() == Some(kind))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The Deployment of `service`: its one container.
fn container<'a>(objects: &'a [Value], service: &ServiceFacts) -> &'a Value {
    let deployment = of_kind(objects, "Deployment")
        .find(|d| d["metadata"]["labels"]["app.kubernetes.io/name"].as_str() == Some(service.name))
        .unwrap_or_else(|| panic!("no Deployment for {}", service.name));
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "{}: one container", service.name);
    &containers[0]
}

/// A container's environment: name → value (`None` when from a Secret).
fn environment(container: &Value) -> BTreeMap<String, Option<String>> {
    container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (text(&e["name"]), e.get("value").map(text)))
        .collect()
}

/// The registered services with their declared command lines.
fn service_commands() -> Vec<(&'static ServiceFacts, clap::Command)> {
    e2e::commands::all()
}

/// The settings a deployment may set: every declared, non-hidden one
/// (fault injection is compiled into test builds only).
fn declared(command: &clap::Command) -> Vec<platform::config::Variable> {
    platform::config::variables(command)
        .into_iter()
        .filter(|v| !v.hidden)
        .collect()
}

/// The OpenTelemetry SDK's variable that names the service in its spans:
/// honoured by the services, not a setting of ours (README, Traces).
const OTEL_SERVICE_NAME: &str = platform::telemetry::SERVICE_NAME_VAR;

#[test]
fn every_setting_a_service_declares_is_set_in_its_deployment_and_nothing_else() {
    for (values, objects) in renderings() {
        for (service, command) in service_commands() {
            let set: BTreeSet<String> = environment(container(&objects, service))
                .into_keys()
                .collect();
            let mut expected: BTreeSet<String> =
                declared(&command).into_iter().map(|v| v.name).collect();
            expected.insert(OTEL_SERVICE_NAME.to_owned());
            let missing: Vec<_> = expected.difference(&set).collect();
            let unknown: Vec<_> = set.difference(&expected).collect();
            assert!(
                missing.is_empty() && unknown.is_empty(),
                "{} ({values}): the chart does not set {missing:?} and sets {unknown:?}, which it never reads",
                service.name
            );
        }
    }
}

/// The chart's values.yaml, and a service's block in it.
fn values() -> Value {
    serde_norway::from_str(&read(&format!("{CHART}/values.yaml"))).expect("values.yaml is YAML")
}

#[test]
fn the_charts_tuning_values_are_the_defaults_the_services_declare() {
    let values = values();
    for (service, command) in service_commands() {
        let settings = values["services"][service.short]["settings"]
            .as_mapping()
            .unwrap_or_else(|| panic!("values.yaml has no services.{}.settings", service.short));
        assert!(!settings.is_empty());
        let declared: BTreeMap<String, Option<String>> = declared(&command)
            .into_iter()
            .map(|v| (v.name, v.default))
            .collect();
        for (name, value) in settings {
            let name = text(name);
            let default = declared.get(&name).unwrap_or_else(|| {
                panic!("{}: {name} is not a setting of the service", service.name)
            });
            assert_eq!(
                Some(text(value)),
                *default,
                "{}: values.yaml's {name} is not the declared default (`{} --help`)",
                service.name,
                service.name
            );
        }
    }
}

/// A rendered KafkaTopic: name, partitions, replicas, its config.
fn topics(objects: &[Value]) -> BTreeMap<String, &Value> {
    of_kind(objects, "KafkaTopic")
        .map(|t| (text(&t["spec"]["topicName"]), &t["spec"]))
        .collect()
}

fn consumer_groups() -> Vec<&'static str> {
    services::ALL
        .iter()
        .filter_map(|s| s.consumer_group)
        .collect()
}

#[test]
fn the_chart_declares_the_topics_the_services_use_with_their_partitions() {
    let orders = shared_events::topics::ORDERS;
    let mut expected = BTreeSet::from([orders.to_owned()]);
    for group in consumer_groups() {
        expected.insert(shared_events::topics::dead_letter(orders, group));
        expected.insert(shared_events::topics::retry(orders, group));
    }
    // The dedup window must outlive any redelivery the topic can make.
    let dedup_hours: i64 = declared(&consumer_kit::command::<invoicing_service::Invoicing>())
        .into_iter()
        .find(|v| v.name == "PROCESSED_RETENTION_HOURS")
        .and_then(|v| v.default)
        .and_then(|d| d.parse().ok())
        .expect("PROCESSED_RETENTION_HOURS has a numeric default");

    for (values, objects) in renderings() {
        let topics = topics(&objects);
        assert_eq!(
            topics.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{values}: the KafkaTopics"
        );
        let partitions = text(&topics[orders]["partitions"]);
        if values == "default values" {
            assert_eq!(
                partitions,
                shared_events::topics::ORDERS_PARTITIONS.to_string()
            );
        }
        for (name, spec) in &topics {
            assert_eq!(
                text(&spec["partitions"]),
                partitions,
                "{values}: {name} has the orders topic's partition count"
            );
            assert_eq!(text(&spec["replicas"]), "3", "{values}: {name}");
            assert_eq!(
                text(&spec["config"]["min.insync.replicas"]),
                "2",
                "{values}: {name}"
            );
        }
        let retention_ms: i64 = text(&topics[orders]["config"]["retention.ms"])
            .parse()
            .expect("retention.ms is a number");
        assert!(
            retention_ms <= dedup_hours * 3_600_000,
            "{values}: {orders} keeps records {retention_ms} ms, longer than the consumers' dedup window ({dedup_hours} h)"
        );
        for (service, _) in service_commands() {
            let env = environment(container(&objects, service));
            let value = |name: &str| env.get(name).cloned().flatten();
            assert_eq!(
                value("ORDERS_TOPIC").as_deref(),
                Some(orders),
                "{}",
                service.name
            );
            assert_eq!(
                value("ORDERS_TOPIC_PARTITIONS"),
                Some(partitions.clone()),
                "{} ({values}) would create topics with another partition count",
                service.name
            );
            assert_eq!(
                value("KAFKA_GROUP_ID").as_deref(),
                service.consumer_group,
                "{}: its consumer group",
                service.name
            );
        }
    }
}

/// One ACL in a comparable form: principal, resource type, resource name,
/// pattern type, operation.
type Acl = (String, String, String, String, String);

fn rendered_acls(objects: &[Value]) -> BTreeSet<Acl> {
    let mut acls = BTreeSet::new();
    for user in of_kind(objects, "KafkaUser") {
        let principal = text(&user["metadata"]["name"]);
        assert_eq!(
            user["spec"]["authentication"]["type"].as_str(),
            Some("scram-sha-512"),
            "{principal}"
        );
        for acl in user["spec"]["authorization"]["acls"]
            .as_sequence()
            .expect("acls")
        {
            let resource = &acl["resource"];
            for operation in acl["operations"].as_sequence().expect("operations") {
                acls.insert((
                    principal.clone(),
                    text(&resource["type"]),
                    text(&resource["name"]),
                    text(&resource["patternType"]),
                    text(operation),
                ));
            }
        }
    }
    acls
}

/// The ACLs of each principal in the chart: the roles of
/// `devinfra::kafka::access` (which the native stack and compose apply), with
/// Strimzi's explicit `Describe` beside each Read and Write, and the
/// operator's dead-letter and retry topics as prefixes, so that a consumer
/// added to the chart needs no new operator ACL.
fn expected_acls() -> BTreeSet<Acl> {
    let orders = shared_events::topics::ORDERS;
    let acl = |principal: &str, kind: &str, name: &str, pattern: &str, op: &str| {
        (
            principal.to_owned(),
            kind.to_owned(),
            name.to_owned(),
            pattern.to_owned(),
            op.to_owned(),
        )
    };
    let mut acls = BTreeSet::new();
    for op in ["Write", "Describe"] {
        acls.insert(acl(ORDER_SERVICE.name, "topic", orders, "literal", op));
    }
    for service in [INVOICING_SERVICE, SHIPPING_SERVICE] {
        let group = service.consumer_group.expect("a consumer");
        for op in ["Read", "Describe"] {
            acls.insert(acl(service.name, "topic", orders, "literal", op));
            acls.insert(acl(
                service.name,
                "topic",
                &shared_events::topics::retry(orders, group),
                "literal",
                op,
            ));
        }
        acls.insert(acl(service.name, "group", group, "literal", "Read"));
        for op in ["Write", "Describe"] {
            let dlq = shared_events::topics::dead_letter(orders, group);
            acls.insert(acl(service.name, "topic", &dlq, "literal", op));
        }
        acls.insert(acl(
            "orderflow-admin",
            "group",
            group,
            "literal",
            "Describe",
        ));
    }
    for op in ["Read", "Describe"] {
        acls.insert(acl(
            "orderflow-admin",
            "topic",
            &format!("{orders}.dlq."),
            "prefix",
            op,
        ));
        acls.insert(acl("orderflow-admin", "topic", orders, "literal", op));
    }
    for op in ["Write", "Describe"] {
        acls.insert(acl(
            "orderflow-admin",
            "topic",
            &format!("{orders}.retry."),
            "prefix",
            op,
        ));
    }
    acls.insert(acl(
        "orderflow-admin",
        "group",
        "orderflow-admin",
        "literal",
        "Read",
    ));
    acls
}

#[test]
fn every_principal_has_exactly_the_acls_of_its_role() {
    let expected = expected_acls();
    for (values, objects) in renderings() {
        let rendered = rendered_acls(&objects);
        let missing: Vec<_> = expected.difference(&rendered).collect();
        let extra: Vec<_> = rendered.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{values}: the chart's ACLs lack {missing:#?}\nand grant beyond the roles {extra:#?}"
        );
        // No principal may create, delete or reconfigure topics.
        assert!(
            rendered.iter().all(|(_, _, _, _, op)| ![
                "Create",
                "Delete",
                "Alter",
                "AlterConfigs",
                "All"
            ]
            .contains(&op.as_str())),
            "{values}: {rendered:#?}"
        );
    }
}

#[test]
fn the_chart_runs_the_workspaces_services_from_the_image_the_dockerfile_builds() {
    let compose: Value =
        serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    let compose_image = |name: &str| text(&compose["services"][name]["image"]);
    for (values, objects) in renderings() {
        let names: BTreeSet<String> = of_kind(&objects, "Deployment")
            .map(|d| text(&d["metadata"]["labels"]["app.kubernetes.io/name"]))
            .collect();
        assert_eq!(
            names,
            services::ALL.iter().map(|s| s.name.to_owned()).collect(),
            "{values}: one Deployment per service"
        );
        for service in services::ALL {
            let container = container(&objects, service);
            let image = text(&container["image"]);
            let (repository, _tag) = image.rsplit_once(':').expect("a tagged image");
            let (compose_repository, _) = compose_image(service.name)
                .rsplit_once(':')
                .map(|(r, t)| (r.to_owned(), t.to_owned()))
                .expect("compose tags the services' image");
            assert_eq!(
                repository, compose_repository,
                "{}: the Dockerfile's image",
                service.name
            );
            assert_eq!(
                container["command"]
                    .as_sequence()
                    .map(|c| c.iter().map(text).collect::<Vec<_>>()),
                Some(vec![service.name.to_owned()]),
                "{}: runs its own binary",
                service.name
            );
            assert_eq!(
                text(&container["ports"][0]["containerPort"]),
                service.port.to_string(),
                "{}: listens on its own port",
                service.name
            );
        }
        // The same PostgreSQL major version as compose (and the native stack's tests).
        let major = |image: &str| {
            image
                .rsplit_once(':')
                .and_then(|(_, tag)| tag.split('.').next().map(str::to_owned))
                .unwrap_or_default()
        };
        for cluster in of_kind(&objects, "Cluster") {
            assert_eq!(
                major(&text(&cluster["spec"]["imageName"])),
                major(&compose_image("postgres")),
                "{values}: PostgreSQL's major version"
            );
        }
        // Kafka: the native stack pins 4.4.0; Strimzi 1.2.0 runs up to 4.3.1.
        let pinned = devinfra::kafka::pinned_version(&read("infra/kafka/pom.xml"))
            .expect("pom.xml defines <kafka.version>");
        for kafka in of_kind(&objects, "Kafka") {
            let version = text(&kafka["spec"]["kafka"]["version"]);
            assert_eq!(
                version.split('.').next(),
                pinned.split('.').next(),
                "{values}: Kafka {version} against the native stack's {pinned}"
            );
        }
    }
}

#[test]
fn a_consumer_never_gets_more_replicas_than_the_topic_has_partitions() {
    for (values, objects) in renderings() {
        let partitions: i64 = text(&topics(&objects)[shared_events::topics::ORDERS]["partitions"])
            .parse()
            .expect("partitions");
        let scaled: Vec<&Value> = of_kind(&objects, "ScaledObject").collect();
        assert_eq!(scaled.len(), 2, "{values}: one ScaledObject per consumer");
        for object in scaled {
            let max: i64 = text(&object["spec"]["maxReplicaCount"])
                .parse()
                .expect("max");
            assert!(
                max <= partitions,
                "{values}: {max} replicas for {partitions} partitions"
            );
            let trigger = &object["spec"]["triggers"][0]["metadata"];
            assert_eq!(text(&trigger["allowIdleConsumers"]), "false");
            assert_eq!(text(&trigger["topic"]), shared_events::topics::ORDERS);
        }
    }
    // Asked for more than the partitions (20 replicas of 6 partitions
    // without autoscaling), the chart refuses, naming why.
    let refused = try_render(&[
        "--set",
        "services.shipping.autoscaling.enabled=false",
        "--set",
        "services.shipping.replicas=20",
    ])
    .expect_err("20 shipping replicas for 6 partitions");
    assert!(
        refused.contains("services.shipping.replicas is 20, more than the 6 partitions"),
        "{refused}"
    );
}

/// A service's egress rules.
fn egress<'a>(objects: &'a [Value], service: &ServiceFacts) -> &'a [Value] {
    of_kind(objects, "NetworkPolicy")
        .find(|p| p["metadata"]["labels"]["app.kubernetes.io/name"].as_str() == Some(service.name))
        .unwrap_or_else(|| panic!("no NetworkPolicy for {}", service.name))["spec"]["egress"]
        .as_sequence()
        .expect("egress rules")
}

/// The TCP and UDP ports a service's pods may reach.
fn egress_ports(objects: &[Value], service: &ServiceFacts) -> BTreeSet<String> {
    egress(objects, service)
        .iter()
        .flat_map(|rule| rule["ports"].as_sequence().cloned().unwrap_or_default())
        .map(|port| format!("{}/{}", text(&port["port"]), text(&port["protocol"])))
        .collect()
}

/// The CloudNativePG clusters a service's pods may reach.
fn egress_databases(objects: &[Value], service: &ServiceFacts) -> BTreeSet<String> {
    egress(objects, service)
        .iter()
        .flat_map(|rule| rule["to"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|peer| {
            peer["podSelector"]["matchLabels"]
                .get("cnpg.io/cluster")
                .map(text)
        })
        .collect()
}

#[test]
fn each_service_reaches_only_dns_its_database_kafka_and_the_apis_it_reads() {
    let objects = render(&[]);
    let base = ["53/UDP", "53/TCP", "5432/TCP", "9092/TCP"];
    for service in services::ALL {
        let mut expected: BTreeSet<String> = base.iter().map(|p| (*p).to_owned()).collect();
        if *service == ORDER_SERVICE {
            for read in [INVOICING_SERVICE, SHIPPING_SERVICE] {
                expected.insert(format!("{}/TCP", read.port));
            }
        }
        assert_eq!(
            egress_ports(&objects, service),
            expected,
            "{}",
            service.name
        );
        // The release is named orderflow: its clusters are orderflow-<database>.
        assert_eq!(
            egress_databases(&objects, service),
            BTreeSet::from([format!("orderflow-{}", service.database)]),
            "{}: its own database only",
            service.name
        );
    }
}
