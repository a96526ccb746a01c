//! The one list of broker settings every Kafka of this project runs with.
//!
//! Three brokers exist: the native nodes `cargo xtask` starts (written into
//! their `server.properties`), the broker of docker-compose.yml and the broker
//! the end-to-end tests start with testcontainers (both the `apache/kafka`
//! image, configured through `KAFKA_*` environment variables). A test that
//! passes against one and fails against another because topic auto-creation
//! or the first rebalance's delay differ is a test of the setup, not of the
//! code, so all three take their settings from [`broker_settings`]: the native
//! nodes and the test container directly, docker-compose.yml through a drift
//! test that compares its environment with [`single_node_image_env`].

use super::Replication;

/// The id of a cluster's first node, the only one of a single-node cluster.
/// Set explicitly everywhere, never left to an image's default.
pub const FIRST_NODE_ID: u32 = 1;

/// The broker properties that do not depend on where a node listens, for a
/// cluster whose topics get `replication`.
pub fn broker_settings(replication: Replication) -> Vec<(&'static str, String)> {
    let factor = replication.factor.to_string();
    let min_insync = replication.min_insync.to_string();
    vec![
        // Services create their topics explicitly, with their partition count;
        // a typo in a topic name must fail, not create a one-partition topic.
        ("auto.create.topics.enable", "false".into()),
        ("num.partitions", "1".into()),
        ("default.replication.factor", factor.clone()),
        ("min.insync.replicas", min_insync.clone()),
        ("offsets.topic.replication.factor", factor.clone()),
        // Kafka's defaults ask for 3 replicas, which a single node cannot
        // hold: a transactional client (a tool, kafka-ui) would fail on it.
        ("transaction.state.log.replication.factor", factor.clone()),
        ("transaction.state.log.min.isr", min_insync.clone()),
        ("share.coordinator.state.topic.replication.factor", factor),
        ("share.coordinator.state.topic.min.isr", min_insync),
        // Tests and the demo start consumer groups all the time; the default
        // makes each new group wait 3 s before its first assignment.
        ("group.initial.rebalance.delay.ms", "0".into()),
        // Groups on the KIP-848 protocol (KAFKA_GROUP_PROTOCOL=consumer) take
        // their session and heartbeat from the broker. Kafka's defaults (45 s,
        // 5 s, with minimums equal to them) would make a crashed consumer's
        // partitions wait 45 s; these match the classic consumers' 10 s
        // session (KAFKA_SESSION_TIMEOUT_MS) and let assignments propagate
        // within 2 s, since a member learns of its new assignment at its next
        // heartbeat.
        ("group.consumer.min.session.timeout.ms", "6000".into()),
        ("group.consumer.session.timeout.ms", "10000".into()),
        ("group.consumer.min.heartbeat.interval.ms", "1000".into()),
        ("group.consumer.heartbeat.interval.ms", "2000".into()),
    ]
}

