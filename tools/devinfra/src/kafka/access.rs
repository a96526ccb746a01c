//! Who may do what on the brokers: every Kafka principal of the flow and the
//! ACLs that give each exactly its role, declared once.
//!
//! A broker that lets any client in lets any client write a forged
//! `OrderPlaced` to `orders`, read every customer's address, or delete a
//! topic. So every broker of this project authenticates its clients
//! (SASL/SCRAM-SHA-512) and authorises each request with Kafka's
//! `StandardAuthorizer`, denying whatever no ACL allows
//! ([`super::security_settings`]). Each service is its own principal, and
//! [`principals`] gives each only what its role needs:
//!
//! - `order-service` writes `orders`;
//! - each consumer reads `orders` and its retry topic in its own group, and
//!   writes its own dead-letter topic;
//! - `orderflow-admin` reads the dead-letter topics and the source topic,
//!   writes the retry topics (and `orders`, where replays still go) and
//!   describes the consumer groups whose progress it watches.
//!
//! Nobody but the administrative principal creates or deletes a topic: the
//! provisioning creates every topic of the flow ([`topics`]) before a service
//! starts, and a service only checks that its topics are there.
//!
//! Two principals are not in the metadata: [`BROKER`], which the brokers
//! use among themselves and towards the controllers, and [`ADMIN`], which
//! provisioning and the tools (bench, chaos, lab, `cargo xtask kafka`) use.
//! Both are super users, authenticated with SASL/PLAIN against the brokers'
//! own configuration, because they must exist before the metadata log that
//! holds the SCRAM credentials can be read or written (on a fresh compose
//! volume as on a fresh native cluster). The services' SCRAM credentials are
//! created in the metadata by provisioning and can be rotated without a
//! restart.
//!
//! This is data, rendered three ways: `cargo xtask`'s provisioning applies it
//! through the admin API ([`super::provision`]), docker-compose's
//! `kafka-init` runs the commands [`init_commands`] renders (a drift test
//! keeps them equal), and a Kubernetes chart can render its `KafkaUser`
//! resources from [`principals`]. The passwords here are local development
//! defaults (each principal's name, like the PostgreSQL roles'); a
//! deployment sets its own.

use platform::config::KafkaAuth;
use platform::services::{self, ORDER_SERVICE, ServiceFacts};
use rdkafka::ClientConfig;
use shared_events::topics;

/// The SASL mechanism the services authenticate with.
pub const SCRAM_MECHANISM: &str = "SCRAM-SHA-512";

/// The SASL mechanism of the two principals in the brokers' own configuration.
pub const STATIC_MECHANISM: &str = "PLAIN";

/// The security protocol of every client listener: SASL over plain TCP, for
/// loopback and the compose network; a deployment uses `SASL_SSL`.
pub const SECURITY_PROTOCOL: &str = "SASL_PLAINTEXT";

/// A principal the brokers know from their own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticUser {
    /// The user name (the principal is `User:<name>`).
    pub name: &'static str,
    /// Its local development password.
    pub password: &'static str,
}

/// The brokers' own principal: replication and requests to the controllers.
pub const BROKER: StaticUser = StaticUser {
    name: "broker",
    password: "broker",
};

/// The administrative principal: provisioning and the tools.
pub const ADMIN: StaticUser = StaticUser {
    name: "admin",
    password: "admin",
};

/// The principal of the `orderflow-admin` tool.
pub const OPERATOR: &str = "orderflow-admin";

/// `super.users`: the two static principals, nobody else.
pub fn super_users() -> String {
    format!("User:{};User:{}", BROKER.name, ADMIN.name)
}

/// The kind of resource a grant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// A topic, by its literal name.
    Topic,
    /// A consumer group, by its literal name.
    Group,
}

impl Resource {
    /// The `kafka-acls` option naming a resource of this kind.
    pub fn option(self) -> &'static str {
        match self {
            Resource::Topic => "--topic",
            Resource::Group => "--group",
        }
    }
}

/// What a grant allows. Read and Write imply Describe (Kafka's rule), so
/// Describe is granted alone only where nothing else is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Fetch from a topic; join, commit in and read offsets of a group.
    Read,
    /// Produce to a topic (and, since Kafka 3.0, start an idempotent producer).
    Write,
    /// See a topic's metadata and offsets; a group's members and offsets.
    Describe,
}

impl Operation {
    /// Its name in `kafka-acls --operation`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Describe => "Describe",
        }
    }
}

/// One ACL binding: allow this principal `operation` on the literal resource `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    /// Topic or group.
    pub resource: Resource,
    /// Its literal name.
    pub name: String,
    /// What is allowed.
    pub operation: Operation,
}

/// A principal authenticated with SCRAM, and everything it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The SCRAM user name (the principal is `User:<name>`).
    pub name: String,
    /// Its local development password.
    pub password: String,
    /// Its ACLs; everything else is denied.
    pub grants: Vec<Grant>,
}

