//! 9. Retention and replay.
//!
//! Orders go through three events each (placed, paid, shipped). A live
//! group builds a view (each order's latest status) as they come; a group
//! created afterwards and reading from the beginning builds the view again
//! from the topic alone. Then the same on a topic with a short
//! `retention.ms` and small segments: a first batch of orders, a pause in
//! which those records grow older than the retention, a second batch, and
//! the replay once the broker has deleted the expired segments.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Refutes;
use crate::kafka::{self, GroupReader, Inspector, Record, TopicPlan};
use crate::progress::{self, Seen};
use crate::{Lab, LabError, Outcome, Table, Verdict};

const KEPT: &str = "retention.orders";
const SHORT: &str = "retention.short";
const PARTITIONS: i32 = 3;
const STATUSES: [&str; 3] = ["placed", "paid", "shipped"];
/// retention.ms of the short topic.
const RETENTION_MS: u64 = 5_000;
const SEGMENT_MS: u64 = 500;
const WAIT: Duration = Duration::from_secs(60);

/// Each order's latest status, as a consumer builds it.
type View = BTreeMap<String, String>;

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let orders = lab.pick(50, 300);
    let bootstrap = lab.infra.single()?.bootstrap();
    let mut table = Table::new(&[
        "topic",
        "view",
        "first offset read",
        "records read",
        "orders in the view",
        "identical to the live view",
    ]);

    // The whole history is kept: the replay equals the live view.
    kafka::create_topic(&bootstrap, &TopicPlan::new(KEPT, PARTITIONS)).await?;
    let live = GroupReader::start(&bootstrap, "retention-live", KEPT, &[])?;
    write_orders(&bootstrap, KEPT, 0..orders).await?;
    live.wait_for(orders * STATUSES.len(), WAIT).await?;
    let replay = GroupReader::start(&bootstrap, "retention-replay", KEPT, &[])?;
    // A replay that never reads the whole history refutes the claim.
    replay
        .wait_for(orders * STATUSES.len(), WAIT)
        .await
        .refutes("retention.replay")?;
    replay.wait_ended(PARTITIONS as usize, WAIT).await?;
    let (live_view, replay_view, _) = compare(&mut table, KEPT, &live, &replay);
    let kept_identical = live_view == replay_view && live_view.len() == orders;
    drop((live, replay));

    // Short retention: the first batch expires before the replay.
    kafka::create_topic(
        &bootstrap,
        &TopicPlan::new(SHORT, 1)
            .config("retention.ms", RETENTION_MS)
            .config("segment.ms", SEGMENT_MS),
    )
    .await?;
    let live = GroupReader::start(&bootstrap, "retention-short-live", SHORT, &[])?;
    write_orders(&bootstrap, SHORT, 0..orders).await?;
    live.wait_for(orders * STATUSES.len(), WAIT).await?;
    // Deliberate: the first batch ages past retention.ms before the second
    // batch is written (which also rolls the segment the first one is in).
    tokio::time::sleep(Duration::from_millis(RETENTION_MS)).await;
    write_orders(&bootstrap, SHORT, orders..2 * orders).await?;
    live.wait_for(2 * orders * STATUSES.len(), WAIT).await?;
    let inspector = Inspector::new(&bootstrap)?;
    let expired = (orders * STATUSES.len()) as i64;
    let start = progress::until(
        "retention to delete the first batch's segments",
        WAIT,
        Duration::from_millis(200),
        || async {
            let marks = inspector.watermarks(SHORT).await?;
            let start = marks.get(&0).map_or(0, |m| m.0);
            Ok(if start >= expired {
                Seen::Ready(start)
            } else {
                Seen::NotYet(format!("log start offset {start}"))
            })
        },
    )
    .await?;
    let replay = GroupReader::start(&bootstrap, "retention-short-replay", SHORT, &[])?;
    replay.wait_ended(1, WAIT).await?;
    let (live_view, replay_view, replay_first) = compare(&mut table, SHORT, &live, &replay);
    let missing = live_view
        .keys()
        .filter(|k| !replay_view.contains_key(*k))
        .count();
    let second_batch_whole =
        replay_view.len() == orders && replay_view.iter().all(|(k, v)| live_view.get(k) == Some(v));
    let verdict = if kept_identical && second_batch_whole && missing == orders && start > 0 {
        Verdict::HoldsWithNuance(format!(
            "only as far back as retention; with retention.ms={RETENTION_MS} the replay started at offset \
             {replay_first}, and the {missing} orders whose records had expired were missing from its view"
        ))
    } else if kept_identical && missing == 0 {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold(format!(
            "replay identical with full retention: {kept_identical}; with short retention {missing} of {} \
             orders missing, second batch whole: {second_batch_whole}",
            2 * orders
        ))
    };
    Ok(Outcome {
        setup: format!(
            "{orders} orders × {} events (placed, paid, shipped), keyed by order. Topic `{KEPT}` \
             ({PARTITIONS} partitions, the broker's 7-day retention): a live group and, afterwards, a new group \
             reading from the beginning. Topic `{SHORT}` (1 partition, retention.ms={RETENTION_MS}, \
             segment.ms={SEGMENT_MS}): {orders} orders, a {} s pause, {orders} more, then a new group from the \
             beginning once the broker deleted the expired segments (it checks every second here).",
            STATUSES.len(),
            RETENTION_MS / 1000
        ),
        tables: vec![table],
        notes: vec![
            "Background (not measured here; Kafka documentation, `retention.ms` and `segment.ms`): retention \
             deletes whole segments, by the newest record in each: a segment is kept until all of it \
             has expired, so small segments make retention precise."
                .into(),
            "A view that must be rebuildable from the topic forever needs unlimited retention (retention.ms=-1) \
             or a compacted topic keyed by entity (scenario 10)."
                .into(),
        ],
        verdicts: vec![("retention.replay", verdict)],
        chart: None,
    })
}

