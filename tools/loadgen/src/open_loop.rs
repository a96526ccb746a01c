//! Open-loop load: `POST /orders` on a fixed schedule, whatever the answers do.
//!
//! A closed-loop client (send, wait for the answer, send the next) slows down
//! exactly when the service does, so it never measures the requests that would
//! have queued up behind a slow one: the "coordinated omission" that makes a
//! stalled service look fast. Here request `i` is due at `start + i / rate`
//! and is sent then, however many earlier requests are still waiting; its
//! latency is measured from that due time, not from when it actually left, so
//! a client that falls behind its own schedule shows up as latency too.
//!
//! The bodies are generated (and serialised) before the clock starts, so the
//! generator costs nothing during the run. The only brake is
//! [`Plan::max_in_flight`]: a request due while that many are open is not sent
//! and is counted in [`Summary::not_sent`] (a saturated service, not a result).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orderflow_client::{ApiClient, ClientError};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::OrderGenerator;

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `http://host:port/orders`.
    pub url: String,
    /// Requests per second.
    pub rate: f64,
    /// How long requests are started for.
    pub duration: Duration,
    /// Seed of the order generator.
    pub seed: u64,
    /// Requests open at once at most; a request due beyond this is not sent.
    pub max_in_flight: usize,
    /// How long one request may take before it counts as failed.
    pub timeout: Duration,
}

impl Plan {
    /// How many requests the schedule holds.
    pub fn requests(&self) -> usize {
        (self.rate * self.duration.as_secs_f64()).round().max(0.0) as usize
    }
}

/// One scheduled request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Its index in the schedule (due at `start + index / rate`).
    pub index: usize,
    /// HTTP status; 0 when no answer came (connection error, timeout) or it was not sent.
    pub status: u16,
    /// Microseconds from the due time to the complete answer (0 when not sent).
    pub latency_us: u64,
    /// The id of the order placed (from the `Location` header of a 201).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Why it failed, for requests without an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The whole run in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests in the schedule.
    pub scheduled: usize,
    /// Requests sent.
    pub sent: usize,
    /// Answered 201.
    pub created: usize,
    /// Answered with another status.
    pub other_status: usize,
    /// No answer (transport error or timeout).
    pub failed: usize,
    /// Due while [`Plan::max_in_flight`] requests were open, so not sent.
    pub not_sent: usize,
    /// Wall-clock time (ms since the Unix epoch) of the first due time.
    pub started_unix_ms: u128,
    /// Seconds from the first due time until the last request was started.
    pub send_seconds: f64,
    /// The largest delay of a send behind its due time, in microseconds
    /// (how far the client itself fell behind).
    pub max_send_delay_us: u64,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] ClientError),
    /// An order could not be encoded as JSON.
    #[error("cannot encode an order as JSON")]
    Encode(#[source] serde_json::Error),
    /// The plan cannot be run.
    #[error("invalid plan: {0}")]
    Plan(String),
}

/// Runs `plan`; returns every request's outcome (in schedule order) and the summary.
pub async fn run(plan: &Plan) -> Result<(Vec<Outcome>, Summary), LoadError> {
    if !(plan.rate > 0.0 && plan.rate.is_finite()) {
        return Err(LoadError::Plan(format!(
            "rate must be positive, got {}",
            plan.rate
        )));
    }
    let client = ApiClient::with_timeouts(plan.timeout, Duration::from_secs(5))
        .map_err(LoadError::Client)?;
    let count = plan.requests();
    let mut generator = OrderGenerator::new(plan.seed);
    let bodies: Vec<Vec<u8>> = (0..count)
        .map(|_| generator.next_order().body_bytes())
        .collect::<Result<_, _>>()
        .map_err(LoadError::Encode)?;

    let (results, mut received) = mpsc::unbounded_channel::<Outcome>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let period = Duration::from_secs_f64(1.0 / plan.rate);
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let start = Instant::now();
    let mut max_send_delay = Duration::ZERO;
    let mut not_sent = 0;
    for (index, body) in bodies.into_iter().enumerate() {
        let due = start + period.mul_f64(index as f64);
        tokio::time::sleep_until(due.into()).await;
        max_send_delay = max_send_delay.max(due.elapsed());
        if in_flight.load(Ordering::Relaxed) >= plan.max_in_flight {
            not_sent += 1;
            // The receiver lives until every sender is gone: this cannot fail.
            let _ = results.send(Outcome {
                index,
                status: 0,
                latency_us: 0,
                order_id: None,
                error: Some("not sent: too many requests open".into()),
            });
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, url, results, in_flight) = (
            client.clone(),
            plan.url.clone(),
            results.clone(),
            in_flight.clone(),
        );
        tokio::spawn(async move {
            let outcome = place(&client, &url, body, index, due).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = results.send(outcome);
        });
    }
    let send_seconds = start.elapsed().as_secs_f64();
    drop(results);
    let mut outcomes = Vec::with_capacity(count);
    while let Some(outcome) = received.recv().await {
        outcomes.push(outcome);
    }
    outcomes.sort_by_key(|o| o.index);
    let created = outcomes.iter().filter(|o| o.status == 201).count();
    let failed = outcomes
        .iter()
        .filter(|o| o.status == 0 && o.latency_us > 0)
        .count();
    let answered_otherwise = outcomes
        .iter()
        .filter(|o| o.status != 0 && o.status != 201)
        .count();
    let summary = Summary {
        scheduled: count,
        sent: count - not_sent,
        created,
        other_status: answered_otherwise,
        failed,
        not_sent,
        started_unix_ms,
        send_seconds,
        max_send_delay_us: micros(max_send_delay),
    };
    Ok((outcomes, summary))
}

/// Sends one order; the latency runs from `due`, the time it was scheduled for.
async fn place(
    client: &ApiClient,
    url: &str,
    body: Vec<u8>,
    index: usize,
    due: Instant,
) -> Outcome {
    // The reply is complete only once its body is read (and the connection
    // can serve the next request).
    let reply = match client.post_body(url, None, body).await {
        Ok(reply) => reply,
        Err(e) => return failure(index, due, &e),
    };
    let order_id = reply
        .location
        .as_deref()
        .and_then(|location| location.rsplit('/').next())
        .map(str::to_owned);
    Outcome {
        index,
        status: reply.status,
        latency_us: micros(due.elapsed()).max(1),
        order_id: (reply.status == 201).then_some(order_id).flatten(),
        error: None,
    }
}

fn failure(index: usize, due: Instant, error: &ClientError) -> Outcome {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    let cause = match error {
        ClientError::Http { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    Outcome {
        index,
        status: 0,
        latency_us: micros(due.elapsed()).max(1),
        order_id: None,
        error: Some(format!("{kind}: {cause}")),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_holds_rate_times_duration_requests() {
        let plan = Plan {
            url: String::new(),
            rate: 250.0,
            duration: Duration::from_secs(4),
            seed: 1,
            max_in_flight: 10,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(plan.requests(), 1000);
    }

    #[test]
    fn outcomes_round_trip_as_json_lines() {
        let outcome = Outcome {
            index: 3,
            status: 201,
            latency_us: 1234,
            order_id: Some("0199-abc".into()),
            error: None,
        };
        let line = serde_json::to_string(&outcome).expect("json");
        assert!(!line.contains("error"));
        assert_eq!(
            serde_json::from_str::<Outcome>(&line).expect("parse"),
            outcome
        );
    }
}