/// Where the principals act: the flow's own names, or a copy of them that a
/// test provisions beside the real ones (on its own topic, with a suffix on
/// every principal and group name), so that it can try each role in
/// isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The topic order events are published to.
    pub topic: String,
    /// Appended to every principal and consumer group name.
    pub suffix: String,
}

impl Scope {
    /// The flow's names: `orders`, the services' names and groups.
    pub fn flow() -> Scope {
        Scope {
            topic: topics::ORDERS.to_owned(),
            suffix: String::new(),
        }
    }

    /// The principal of `service` in this scope.
    pub fn principal(&self, service: &ServiceFacts) -> String {
        format!("{}{}", service.name, self.suffix)
    }

    /// The consumer group of `service` in this scope (services that consume).
    pub fn group(&self, service: &ServiceFacts) -> Option<String> {
        service
            .consumer_group
            .map(|group| format!("{group}{}", self.suffix))
    }

    /// The principal of the `orderflow-admin` tool in this scope.
    pub fn operator(&self) -> String {
        format!("{OPERATOR}{}", self.suffix)
    }

    /// The consumer group `orderflow-admin` reads with, in this scope.
    pub fn operator_group(&self) -> String {
        self.operator()
    }
}

/// Every SCRAM principal of `scope` with its grants: each service and the
/// `orderflow-admin` tool.
pub fn principals(scope: &Scope) -> Vec<Principal> {
    let allow = |resource, name: &str, operation| Grant {
        resource,
        name: name.to_owned(),
        operation,
    };
    let orders = scope.topic.as_str();
    let mut all = vec![Principal {
        name: scope.principal(&ORDER_SERVICE),
        password: ORDER_SERVICE.name.to_owned(),
        grants: vec![allow(Resource::Topic, orders, Operation::Write)],
    }];
    let mut operator = vec![
        allow(Resource::Topic, orders, Operation::Read),
        allow(Resource::Group, &scope.operator_group(), Operation::Read),
    ];
    for service in services::consumers() {
        let Some(group) = scope.group(service) else {
            continue;
        };
        let dead_letters = topics::dead_letter(orders, &group);
        let retry = topics::retry(orders, &group);
        all.push(Principal {
            name: scope.principal(service),
            password: service.name.to_owned(),
            grants: vec![
                allow(Resource::Topic, orders, Operation::Read),
                allow(Resource::Topic, &retry, Operation::Read),
                allow(Resource::Group, &group, Operation::Read),
                allow(Resource::Topic, &dead_letters, Operation::Write),
            ],
        });
        operator.extend([
            allow(Resource::Topic, &dead_letters, Operation::Read),
            allow(Resource::Topic, &retry, Operation::Write),
            allow(Resource::Group, &group, Operation::Describe),
        ]);
    }
    all.push(Principal {
        name: scope.operator(),
        password: OPERATOR.to_owned(),
        grants: operator,
    });
    all
}

/// A topic of the flow as provisioning creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowTopic {
    /// Its name.
    pub name: String,
    /// Its `retention.ms`, in hours (the services' defaults, e.g.
    /// [`topics::ORDERS_RETENTION_HOURS`]).
    pub retention_hours: u64,
}

impl FlowTopic {
    /// Its `retention.ms`.
    pub fn retention_ms(&self) -> u64 {
        self.retention_hours * 3_600_000
    }
}

/// Every topic of `scope`, which provisioning creates before any service
/// starts: the orders topic, and each consumer's dead-letter and retry
/// topics, each with the retention its service would give it.
pub fn topics(scope: &Scope) -> Vec<FlowTopic> {
    let topic = |name: String, retention_hours| FlowTopic {
        name,
        retention_hours,
    };
    let mut all = vec![topic(scope.topic.clone(), topics::ORDERS_RETENTION_HOURS)];
    for service in services::consumers() {
        if let Some(group) = scope.group(service) {
            all.push(topic(
                topics::dead_letter(&scope.topic, &group),
                topics::DEAD_LETTER_RETENTION_HOURS,
            ));
            all.push(topic(
                topics::retry(&scope.topic, &group),
                topics::RETRY_RETENTION_HOURS,
            ));
        }
    }
    all
}

/// The administrative principal's credentials, as a service's settings take them.
pub fn admin_auth() -> KafkaAuth {
    KafkaAuth::sasl(STATIC_MECHANISM, ADMIN.name, ADMIN.password)
}

