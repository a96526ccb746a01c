//! `orderflow-admin` against real Kafka and PostgreSQL, driven through its
//! command line exactly as an operator types it: dead letters listed and
//! replayed (to the refusing group's retry topic, each refusal once) until
//! the consumer takes them, parked outbox events listed, retried after the
//! cause is fixed, or discarded with a reason.

mod dead_letters;
mod parked_events;

use e2e::services::ServiceUnderTest;
use serde_json::Value;

/// Runs `orderflow-admin <args>` in this process, with no terminal to
/// confirm on (as in CI); its report.
pub(super) async fn admin(args: &[&str]) -> anyhow::Result<String> {
    admin_answering(args, &mut orderflow_admin::cli::NoOneToAsk).await
}

/// [`admin`], with `prompt` answering its confirmations; the report, and on
/// failure the error with what was reported before it.
pub(super) async fn admin_answering(
    args: &[&str],
    prompt: &mut impl orderflow_admin::cli::Prompt,
) -> anyhow::Result<String> {
    let mut out = Vec::new();
    // The tests' topics are their own, which the tool's principal has no
    // ACLs on: the administrative principal runs it.
    let admin = devinfra::kafka::access::ADMIN;
    let credentials = [
        "--kafka-sasl-mechanism",
        devinfra::kafka::access::STATIC_MECHANISM,
        "--kafka-sasl-username",
        admin.name,
        "--kafka-sasl-password",
        admin.password,
    ];
    let result = orderflow_admin::cli::run_with(
        std::iter::once("orderflow-admin")
            .chain(credentials)
            .chain(args.iter().copied()),
        &mut out,
        prompt,
    )
    .await;
    let report = String::from_utf8(out)?;
    result.map_err(|e| anyhow::anyhow!("orderflow-admin {}: {e}\n{report}", args.join(" ")))?;
    Ok(report)
}

/// An operator at a terminal who types `answer` when asked; keeps the questions.
pub(super) struct Typing {
    answer: String,
    asked: Vec<String>,
}

impl orderflow_admin::cli::Prompt for Typing {
    fn ask(&mut self, question: &str) -> Option<String> {
        self.asked.push(question.to_owned());
        Some(self.answer.clone())
    }
}

pub(super) async fn items(service: &ServiceUnderTest, path: &str) -> anyhow::Result<Vec<Value>> {
    Ok(service.get_ok(path).await?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}