/// The listener the controllers talk on, in every cluster of this project.
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The broker properties that make every listener authenticate and every
/// request be authorised ([`super::access`] says who may do what), for a
/// node whose client listeners are `client_listeners` (the first is the one
/// brokers talk to each other on).
///
/// Clients authenticate with SCRAM-SHA-512 (the services, with credentials
/// in the cluster's metadata) or PLAIN (the two static principals the
/// brokers' own configuration declares: the brokers themselves and the
/// administrator). The controller listener takes only the brokers' own
/// principal. `StandardAuthorizer` then denies every request no ACL allows,
/// super users excepted.
pub fn security_settings(client_listeners: &[&str]) -> Vec<(String, String)> {
    use super::access::{
        ADMIN, BROKER, SCRAM_MECHANISM, SECURITY_PROTOCOL, STATIC_MECHANISM, plain_login,
        super_users,
    };
    let protocol_map: Vec<String> = client_listeners
        .iter()
        .chain(std::iter::once(&CONTROLLER_LISTENER))
        .map(|listener| format!("{listener}:{SECURITY_PROTOCOL}"))
        .collect();
    let mut settings = vec![
        (
            "listener.security.protocol.map".to_owned(),
            protocol_map.join(","),
        ),
        (
            "inter.broker.listener.name".to_owned(),
            client_listeners
                .first()
                .copied()
                .unwrap_or("CLIENT")
                .to_owned(),
        ),
        (
            "sasl.mechanism.inter.broker.protocol".to_owned(),
            STATIC_MECHANISM.to_owned(),
        ),
        (
            "sasl.mechanism.controller.protocol".to_owned(),
            STATIC_MECHANISM.to_owned(),
        ),
        (
            "authorizer.class.name".to_owned(),
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_owned(),
        ),
        (
            "allow.everyone.if.no.acl.found".to_owned(),
            "false".to_owned(),
        ),
        ("super.users".to_owned(), super_users()),
    ];
    for listener in client_listeners {
        let prefix = format!("listener.name.{}", listener.to_ascii_lowercase());
        settings.extend([
            (
                format!("{prefix}.sasl.enabled.mechanisms"),
                format!("{SCRAM_MECHANISM},{STATIC_MECHANISM}"),
            ),
            (
                format!(
                    "{prefix}.{}.sasl.jaas.config",
                    SCRAM_MECHANISM.to_ascii_lowercase()
                ),
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
            ),
            (
                format!(
                    "{prefix}.{}.sasl.jaas.config",
                    STATIC_MECHANISM.to_ascii_lowercase()
                ),
                plain_login(BROKER, &[BROKER, ADMIN]),
            ),
        ]);
    }
    let controller = format!("listener.name.{}", CONTROLLER_LISTENER.to_ascii_lowercase());
    settings.extend([
        (
            format!("{controller}.sasl.enabled.mechanisms"),
            STATIC_MECHANISM.to_owned(),
        ),
        (
            format!(
                "{controller}.{}.sasl.jaas.config",
                STATIC_MECHANISM.to_ascii_lowercase()
            ),
            plain_login(BROKER, &[BROKER]),
        ),
    ]);
    settings
}

/// The environment variable the `apache/kafka` image turns into `property`:
/// `KAFKA_` and the name upper-cased, with `.` as `_`, `_` as `__` and `-` as
/// `___` (the image's documented mapping, docker/examples/README.md).
pub fn image_env_var(property: &str) -> String {
    let mut var = String::from("KAFKA_");
    for c in property.chars() {
        match c {
            '.' => var.push('_'),
            '_' => var.push_str("__"),
            '-' => var.push_str("___"),
            c => var.push(c.to_ascii_uppercase()),
        }
    }
    var
}

/// [`broker_settings`] of a single-node cluster and the
/// [`security_settings`] of its `client_listeners` as `apache/kafka` image
/// variables, with the node id: what docker-compose.yml and the test
/// container set (besides their listeners' addresses, which differ by design).
pub fn single_node_image_env(client_listeners: &[&str]) -> Vec<(String, String)> {
    let mut env = vec![(image_env_var("node.id"), FIRST_NODE_ID.to_string())];
    env.extend(
        broker_settings(Replication::for_nodes(1))
            .into_iter()
            .map(|(property, value)| (image_env_var(property), value)),
    );
    env.extend(
        security_settings(client_listeners)
            .into_iter()
            .map(|(property, value)| (image_env_var(&property), value)),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_variables_follow_the_images_mapping() {
        assert_eq!(
            image_env_var("group.initial.rebalance.delay.ms"),
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"
        );
        assert_eq!(image_env_var("abc-def"), "KAFKA_ABC___DEF");
        assert_eq!(image_env_var("abc_def"), "KAFKA_ABC__DEF");
        assert_eq!(image_env_var("node.id"), "KAFKA_NODE_ID");
    }

    #[test]
    fn a_single_node_has_an_explicit_id_no_auto_create_and_no_rebalance_delay() {
        let env = single_node_image_env(&["INTERNAL", "EXTERNAL"]);
        for (name, value) in [
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
            ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
            ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
            ("KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND", "false"),
            (
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "INTERNAL:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            ),
            ("KAFKA_INTER_BROKER_LISTENER_NAME", "INTERNAL"),
            (
                "KAFKA_LISTENER_NAME_EXTERNAL_SASL_ENABLED_MECHANISMS",
                "SCRAM-SHA-512,PLAIN",
            ),
        ] {
            assert!(
                env.iter().any(|(n, v)| n == name && v == value),
                "{name}={value} missing from {env:?}"
            );
        }
        let mut names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), env.len(), "a variable is set twice");
    }
}
