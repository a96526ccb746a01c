//! The README's shell commands, as the compose check runs them.
//!
//! The check runs the commands a reader copies (the curl calls of "The APIs",
//! the Kafka tools of "With Docker"), taken from README.md at run time, so a
//! command that stops working fails CI instead of a reader.

use super::DockerCheckError;

/// The README's text.
pub fn read() -> Result<String, DockerCheckError> {
    let path = devinfra::workspace_root().join("README.md");
    std::fs::read_to_string(&path).map_err(|e| DockerCheckError::Io {
        what: format!("read {}", path.display()),
        source: e,
    })
}

/// Every line of `readme`'s code blocks joined with the lines it continues
/// over, as the shell reads them: after a trailing `\\`, and while a single
/// quote is open (a JSON body over several lines). Comment lines stand alone,
/// and a trailing comment's apostrophes open no quote.
fn joined_lines(readme: &str) -> Vec<String> {
    let open_quote = |text: &str| {
        let code = text.split(" #").next().unwrap_or_default();
        code.matches('\'').count() % 2 == 1
    };
    let mut joined = Vec::new();
    let mut in_code = false;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code || line.trim_start().starts_with('#') {
            continue;
        }
        let mut command = line.trim().to_owned();
        loop {
            if let Some(head) = command.strip_suffix('\\') {
                let next = lines.next().unwrap_or_default();
                command = format!("{} {}", head.trim_end(), next.trim());
            } else if open_quote(&command) {
                let Some(next) = lines.next() else { break };
                command = format!("{command}\n{next}");
            } else {
                break;
            }
        }
        joined.push(command);
    }
    joined
}

/// Every command of `readme` that starts with `start`.
pub fn commands(readme: &str, start: &str) -> Vec<String> {
    joined_lines(readme)
        .into_iter()
        .filter(|c| c.starts_with(start))
        .collect()
}

/// The first command of `readme` that starts with `start`.
pub fn command(readme: &str, start: &str) -> Result<String, DockerCheckError> {
    commands(readme, start).into_iter().next().ok_or_else(|| {
        DockerCheckError::Check(format!("README.md has no command starting with {start:?}"))
    })
}

/// `docker compose exec` without a terminal (`-T`): the check runs with no TTY.
pub fn without_tty(command: &str) -> String {
    command.replacen("docker compose exec ", "docker compose exec -T ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "\
Kafka's tools:
curl -s http://127.0.0.1:8081/not-in-a-code-block
```sh
# Place an order's first version:
curl -s http://127.0.0.1:8081/orders/$ORDER                  # one order
curl -si http://127.0.0.1:8081/orders \\
  -H 'content-type: application/json' \\
  -d '{
    \"a\": 1 }'

docker compose exec kafka /opt/kafka/bin/kafka-configs.sh --bootstrap-server kafka:9092 \\
  --alter --entity-type topics
```
";

    #[test]
    fn a_command_is_joined_over_its_continued_lines() {
        assert_eq!(
            command(README, "curl -si http://127.0.0.1:8081/orders").expect("found"),
            "curl -si http://127.0.0.1:8081/orders -H 'content-type: application/json' -d '{\n    \"a\": 1 }'"
        );
        assert_eq!(
            command(README, "curl -s http://127.0.0.1:8081/orders/").expect("found"),
            "curl -s http://127.0.0.1:8081/orders/$ORDER                  # one order"
        );
    }

    #[test]
    fn a_missing_command_is_named_in_the_error() {
        let err = command(README, "curl -s http://127.0.0.1:8083/").expect_err("absent");
        assert!(err.to_string().contains("8083"), "{err}");
    }

    #[test]
    fn every_command_with_a_start_is_found() {
        assert_eq!(commands(README, "curl -s").len(), 2);
        assert_eq!(commands(README, "docker compose exec kafka").len(), 1);
    }

    #[test]
    fn exec_runs_without_a_terminal() {
        let configs = command(README, "docker compose exec kafka").expect("found");
        assert!(
            without_tty(&configs)
                .starts_with("docker compose exec -T kafka /opt/kafka/bin/kafka-configs.sh"),
            "{configs}"
        );
    }
}
