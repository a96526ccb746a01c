//! 6. Producer retries can duplicate; idempotence prevents it.
//!
//! A producer writes numbered records, one at a time, through the lab's
//! [`AckDroppingProxy`](crate::fault_proxy::AckDroppingProxy) (test code):
//! every 10th Produce response is swallowed after the broker appended the
//! record, and the connection is closed. The producer does not know the
//! write succeeded and retries it. Once with `enable.idempotence=false`
//! (librdkafka's default), once with `true`; then a reader counts each
//! number on each topic.

use std::collections::BTreeMap;

use crate::error::Step;
use crate::kafka::{self, TopicPlan};
use crate::progress::Ticker;
use crate::{Lab, LabError, Outcome, Table, Verdict};

/// Swallow every n-th acknowledgement.
const EVERY: u64 = 10;

/// Runs the scenario on `lab`'s infrastructure and says what the counts show.
pub(crate) async fn run(lab: &mut Lab) -> Result<Outcome, LabError> {
    let records = lab.pick(100, 500);
    let max_drops = lab.pick(5, 20);
    let node = lab.infra.single()?;
    let bootstrap = node.bootstrap();
    let proxied = node.proxied_bootstrap();
    let mut table = Table::new(&[
        "enable.idempotence",
        "records sent",
        "acknowledgements dropped",
        "records on the topic",
        "duplicates",
        "missing",
    ]);
    let mut found = Vec::new();
    for idempotent in [false, true] {
        let topic = format!("idempotence.{}", if idempotent { "on" } else { "off" });
        kafka::create_topic(&bootstrap, &TopicPlan::new(&topic, 1)).await?;
        let producer = kafka::producer(
            &proxied,
            &[
                (
                    "enable.idempotence",
                    if idempotent { "true" } else { "false" },
                ),
                ("retry.backoff.ms", "50"),
                ("message.timeout.ms", "30000"),
            ],
        )?;
        node.proxy().drop_every(EVERY, max_drops);
        let mut ticker = Ticker::new(&format!("writing {topic} through the proxy"));
        for i in 0..records {
            kafka::send(&producer, &topic, "order-1", &i.to_string())
                .await
                .step(format!("writing record {i} through the proxy"))?;
            ticker.tick(|| {
                format!(
                    "{} of {records} acknowledged, {} acknowledgements dropped",
                    i + 1,
                    node.proxy().dropped()
                )
            });
        }
        node.proxy().pass_all();
        let dropped = node.proxy().dropped();
        drop(producer);
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        let read = kafka::read_all(&bootstrap, &topic, false).await?;
        for record in &read {
            *copies
                .entry(record.value.clone().unwrap_or_default())
                .or_default() += 1;
        }
        let duplicates = read.len() - copies.len();
        let missing = records - copies.len();
        found.push((dropped, duplicates, missing));
        table.row(vec![
            idempotent.to_string(),
            records.to_string(),
            dropped.to_string(),
            read.len().to_string(),
            duplicates.to_string(),
            missing.to_string(),
        ]);
    }
    let (duplicates, resent) = match found.as_slice() {
        [(dropped_off, dup_off, 0), (dropped_on, dup_on, 0)]
            if *dropped_off > 0 && *dropped_on > 0 =>
        {
            (
                if *dup_off as u64 == *dropped_off && *dup_on == 0 {
                    Verdict::Holds
                } else {
                    Verdict::DoesNotHold(format!(
                        "{dup_off} duplicates for {dropped_off} lost acknowledgements without idempotence, \
                     {dup_on} with it"
                    ))
                },
                if *dup_off > 0 {
                    Verdict::DoesNotHold(format!(
                        "with the client's default retries (the producer sets none), it resent the write behind \
                     each of the {dropped_off} lost acknowledgements: {dup_off} duplicates on the topic; \
                     librdkafka retries by default, and so does the Java client since Kafka 2.1 (KIP-91)"
                    ))
                } else {
                    Verdict::HoldsWithNuance(format!(
                        "no duplicate for {dropped_off} lost acknowledgements without idempotence"
                    ))
                },
            )
        }
        _ => {
            let seen = Verdict::NotShown(format!(
                "(acknowledgements dropped, duplicates, missing) without and with idempotence: {found:?}"
            ));
            (seen.clone(), seen)
        }
    };
    Ok(Outcome {
        setup: format!(
            "topics `idempotence.off` and `idempotence.on` (1 partition); a producer (acks=all, `retries` left at the client's default) \
             sends {records} records one at a time to the broker through a fault-injecting TCP proxy (test \
             code) that swallows every {EVERY}th Produce response, at most {max_drops} times, after the broker \
             stored the record, and closes the connection. The broker advertises the proxy's address on the \
             listener the producer uses, so all its traffic passes the proxy."
        ),
        tables: vec![table],
        notes: vec![
            "With idempotence the broker knows the producer's id and each batch's sequence number, \
             recognises the retry as a batch it already has, and acknowledges it without appending it again."
                .into(),
            "librdkafka leaves enable.idempotence off by default; the Java client turns it on since Kafka 3.0 \
             (KIP-679)."
                .into(),
            "Background (not measured here; KIP-98): the producer id and sequence numbers live as long as \
             the producer; a restarted producer (a relay after a crash) gets a new id, so it can still write \
             a record twice unless it is transactional."
                .into(),
        ],
        verdicts: vec![
            ("idempotence.duplicates", duplicates),
            ("idempotence.not-resent-by-default", resent),
        ],
        chart: None,
    })
}
