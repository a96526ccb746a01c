//! Kafka's own command-line tools (the `kafka-*.sh` scripts of a Kafka
//! distribution), run natively on the classpath Maven resolved: the same
//! release as the broker, so the Docker commands of the README have a native
//! twin (`cargo xtask topic watch`, `cargo xtask kafka configs ...`).

use std::process::Command;

use super::KafkaRuntime;

/// Heap of one tool's JVM (what Kafka's `kafka-run-class.sh` gives a tool).
const TOOL_HEAP: &str = "256m";

/// One of Kafka's command-line tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaTool {
    /// `kafka-console-consumer`: reads a topic and prints its records.
    ConsoleConsumer,
    /// `kafka-console-producer`: writes lines of stdin as records.
    ConsoleProducer,
    /// `kafka-configs`: describes and alters topic and broker settings.
    Configs,
    /// `kafka-topics`: lists, describes, creates and deletes topics.
    Topics,
    /// `kafka-consumer-groups`: describes groups, their offsets and lag.
    ConsumerGroups,
    /// `kafka-get-offsets`: the offsets of a topic's partitions.
    GetOffsets,
}

impl KafkaTool {
    /// Every tool, in the order `--help` lists them.
    pub const ALL: [KafkaTool; 6] = [
        KafkaTool::ConsoleConsumer,
        KafkaTool::ConsoleProducer,
        KafkaTool::Configs,
        KafkaTool::Topics,
        KafkaTool::ConsumerGroups,
        KafkaTool::GetOffsets,
    ];

    /// Its script's name in a Kafka distribution, without `.sh`.
    pub fn script(self) -> &'static str {
        match self {
            KafkaTool::ConsoleConsumer => "kafka-console-consumer",
            KafkaTool::ConsoleProducer => "kafka-console-producer",
            KafkaTool::Configs => "kafka-configs",
            KafkaTool::Topics => "kafka-topics",
            KafkaTool::ConsumerGroups => "kafka-consumer-groups",
            KafkaTool::GetOffsets => "kafka-get-offsets",
        }
    }

    /// The class the script runs (in the `kafka-tools` jar).
    pub fn main_class(self) -> &'static str {
        match self {
            KafkaTool::ConsoleConsumer => "org.apache.kafka.tools.consumer.ConsoleConsumer",
            KafkaTool::ConsoleProducer => "org.apache.kafka.tools.ConsoleProducer",
            KafkaTool::Configs => "org.apache.kafka.tools.ConfigCommand",
            KafkaTool::Topics => "org.apache.kafka.tools.TopicCommand",
            KafkaTool::ConsumerGroups => {
                "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
            }
            KafkaTool::GetOffsets => "org.apache.kafka.tools.GetOffsetShell",
        }
    }

    /// The tool a name stands for: the script's name with or without
    /// `kafka-` and `.sh` (`configs`, `kafka-configs`, `kafka-configs.sh`).
    pub fn from_name(name: &str) -> Option<KafkaTool> {
        let name = name.trim();
        let name = name.strip_suffix(".sh").unwrap_or(name);
        let name = name.strip_prefix("kafka-").unwrap_or(name);
        KafkaTool::ALL
            .into_iter()
            .find(|tool| tool.script().strip_prefix("kafka-") == Some(name))
    }
}

/// The console consumer's arguments to watch `topic` on `bootstrap_servers`
/// with each record's key, headers and value (and, with `from_beginning`,
/// the records already there), as the README's Docker command does.
pub fn watch_args(bootstrap_servers: &str, topic: &str, from_beginning: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--bootstrap-server",
        bootstrap_servers,
        "--topic",
        topic,
        "--formatter-property",
        "print.key=true",
        "--formatter-property",
        "print.headers=true",
        "--formatter-property",
        "print.value=true",
    ]
    .map(str::to_owned)
    .to_vec();
    if from_beginning {
        args.push("--from-beginning".to_owned());
    }
    args
}

impl KafkaRuntime {
    /// A `java` command running `tool` on this runtime's classpath, logging
    /// warnings to stderr; append the tool's own arguments.
    pub fn tool_command(&self, tool: KafkaTool) -> Command {
        let mut command = Command::new(self.java());
        command
            .env("CLASSPATH", self.classpath())
            .arg(format!("-Xmx{TOOL_HEAP}"))
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.tools_log4j_config().display()
            ))
            .arg(tool.main_class());
        command
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_by_their_script_names() {
        assert_eq!(KafkaTool::from_name("configs"), Some(KafkaTool::Configs));
        assert_eq!(
            KafkaTool::from_name("kafka-configs.sh"),
            Some(KafkaTool::Configs)
        );
        assert_eq!(
            KafkaTool::from_name("kafka-console-consumer"),
            Some(KafkaTool::ConsoleConsumer)
        );
        assert_eq!(KafkaTool::from_name("kafka-server-start"), None);
        for tool in KafkaTool::ALL {
            assert_eq!(KafkaTool::from_name(tool.script()), Some(tool));
        }
    }

    #[test]
    fn watching_prints_keys_headers_and_values() {
        let args = watch_args("127.0.0.1:19092", "orders.dlq.invoicing", true).join(" ");
        assert_eq!(
            args,
            "--bootstrap-server 127.0.0.1:19092 --topic orders.dlq.invoicing \
             --formatter-property print.key=true --formatter-property print.headers=true \
             --formatter-property print.value=true --from-beginning"
        );
        assert!(!watch_args("b", "orders", false).contains(&"--from-beginning".to_owned()));
    }
}
