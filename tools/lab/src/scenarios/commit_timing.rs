//! 4. When the offset is committed decides the guarantee.
//!
//! The same consumer reads the same records in batches of 20 and crashes at
//! the same point (its third batch, after 10 effects) in three setups, each
//! in its own group; then a new incarnation of it finishes the topic. The
//! effects are rows in PostgreSQL, so lost and repeated ones can be counted.
//! See [`super::crashing_consumer`] for what a crash is and for the dedup.

use crate::{Lab, LabError, Outcome, Table, Verdict};

use super::crashing_consumer::{self as consumer, Commit, Crash, Setup};

const TOPIC: &str = "commit-timing.orders";
const BATCH: usize = 20;
const CRASH: Crash = Crash {
    batch: 3,
    after: 10,
};

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let records = lab.pick(200, 1_000);
    let crashes = lab.pick(1, 3);
    let (bootstrap, pool) =
        consumer::prepare(lab, "lab_commit_timing", &[], true, TOPIC, records).await?;

    let setups = [
        (
            "commit before processing",
            "at-most-once",
            Commit::BeforeProcessing,
        ),
        (
            "commit after processing",
            "at-least-once",
            Commit::AfterProcessing,
        ),
        (
            "commit after processing, inbox dedup",
            "effectively once",
            Commit::AfterProcessingWithDedup,
        ),
    ];
    let mut table = Table::new(&[
        "setup",
        "guarantee",
        "records",
        "crashes",
        "effects",
        "lost",
        "duplicated",
        "redeliveries skipped by dedup",
    ]);
    let mut found = Vec::new();
    for (index, (label, guarantee, commit)) in setups.into_iter().enumerate() {
        let group = format!("commit-timing-{index}");
        let setup = Setup {
            bootstrap: &bootstrap,
            topic: TOPIC,
            group: &group,
            pool: &pool,
            label,
            commit,
            batch: BATCH,
        };
        let mut skipped = 0;
        for _ in 0..crashes {
            skipped += consumer::incarnation(&setup, Some(CRASH)).await?.skipped;
        }
        skipped += consumer::incarnation(&setup, None).await?.skipped;
        let (effects, distinct) = consumer::effects(&pool, label).await?;
        let lost = records as i64 - distinct;
        let duplicated = effects - distinct;
        found.push((lost, duplicated));
        table.row(vec![
            label.into(),
            guarantee.into(),
            records.to_string(),
            crashes.to_string(),
            effects.to_string(),
            lost.to_string(),
            duplicated.to_string(),
            skipped.to_string(),
        ]);
    }
    let crashes = crashes as i64;
    let unapplied = (BATCH - CRASH.after) as i64 * crashes;
    let applied = CRASH.after as i64 * crashes;
    let expected = [(unapplied, 0), (0, applied), (0, 0)];
    let verdict = if found == expected {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "(lost, duplicated) per setup {found:?}; expected {expected:?}"
        ))
    };
    Ok(Outcome {
        setup: format!(
            "topic `{TOPIC}` (1 partition) with {records} records, each with its own event id; the consumer \
             applies each record's effect as a row in PostgreSQL, in batches of {BATCH}, and crashes in its \
             {}rd batch after {} effects, {crashes} time(s); a new incarnation in the same group then reads \
             to the end. The crash drops the consumer without a commit (auto-commit off).",
            CRASH.batch, CRASH.after
        ),
        tables: vec![table],
        notes: vec![
            format!(
                "Committed first, the {} records after the crash point were never applied: the next \
                 incarnation started past them. Committed after, the {} applied before the crash were \
                 delivered and applied again.",
                BATCH - CRASH.after,
                CRASH.after
            ),
            "The dedup is the inbox's rule (messaging::inbox): the event id is inserted into \
             processed_events with ON CONFLICT DO NOTHING in the effect's own transaction; a conflict skips the effect."
                .into(),
        ],
        verdicts: vec![("commit-timing.guarantee", verdict)],
        chart: None,
    })
}
