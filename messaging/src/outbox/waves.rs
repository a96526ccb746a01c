//! Waves: how one batch is published without reordering a key.
//!
//! The first wave holds the first row of each key, the second the second row
//! of each key, and so on, and a wave starts only when the previous one is
//! settled. A key whose row failed, or is still in flight, sends nothing
//! more in this batch. So a later event of an order is never produced before
//! Kafka has acknowledged the earlier one: neither librdkafka's retries nor a
//! record failing on `message.timeout.ms` (which its idempotence guarantee
//! excludes) can reorder one order's events. Most batches hold one row per
//! key and are one wave.
//!
//! A wave waits at most [`WAVE_WAIT`] for its reports; a record not reported
//! by then stays in flight ([`Late`]) and its partition is benched
//! ([`super::bench`]). A record that fails with an error that can be its own
//! fault is tried once more alone, and parked if it fails again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::DeliveryFuture;

use super::bench::{Bench, Change};
use super::record::{publish_span, record};
use super::relay::{OutboxRow, Relay};

/// How long a wave waits for its delivery reports. A healthy partition
/// acknowledges within milliseconds; a record not reported by then is left in
/// flight (librdkafka keeps retrying it until `message.timeout.ms`), its
/// partition is benched and the batch goes on without it, so a partition
/// that cannot take records costs the others at most this much per wave,
/// never `message.timeout.ms`.
pub(super) const WAVE_WAIT: Duration = Duration::from_secs(1);

/// How one record's failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Kafka, the network or the topic is the problem: try again later.
    Transient,
    /// Possibly the record's own fault; tried alone before it is parked.
    Suspect,
    /// The record itself is refused, checked by the client on this record
    /// alone (bigger than `message.max.bytes`): park it at once.
    Permanent,
}

/// Sorts a produce or delivery error: the codes a broker returns for a
/// record it will never take (too large, invalid, refused by policy) are
/// suspects; the client's own size check is final; everything else (timeouts,
/// leaders moving, brokers away, authorisation) is not the record's fault.
fn classify(error: &KafkaError, client_side: bool) -> Failure {
    let KafkaError::MessageProduction(code) = error else {
        return Failure::Transient;
    };
    match code {
        RDKafkaErrorCode::MessageSizeTooLarge if client_side => Failure::Permanent,
        RDKafkaErrorCode::MessageSizeTooLarge
        | RDKafkaErrorCode::MessageBatchTooLarge
        | RDKafkaErrorCode::InvalidRecord
        | RDKafkaErrorCode::PolicyViolation
        | RDKafkaErrorCode::InvalidMessage
        | RDKafkaErrorCode::InvalidMessageSize => Failure::Suspect,
        _ => Failure::Transient,
    }
}

/// Splits a batch (in id order) into waves: wave `n` holds the `n`-th row of
/// every key, in id order. Returns indexes into `keys`.
fn waves<K: std::hash::Hash + Eq>(keys: &[K]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&K, usize> = HashMap::new();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let n = seen.entry(key).or_insert(0);
        if waves.len() <= *n {
            waves.push(Vec::new());
        }
        waves[*n].push(index);
        *n += 1;
    }
    waves
}

/// What became of one claimed row.
#[derive(Debug)]
pub(super) enum RowOutcome {
    /// Acknowledged at this partition and offset.
    Delivered(Delivered),
    Parked(String),
    Retry(KafkaError),
    /// Sent, and not reported within the wave's wait: still in flight.
    Late(InFlight),
    /// Not produced: an earlier row of its key failed or is late in this
    /// batch, or its partition is benched.
    Held,
}

