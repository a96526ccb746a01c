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

/// [`broker_settings`] of a single-node cluster as `apache/kafka` image
/// variables, with the node id: what docker-compose.yml and the test
/// container set (besides their listeners, which differ by design).
pub fn single_node_image_env() -> Vec<(String, String)> {
    let mut env = vec![(image_env_var("node.id"), FIRST_NODE_ID.to_string())];
    env.extend(
        broker_settings(Replication::for_nodes(1))
            .into_iter()
            .map(|(property, value)| (image_env_var(property), value)),
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
        let env = single_node_image_env();
        for (name, value) in [
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false"),
            ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
            ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
            ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
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
