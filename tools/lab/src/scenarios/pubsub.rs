//! 1. Publish/subscribe decouples.
//!
//! One producer writes order events; the group `invoicing` reads them as
//! they come. After the history is written, two new groups join: one with
//! `auto.offset.reset=earliest`, one with the client's default (`latest`).
//! The same producer, untouched, then writes a few more events. Each group's
//! counts show who read the history and who read only what came after it.

use std::time::Duration;

use crate::error::Refutes;
use crate::kafka::{self, GroupReader, TopicPlan};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const TOPIC: &str = "pubsub.orders";
const PARTITIONS: i32 = 3;
const WAIT: Duration = Duration::from_secs(60);

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let history = lab.pick(200, 2_000);
    let later = lab.pick(20, 200);
    let bootstrap = lab.infra.single()?.bootstrap();
    kafka::create_topic(&bootstrap, &TopicPlan::new(TOPIC, PARTITIONS)).await?;
    let producer = kafka::producer(&bootstrap, &[("enable.idempotence", "true")])?;
    let event = |i: usize| (format!("order-{i}"), format!("OrderPlaced {i}"));

    let invoicing = GroupReader::start(&bootstrap, "invoicing", TOPIC, &[])?;
    super::write_all(&producer, TOPIC, (0..history).map(event)).await?;
    invoicing.wait_for(history, WAIT).await?;

    // Two groups that did not exist while the history was written.
    let analytics = GroupReader::start(&bootstrap, "analytics", TOPIC, &[])?;
    let audit = GroupReader::start(
        &bootstrap,
        "audit",
        TOPIC,
        &[("auto.offset.reset", "latest")],
    )?;
    analytics
        .wait_for(history, WAIT)
        .await
        .refutes("pubsub.history")?;
    // `latest` resolves to the end of each partition once the member has its
    // assignment; it says so by reaching the end of every partition.
    audit.wait_ended(PARTITIONS as usize, WAIT).await?;
    let audit_history = audit.count();

    // The same producer, unchanged, writes more.
    super::write_all(&producer, TOPIC, (history..history + later).map(event)).await?;
    for (reader, expected) in [
        (&invoicing, history + later),
        (&analytics, history + later),
        (&audit, audit_history + later),
    ] {
        reader
            .wait_for(expected, WAIT)
            .await
            .refutes("pubsub.producer-unchanged")?;
    }

    let counts = [
        (
            "invoicing",
            "before the first event",
            "earliest",
            &invoicing,
        ),
        ("analytics", "after the history", "earliest", &analytics),
        ("audit", "after the history", "latest (the default)", &audit),
    ];
    let mut table = Table::new(&[
        "group",
        "joined",
        "auto.offset.reset",
        "history read",
        "later events read",
    ]);
    let mut read = Vec::new();
    for (group, joined, reset, reader) in counts {
        let (old, new) = reader.with(|s| {
            let old = s.records.iter().filter(|r| index(r) < history).count();
            (old, s.records.len() - old)
        });
        read.push((old, new));
        table.row(vec![
            group.into(),
            joined.into(),
            reset.into(),
            format!("{old} of {history}"),
            format!("{new} of {later}"),
        ]);
    }
    let everyone_gets_new = read.iter().all(|&(_, new)| new == later);
    let history_verdict = match read.as_slice() {
        [(live, _), (earliest, _), (0, _)] if *live == history && *earliest == history => {
            Verdict::HoldsWithNuance(format!(
                "a late group reads the history only with auto.offset.reset=earliest; with the client's default \
                 (latest) it read 0 of {history} and only what came after it joined"
            ))
        }
        [(live, _), (earliest, _), (late, _)]
            if *live == history && *earliest == history && *late == history =>
        {
            Verdict::Holds
        }
        _ => Verdict::DoesNotHold(format!(
            "history read per group {:?} of {history}",
            read.iter().map(|r| r.0).collect::<Vec<_>>(),
        )),
    };
    let producer_verdict = if everyone_gets_new {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "later events read per group {:?} of {later} from the unchanged producer",
            read.iter().map(|r| r.1).collect::<Vec<_>>()
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` ({PARTITIONS} partitions); one idempotent producer writes {history} events, \
             then {later} more after two new groups joined; it is never told about any group."
        ),
        tables: vec![table],
        notes: vec![
            "Each group has its own committed offsets, so groups never take records from each other.".into(),
            "A late group can read only what retention still holds (scenario 9).".into(),
        ],
        verdicts: vec![
            ("pubsub.history", history_verdict),
            ("pubsub.producer-unchanged", producer_verdict),
        ],
        chart: None,
    })
}

/// The event's number, from its value `OrderPlaced <i>`.
fn index(record: &kafka::Record) -> usize {
    record
        .value
        .as_deref()
        .and_then(|v| v.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}