/// A record whose delivery report has not come yet, and the span of its
/// publication (closed when the report comes).
pub(super) struct InFlight {
    pub(super) delivery: DeliveryFuture,
    pub(super) span: tracing::Span,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

/// A row whose record was late in an earlier batch: its key is kept out of
/// the claim until its report comes (then it is deleted, or claimed again).
#[derive(Debug)]
pub(super) struct Late {
    pub(super) row: OutboxRow,
    pub(super) partition: Option<i32>,
    pub(super) record: InFlight,
}

impl Relay {
    /// Publishes `rows` wave by wave (see the module documentation); one
    /// outcome per row. `partitions` is each row's partition, if known; a
    /// partition found late or failing in a wave is benched at once, and
    /// its rows in the later waves are held.
    pub(super) async fn publish_in_waves(
        &self,
        rows: &[OutboxRow],
        partitions: &[Option<i32>],
        bench: &mut Bench,
    ) -> Vec<RowOutcome> {
        let keys: Vec<&str> = rows.iter().map(|r| r.record_key.as_str()).collect();
        let mut outcomes: Vec<Option<RowOutcome>> = (0..rows.len()).map(|_| None).collect();
        let mut stopped: HashSet<&str> = HashSet::new();
        for wave in waves(&keys) {
            let now = Instant::now();
            let (go, held): (Vec<usize>, Vec<usize>) = wave.into_iter().partition(|&i| {
                !stopped.contains(keys[i]) && !bench.is_excluded(partitions[i], now)
            });
            for i in held {
                // Its key sends nothing more in this batch, even if the
                // bench's backoff ends before the next wave.
                stopped.insert(keys[i]);
                outcomes[i] = Some(RowOutcome::Held);
            }
            if go.is_empty() {
                continue;
            }
            let wave_rows: Vec<&OutboxRow> = go.iter().map(|&i| &rows[i]).collect();
            let results = self
                .produce_in_order(&wave_rows, Instant::now() + WAVE_WAIT)
                .await;
            for (&i, result) in go.iter().zip(results) {
                let outcome = match result {
                    Report::Settled(Ok(at)) => RowOutcome::Delivered(at),
                    Report::Settled(Err((e, client_side))) => match classify(&e, client_side) {
                        Failure::Transient => RowOutcome::Retry(e),
                        Failure::Permanent => RowOutcome::Parked(e.to_string()),
                        Failure::Suspect => self.retry_alone(&rows[i]).await,
                    },
                    Report::Late(record) => RowOutcome::Late(record),
                };
                let now = Instant::now();
                let partition = partitions[i];
                match &outcome {
                    RowOutcome::Delivered(at) => {
                        self.check_partition(partition, at);
                        self.log_bench(partition, bench.delivered(partition, false, now), "");
                    }
                    RowOutcome::Retry(e) => {
                        let (change, _) = bench.failed(partition, &e.to_string(), false, now);
                        self.log_bench(partition, change, &e.to_string());
                    }
                    RowOutcome::Late(_) => {
                        let change = bench.late(partition, now);
                        if change == Change::Benched {
                            tracing::info!(
                                topic = %self.kafka.topic,
                                partition,
                                wait = ?WAVE_WAIT,
                                "records not acknowledged within a wave's wait: left in flight, \
                                 their partition is out of the batches until they are reported"
                            );
                        }
                    }
                    RowOutcome::Parked(_) | RowOutcome::Held => {}
                }
                if !matches!(outcome, RowOutcome::Delivered(_)) {
                    stopped.insert(keys[i]);
                }
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(RowOutcome::Held))
            .collect()
    }

    /// Produces `row` with nothing else in flight, so its record batch holds
    /// it alone: parked if Kafka refuses it even so.
    async fn retry_alone(&self, row: &OutboxRow) -> RowOutcome {
        match self
            .produce_in_order(&[row], Instant::now() + WAVE_WAIT)
            .await
            .pop()
        {
            Some(Report::Settled(Ok(at))) => RowOutcome::Delivered(at),
            Some(Report::Settled(Err((e, client_side)))) => match classify(&e, client_side) {
                Failure::Transient => RowOutcome::Retry(e),
                Failure::Suspect | Failure::Permanent => RowOutcome::Parked(e.to_string()),
            },
            Some(Report::Late(record)) => RowOutcome::Late(record),
            None => RowOutcome::Retry(KafkaError::Canceled),
        }
    }

    /// Enqueues every row in order and waits for the delivery reports until
    /// `deadline`; returns one report per row, each error with whether the
    /// client refused the record before sending it, or the record still in
    /// flight. When librdkafka's queue is full, it waits for the oldest
    /// outstanding delivery and retries the same row, so the order of the
    /// rows is never changed.
    async fn produce_in_order(&self, rows: &[&OutboxRow], deadline: Instant) -> Vec<Report> {
        let producer = self.producer.current();
        let mut outcomes: Vec<Option<Report>> = Vec::with_capacity(rows.len());
        let mut in_flight: VecDeque<(usize, DeliveryFuture, tracing::Span)> = VecDeque::new();
        for (index, row) in rows.iter().enumerate() {
            outcomes.push(None);
            let span = publish_span(row);
            // The consumers continue the trace from the publish span when
            // spans are exported, else from the order's own trace context.
            let traceparent =
                platform::telemetry::traceparent_of(&span).or_else(|| row.traceparent.clone());
            let mut record = record(row, &self.source, traceparent.as_deref());
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push_back((index, delivery, span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        match in_flight.pop_front() {
                            Some((i, delivery, span)) => {
                                outcomes[i] = Some(Report::Settled(settled(delivery.await, &span)));
                            }
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => {
                        span.record("error", tracing::field::display(&e));
                        outcomes[index] = Some(Report::Settled(Err((e, true))));
                        break;
                    }
                }
            }
        }
        for (i, mut delivery, span) in in_flight {
            let deadline = tokio::time::Instant::from_std(deadline);
            outcomes[i] = Some(
                match tokio::time::timeout_at(deadline, &mut delivery).await {
                    Ok(report) => Report::Settled(settled(report, &span)),
                    Err(_) => Report::Late(InFlight { delivery, span }),
                },
            );
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Report::Settled(Err((KafkaError::Canceled, false)))))
            .collect()
    }
}

/// Where Kafka put a record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivered {
    pub(super) partition: i32,
    pub(super) offset: i64,
}

/// A record's delivery report: where it went, or the error and whether the
/// client refused it before sending.
pub(super) type Settled = Result<Delivered, (KafkaError, bool)>;

/// A record's delivery report, or the record still in flight.
pub(super) enum Report {
    Settled(Settled),
    Late(InFlight),
}

/// What a delivery report says; a failure is recorded in the row's `span`.
pub(super) fn settled(
    report: <DeliveryFuture as std::future::Future>::Output,
    span: &tracing::Span,
) -> Settled {
    let outcome = match report {
        Ok(Ok(d)) => Ok(Delivered {
            partition: d.partition,
            offset: d.offset,
        }),
        Ok(Err((e, _))) => Err((e, false)),
        Err(_) => Err((KafkaError::Canceled, false)),
    };
    if let Err((e, _)) = &outcome {
        span.record("error", tracing::field::display(e));
    }
    outcome
}

/// Takes the rows of earlier batches whose reports have come, with their
/// partition and report; the others stay in `late`. Never waits.
pub(super) async fn take_reported(late: &mut Vec<Late>) -> Vec<(OutboxRow, Option<i32>, Settled)> {
    let mut reported = Vec::new();
    let mut waiting = Vec::with_capacity(late.len());
    for mut l in late.drain(..) {
        match tokio::time::timeout(Duration::ZERO, &mut l.record.delivery).await {
            Ok(report) => {
                let settled = settled(report, &l.record.span);
                reported.push((l.row, l.partition, settled));
            }
            Err(_) => waiting.push(l),
        }
    }
    *late = waiting;
    reported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_take_one_row_per_key_in_order() {
        let keys = ["a", "b", "a", "c", "a", "b"];
        assert_eq!(waves(&keys), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert_eq!(waves::<&str>(&[]), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn only_refusals_of_the_record_itself_are_suspects() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::MessageSizeTooLarge), true),
            Failure::Permanent
        );
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::PolicyViolation,
            RDKafkaErrorCode::InvalidRecord,
        ] {
            assert_eq!(
                classify(&produce(code), false),
                Failure::Suspect,
                "{code:?}"
            );
        }
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::QueueFull,
        ] {
            assert_eq!(
                classify(&produce(code), false),
                Failure::Transient,
                "{code:?}"
            );
        }
        assert_eq!(classify(&KafkaError::Canceled, false), Failure::Transient);
    }
}