/// The administrative principal as a service's environment
/// (`KAFKA_SASL_*`), for a service instance a tool runs outside its role.
pub fn admin_env() -> Vec<(String, String)> {
    [
        ("KAFKA_SECURITY_PROTOCOL", SECURITY_PROTOCOL),
        ("KAFKA_SASL_MECHANISM", STATIC_MECHANISM),
        ("KAFKA_SASL_USERNAME", ADMIN.name),
        ("KAFKA_SASL_PASSWORD", ADMIN.password),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// A client configuration of the administrative principal for `bootstrap`.
pub fn admin_client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in admin_auth().client_properties() {
        config.set(key, value);
    }
    config.set("bootstrap.servers", bootstrap);
    config
}

/// The administrative principal as a Java client's properties (the
/// `--command-config` file of Kafka's command-line tools).
pub fn admin_client_properties() -> String {
    java_client_properties(&admin_auth())
}

/// `auth` as a Java client's properties: the security protocol and, over
/// SASL, the mechanism and a JAAS line logging in with its login module
/// (`PlainLoginModule` or `ScramLoginModule`).
pub fn java_client_properties(auth: &KafkaAuth) -> String {
    let mut properties = format!("security.protocol={}\n", auth.security_protocol);
    if auth.security_protocol.starts_with("SASL") {
        let module = if auth.sasl_mechanism == STATIC_MECHANISM {
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        } else {
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        };
        properties.push_str(&format!(
            "sasl.mechanism={}\nsasl.jaas.config={module} required username=\"{}\" password=\"{}\";\n",
            auth.sasl_mechanism,
            auth.sasl_username,
            auth.sasl_password.expose()
        ));
    }
    properties
}

/// A `PlainLoginModule` JAAS line logging in as `user`; on a broker, the
/// users it accepts (`user_<name>="<password>"`) follow.
pub fn plain_login(user: StaticUser, accepted: &[StaticUser]) -> String {
    let mut line = format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{}\" password=\"{}\"",
        user.name, user.password
    );
    for accepted in accepted {
        line.push_str(&format!(
            " user_{}=\"{}\"",
            accepted.name, accepted.password
        ));
    }
    line.push(';');
    line
}

/// The launcher and class behind `kafka-acls.sh`, relative to `/opt/kafka/bin`.
pub const ACL_COMMAND: &str = "kafka-run-class.sh org.apache.kafka.tools.AclCommand";

