//! One batch: from records to committed effects, dead letters and counts.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};
use shared_events::{RawEnvelope, TraceParent, headers};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use super::stall::Cause;
use super::{ApplyError, EventMeta, Handler, Inbox, NewEvent};
use crate::backoff::Backoff;
use crate::cancellation;

/// How a batch (or one record's dead letter) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Processed {
    /// Done: its offsets may be stored.
    Done,
    /// Shutdown came first: nothing of it may be acknowledged.
    Interrupted,
}

/// What one record of a batch is to the service.
enum Read<E> {
    /// An event type this service does not handle.
    Skip,
    /// A record the service refuses, and why.
    Refuse(String),
    /// An event to apply.
    Event(EventMeta, E),
}

impl<H: Handler> Inbox<H> {
    /// Processes `records`: dead letters for the refused ones, then every
    /// event's effect in one transaction (retried, whole, while the database
    /// fails); see the module documentation.
    pub(super) async fn process(
        &self,
        records: &[OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Processed {
        self.metrics.batches.observe(records.len() as f64);
        // Each record's span lives until its effect has committed (or it was
        // dead-lettered): the consumer's part of the order's trace.
        let read: Vec<(Read<H::Event>, tracing::Span)> =
            records.iter().map(|r| self.read(r)).collect();
        let mut pending: Vec<(usize, &EventMeta, &H::Event)> = Vec::with_capacity(records.len());
        for (index, (record, (read, span))) in records.iter().zip(&read).enumerate() {
            match read {
                Read::Skip => {
                    self.metrics.skipped.inc();
                }
                Read::Refuse(reason) => {
                    let rejected = self
                        .reject(record, reason, shutdown)
                        .instrument(span.clone())
                        .await;
                    if rejected == Processed::Interrupted {
                        return Processed::Interrupted;
                    }
                }
                Read::Event(meta, event) => pending.push((index, meta, event)),
            }
        }

        let mut backoff = Backoff::new(Duration::from_millis(100), self.settings.max_backoff);
        let mut stalled = false;
        let processed = loop {
            if pending.is_empty() {
                break Processed::Done;
            }
            // One transaction for the batch: a span of its own, linked to
            // the spans (and so the traces) of its records.
            let batch = tracing::info_span!(
                "inbox_batch",
                otel.name = "apply batch",
                records = pending.len()
            );
            for (index, ..) in &pending {
                platform::telemetry::link(&batch, &read[*index].1);
            }
            match self.apply(&pending).instrument(batch).await {
                Ok((applied, duplicates)) => {
                    self.metrics.processed.inc_by(applied);
                    self.metrics.duplicates.inc_by(duplicates);
                    if duplicates > 0 {
                        tracing::info!(
                            duplicates,
                            "redelivered events skipped; their effects were applied before"
                        );
                    }
                    break Processed::Done;
                }
                Err(ApplyError::Invalid { index, reason }) => {
                    // The effect refuses this one event: dead-letter it and
                    // apply the batch again without it.
                    let (record, ..) = pending.remove(index.min(pending.len() - 1));
                    let rejected = self
                        .reject(&records[record], &reason, shutdown)
                        .instrument(read[record].1.clone())
                        .await;
                    if rejected == Processed::Interrupted {
                        break Processed::Interrupted;
                    }
                }
                Err(ApplyError::Database(e)) => {
                    // The service's failure, not the records': hold the batch
                    // (and with it the offsets) until the database takes the work.
                    self.metrics.retries.inc();
                    stalled = true;
                    let delay = backoff.next_delay();
                    let (first, ..) = pending[0];
                    let at = format!(
                        "{}[{}]@{}",
                        records[first].topic(),
                        records[first].partition(),
                        records[first].offset()
                    );
                    if platform::db::is_transient(&e) {
                        tracing::warn!(error = %e, retry_in = ?delay, "database unavailable; retrying the same batch");
                        self.stall.stop(
                            Cause::Batch,
                            format!("the database is unavailable; retrying the batch from {at}"),
                        );
                    } else {
                        tracing::error!(error = %e, retry_in = ?delay,
                            "the database refuses the effects (a privilege, the schema?); \
                             retrying the same batch until it is fixed, nothing is skipped");
                        let code = sqlstate(&e)
                            .map(|c| format!(" (SQLSTATE {c})"))
                            .unwrap_or_default();
                        self.stall.stop(
                            Cause::Batch,
                            format!("the database refuses the effects{code}; retrying the batch from {at}"),
                        );
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break Processed::Interrupted,
                        () = tokio::time::sleep(delay) => {},
                    }
                }
            }
        };
        if stalled && processed == Processed::Done {
            tracing::info!("the database takes the effects again; resuming");
            self.stall.resume(Cause::Batch);
        }
        processed
    }

    /// Reads one record in a span of its own, which continues the record's
    /// trace: what it is to this service, and the span.
    fn read(&self, record: &OwnedMessage) -> (Read<H::Event>, tracing::Span) {
        // Named at creation (the exported name cannot change later) from
        // the record's `event_type` header, e.g. `invoicing OrderPlaced`.
        let event_type = header(record, headers::EVENT_TYPE).unwrap_or("record");
        let span = tracing::info_span!(
            "record",
            otel.name = format!("{} {event_type}", self.settings.group_id),
            otel.kind = "consumer",
            topic = record.topic(),
            partition = record.partition(),
            offset = record.offset(),
            event_id = tracing::field::Empty,
            event_type = tracing::field::Empty,
            order_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        if let Some(tp) = traceparent(record) {
            span.record("trace_id", tp.trace_id());
            platform::telemetry::continue_trace(&span, &tp.to_string());
        }
        let read = span.in_scope(|| self.read_in_span(record, &span));
        (read, span)
    }

    fn read_in_span(&self, record: &OwnedMessage, span: &tracing::Span) -> Read<H::Event> {
        let Some(value) = record.payload() else {
            return Read::Refuse("record has no value".into());
        };
        let envelope = match RawEnvelope::from_slice(value) {
            Ok(e) => e,
            Err(e) => return Read::Refuse(platform::error::chain(&e)),
        };
        span.record("event_id", tracing::field::display(envelope.event_id));
        span.record("event_type", envelope.event_type.as_str());
        span.record("order_id", tracing::field::display(envelope.order_id));
        if let Err(rejection) = crate::reader::check_key(record.key(), envelope.order_id) {
            return Read::Refuse(rejection.0);
        }
        match self.handler.decode(&envelope) {
            Ok(Some(event)) => Read::Event(
                EventMeta {
                    event_id: envelope.event_id,
                    event_type: envelope.event_type.clone(),
                    schema_version: envelope.schema_version,
                    order_id: envelope.order_id,
                    occurred_at: envelope.occurred_at,
                },
                event,
            ),
            Ok(None) => {
                tracing::debug!("event type not handled here; skipped");
                Read::Skip
            }
            Err(rejection) => Read::Refuse(rejection.0),
        }
    }

    /// One attempt at the batch's transaction: lock its orders, record every
    /// event id, apply the new ones, commit. How many were applied, and how
    /// many were duplicates; an [`ApplyError::Invalid`] indexes `events`.
    async fn apply(
        &self,
        events: &[(usize, &EventMeta, &H::Event)],
    ) -> Result<(u64, u64), ApplyError> {
        let mut tx = self.pool.begin().await?;
        let orders: Vec<Uuid> = events.iter().map(|(_, meta, _)| meta.order_id).collect();
        cancellation::lock_orders(&mut tx, &orders).await?;
        let ids: Vec<Uuid> = events.iter().map(|(_, meta, _)| meta.event_id).collect();
        let new: HashSet<Uuid> = sqlx::query_scalar(
            "INSERT INTO processed_events (consumer, event_id)
             SELECT $1, id FROM unnest($2::uuid[]) AS id
             ON CONFLICT DO NOTHING
             RETURNING event_id",
        )
        .bind(&self.settings.group_id)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        // The first copy of each new id is applied; any later copy in the
        // same batch is a duplicate like a redelivery.
        let mut first = HashSet::with_capacity(new.len());
        let dedup = self.settings.deduplicates();
        let (positions, fresh): (Vec<usize>, Vec<NewEvent<'_, H::Event>>) = events
            .iter()
            .enumerate()
            .filter(|(_, (_, meta, _))| {
                !dedup || (new.contains(&meta.event_id) && first.insert(meta.event_id))
            })
            .map(|(position, &(_, meta, event))| (position, NewEvent { meta, event }))
            .unzip();
        if !fresh.is_empty() {
            self.handler
                .apply(&mut tx, &fresh)
                .await
                .map_err(|e| match e {
                    ApplyError::Invalid { index, reason } => ApplyError::Invalid {
                        index: positions.get(index).copied().unwrap_or(index),
                        reason,
                    },
                    database => database,
                })?;
        }
        tx.commit().await?;
        let now = chrono::Utc::now();
        for event in &fresh {
            let latency = (now - event.meta.occurred_at).to_std().unwrap_or_default();
            self.metrics.event_latency.observe(latency.as_secs_f64());
        }
        let applied = fresh.len() as u64;
        Ok((applied, events.len() as u64 - applied))
    }

    /// Dead-letters `record` with `reason`, retrying while Kafka fails, and
    /// writing it without its value if the dead-letter topic refuses it whole.
    async fn reject(
        &self,
        record: &OwnedMessage,
        reason: &str,
        shutdown: &CancellationToken,
    ) -> Processed {
        tracing::warn!(
            reason,
            dlq = self.dead_letter.topic(),
            "poison record dead-lettered"
        );
        let mut backoff = Backoff::new(Duration::from_millis(100), self.settings.max_backoff);
        let mut without_value = false;
        // What holds the consumer here, while the dead letter is not written.
        let mut stalled: Option<Cause> = None;
        loop {
            let sent = if without_value {
                self.dead_letter.send_without_value(record, reason).await
            } else {
                self.dead_letter.send(record, reason).await
            };
            if let Some(cause) = stalled
                && !matches!(&sent, Err(e) if !crate::dead_letter::refused_for_good(e))
            {
                tracing::info!(
                    dlq = self.dead_letter.topic(),
                    "the dead-letter topic takes this service's writes again; resuming"
                );
                self.stall.resume(cause);
                stalled = None;
            }
            match sent {
                Ok(()) => {
                    self.metrics.dead_lettered.inc();
                    if without_value {
                        self.metrics.dead_letters_without_value.inc();
                    }
                    // The topic holds the dead letter; the note only lets the
                    // read API show it, so a failure here is logged, not retried.
                    let noted = crate::dead_letter::remember(
                        &self.pool,
                        &self.settings.group_id,
                        record,
                        reason,
                    )
                    .await;
                    if let Err(e) = noted {
                        tracing::warn!(error = %e, "the dead letter was written but not noted in the database");
                    }
                    return Processed::Done;
                }
                Err(e) if crate::dead_letter::refused_for_good(&e) && !without_value => {
                    tracing::warn!(error = %e, partition = record.partition(), offset = record.offset(),
                        "the dead-letter topic refuses this record; writing the dead letter without its value \
                         (the original stays at its offset in the source topic)");
                    without_value = true;
                }
                Err(e) if crate::dead_letter::refused_for_good(&e) => {
                    tracing::error!(error = %e, topic = record.topic(), partition = record.partition(),
                        offset = record.offset(), reason,
                        "the dead-letter topic refuses even the record's reference; not dead-lettered: \
                         the record stays only at this offset in the source topic");
                    self.metrics.dead_letters_unwritten.inc();
                    return Processed::Done;
                }
                Err(e) => {
                    // The dead-letter topic's failure (deleted, unwritable,
                    // its brokers away), not the record's: the consumer holds
                    // here, so it says so like any other stall.
                    self.metrics.retries.inc();
                    let delay = backoff.next_delay();
                    if let Some(code) = crate::kafka::denied(&e) {
                        // A missing ACL is the service's fault: stall on this
                        // record, say so, and never skip it.
                        tracing::error!(error = %e, retry_in = ?delay, dlq = self.dead_letter.topic(),
                            "Kafka refuses this service's writes to its dead-letter topic (an ACL?); \
                             retrying the same record until it is fixed, nothing is skipped");
                        stalled = Some(Cause::KafkaAccess);
                        self.stall.stop(
                            Cause::KafkaAccess,
                            format!(
                                "Kafka refuses this service's writes to {} ({code}); retrying the record at {}[{}]@{}",
                                self.dead_letter.topic(),
                                record.topic(),
                                record.partition(),
                                record.offset()
                            ),
                        );
                    } else {
                        tracing::error!(error = %e, retry_in = ?delay, dlq = self.dead_letter.topic(),
                            "the dead-letter topic does not take the dead letter; the consumer holds \
                             here and retries (is the topic deleted or unwritable?)");
                        stalled = Some(Cause::Batch);
                        self.stall.stop(
                            Cause::Batch,
                            format!(
                                "the dead-letter topic {} does not take the dead letter of {}[{}]@{} ({e}); retrying",
                                self.dead_letter.topic(),
                                record.topic(),
                                record.partition(),
                                record.offset()
                            ),
                        );
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Processed::Interrupted,
                        () = tokio::time::sleep(delay) => {},
                    }
                }
            }
        }
    }
}

/// The SQLSTATE of a database error, if the server sent one.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn traceparent(record: &OwnedMessage) -> Option<TraceParent> {
    header(record, headers::TRACEPARENT).and_then(|v| v.parse().ok())
}

/// The value of `record`'s header `name`, if it is UTF-8 text.
fn header<'a>(record: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    record
        .headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