/// Writes the three events of every order in `range`, in order per order.
async fn write_orders(
    bootstrap: &str,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Result<(), LabError> {
    let producer = kafka::producer(bootstrap, &[("enable.idempotence", "true")])?;
    let events = STATUSES.iter().flat_map(|status| {
        range
            .clone()
            .map(move |i| (format!("order-{i}"), (*status).to_owned()))
    });
    super::write_all(&producer, topic, events).await
}

/// Builds the live and the replayed view of `topic`, adds a row for each
/// to `table`, and returns both views and the first offset the replay read.
fn compare(
    table: &mut Table,
    topic: &str,
    live: &GroupReader,
    replay: &GroupReader,
) -> (View, View, i64) {
    let (live_view, _) = live.with(|s| view(table, topic, "live", &s.records, None));
    let (replay_view, first) = replay.with(|s| {
        view(
            table,
            topic,
            "replay from the beginning",
            &s.records,
            Some(&live_view),
        )
    });
    (live_view, replay_view, first)
}

/// The view from `records` (read in order per key) and the first offset
/// read; adds its row to `table`, compared with `live` when given.
fn view(
    table: &mut Table,
    topic: &str,
    name: &str,
    records: &[Record],
    live: Option<&View>,
) -> (View, i64) {
    let mut view = View::new();
    for record in records {
        if let (Some(key), Some(status)) = (&record.key, &record.value) {
            view.insert(key.clone(), status.clone());
        }
    }
    let first = records.iter().map(|r| r.offset).min().unwrap_or(0);
    let identical = match live {
        None => "—".to_owned(),
        Some(live) if *live == view => "yes".to_owned(),
        Some(live) => format!(
            "no: {} orders missing",
            live.keys().filter(|k| !view.contains_key(*k)).count()
        ),
    };
    table.row(vec![
        topic.into(),
        name.into(),
        first.to_string(),
        records.len().to_string(),
        view.len().to_string(),
        identical,
    ]);
    (view, first)
}