/// The commands docker-compose's `kafka-init` runs with Kafka's scripts
/// against `bootstrap`, authenticated by the properties file `command_config`:
/// every topic of the flow, then each principal's SCRAM credential and ACLs.
/// One ACL call per principal and resource (its operations together);
/// every command is idempotent, so the init can run again.
///
/// The ACLs go through `kafka-run-class.sh` with Kafka's `AclCommand` (the
/// class `kafka-acls.sh` itself runs): every image of Kafka 4 ships that
/// launcher and class, while the `kafka-acls.sh` wrapper is missing from
/// images cut down to the common scripts, such as the local stand-in CI
/// builds (`../shared/docker-standins/`), where `kafka-init` exited 127.
pub fn init_commands(
    bootstrap: &str,
    command_config: &str,
    partitions: i32,
    replication_factor: i32,
) -> Vec<String> {
    let scope = Scope::flow();
    let tool = |script: &str| {
        format!(
            "/opt/kafka/bin/{script} --bootstrap-server {bootstrap} --command-config {command_config}"
        )
    };
    let mut commands: Vec<String> = topics(&scope)
        .into_iter()
        .map(|topic| {
            format!(
                "{} --create --if-not-exists --topic {} --partitions {partitions} --replication-factor {replication_factor} --config retention.ms={}",
                tool("kafka-topics.sh"),
                topic.name,
                topic.retention_ms()
            )
        })
        .collect();
    for principal in principals(&scope) {
        commands.push(format!(
            "{} --alter --entity-type users --entity-name {} --add-config '{SCRAM_MECHANISM}=[password={}]'",
            tool("kafka-configs.sh"),
            principal.name,
            principal.password
        ));
        let mut resources: Vec<(Resource, &str)> = Vec::new();
        for grant in &principal.grants {
            if !resources.contains(&(grant.resource, grant.name.as_str())) {
                resources.push((grant.resource, grant.name.as_str()));
            }
        }
        for (resource, name) in resources {
            let operations: String = principal
                .grants
                .iter()
                .filter(|g| g.resource == resource && g.name == name)
                .map(|g| format!(" --operation {}", g.operation.name()))
                .collect();
            commands.push(format!(
                "{} --add --allow-principal User:{}{operations} {} {name}",
                tool(ACL_COMMAND),
                principal.name,
                resource.option()
            ));
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants_of(name: &str) -> Vec<(Resource, String, Operation)> {
        let principal = principals(&Scope::flow())
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no principal {name}"));
        principal
            .grants
            .into_iter()
            .map(|g| (g.resource, g.name, g.operation))
            .collect()
    }

    #[test]
    fn each_role_is_exactly_what_the_issue_says() {
        use Operation::*;
        use Resource::*;
        assert_eq!(
            grants_of("order-service"),
            [(Topic, "orders".into(), Write)]
        );
        assert_eq!(
            grants_of("invoicing-service"),
            [
                (Topic, "orders".into(), Read),
                (Topic, "orders.retry.invoicing".into(), Read),
                (Group, "invoicing".into(), Read),
                (Topic, "orders.dlq.invoicing".into(), Write),
            ]
        );
        let shipping = grants_of("shipping-service");
        assert!(shipping.contains(&(Topic, "orders.dlq.shipping".into(), Write)));
        assert!(
            shipping
                .iter()
                .all(|(_, name, _)| !name.contains("invoicing")),
            "{shipping:?}"
        );
        let operator = grants_of("orderflow-admin");
        for topic in ["orders.dlq.invoicing", "orders.dlq.shipping"] {
            assert!(operator.contains(&(Topic, topic.into(), Read)));
        }
        assert!(operator.contains(&(Group, "invoicing".into(), Describe)));
        assert!(operator.contains(&(Topic, "orders.retry.shipping".into(), Write)));
    }

    #[test]
    fn a_scope_renames_every_principal_group_and_topic() {
        let scope = Scope {
            topic: "e2e-1".into(),
            suffix: "-x".into(),
        };
        let all = principals(&scope);
        assert!(all.iter().all(|p| p.name.ends_with("-x")));
        for principal in &all {
            for grant in &principal.grants {
                match grant.resource {
                    Resource::Topic => assert!(grant.name.starts_with("e2e-1"), "{grant:?}"),
                    Resource::Group => assert!(grant.name.ends_with("-x"), "{grant:?}"),
                }
            }
        }
        assert_eq!(
            topics(&scope)
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>(),
            [
                "e2e-1",
                "e2e-1.dlq.invoicing-x",
                "e2e-1.retry.invoicing-x",
                "e2e-1.dlq.shipping-x",
                "e2e-1.retry.shipping-x"
            ]
        );
    }

    #[test]
    fn the_services_log_in_with_their_names_as_local_passwords() {
        for principal in principals(&Scope::flow()) {
            assert_eq!(principal.name, principal.password);
        }
        assert!(super_users().contains("User:admin") && super_users().contains("User:broker"));
    }

    #[test]
    fn the_init_commands_group_operations_per_resource() {
        let commands = init_commands("kafka:9092", "/tmp/admin.properties", 6, 1);
        assert!(commands[0].ends_with(
            "kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties \
             --create --if-not-exists --topic orders --partitions 6 --replication-factor 1 \
             --config retention.ms=604800000"
        ));
        let operator_orders: Vec<&String> = commands
            .iter()
            .filter(|c| c.contains("User:orderflow-admin ") && c.ends_with("--topic orders"))
            .collect();
        assert_eq!(operator_orders.len(), 1, "{operator_orders:?}");
        // The operator reads the orders topic, and writes only the retry topics.
        assert!(operator_orders[0].contains("--operation Read --topic"));
        assert!(!operator_orders[0].contains("--operation Write"));
        // One command per principal and resource, whatever its operations.
        let acls: Vec<String> = commands
            .iter()
            .filter(|c| c.contains(ACL_COMMAND))
            .map(|c| {
                let principal = c.split("--allow-principal ").nth(1).unwrap_or_default();
                let principal = principal.split(' ').next().unwrap_or_default();
                let resource = c.rsplitn(3, ' ').take(2).collect::<Vec<_>>().join(" ");
                format!("{principal} {resource}")
            })
            .collect();
        let distinct: std::collections::BTreeSet<&String> = acls.iter().collect();
        assert_eq!(distinct.len(), acls.len(), "{acls:#?}");
        assert!(commands.iter().any(|c| c.ends_with(
            "--alter --entity-type users --entity-name invoicing-service \
             --add-config 'SCRAM-SHA-512=[password=invoicing-service]'"
        )));
    }

    #[test]
    fn the_admin_properties_log_in_with_plain() {
        let properties = admin_client_properties();
        assert!(properties.contains("sasl.mechanism=PLAIN"));
        assert!(properties.contains(&format!("sasl.jaas.config={}", plain_login(ADMIN, &[]))));
        let scram = java_client_properties(&KafkaAuth::sasl(SCRAM_MECHANISM, "bench", "b"));
        assert!(scram.contains(
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
             required username=\"bench\" password=\"b\";"
        ));
        let open = KafkaAuth {
            security_protocol: "PLAINTEXT".into(),
            ..admin_auth()
        };
        assert_eq!(
            java_client_properties(&open),
            "security.protocol=PLAINTEXT\n"
        );
        assert_eq!(
            plain_login(BROKER, &[BROKER, ADMIN]),
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"broker\" password=\"broker\" user_broker=\"broker\" user_admin=\"admin\";"
        );
    }
}
