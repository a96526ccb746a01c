//! The client side of a chaos scenario: orders placed over HTTP at a steady
//! rate, each retried with its own `Idempotency-Key` until the service gives a
//! definite answer, as a careful client would while the service is crashing,
//! restarting or without its database.
//!
//! A request that timed out or lost its connection may or may not have
//! committed; retrying with the same key returns the same order either way, so
//! every order the client means to place ends up placed exactly once, and the
//! audit knows the id of each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use loadgen::{ExpectedOrder, OrderGenerator};
use orderflow_client::{ApiClient, CancelOrder, Order, PlaceOrder, Reply};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::ChaosError;

/// How long one order may keep being retried before the client gives up.
const ORDER_DEADLINE: Duration = Duration::from_secs(180);

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first and the longest pause between attempts.
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(1);

/// How many distinct unexpected answers are kept for the report.
const KEPT_SAMPLES: usize = 5;

/// What to place, how fast, where.
#[derive(Debug, Clone)]
pub(crate) struct LoadPlan {
    /// How many orders.
    pub(crate) orders: usize,
    /// Orders started per second.
    pub(crate) rate: f64,
    /// At most this many requests in flight.
    pub(crate) concurrency: usize,
    /// Seed of the order generator.
    pub(crate) seed: u64,
    /// order-service's base URL, `http://127.0.0.1:<port>`.
    pub(crate) base_url: String,
    /// Prefix of every Idempotency-Key (unique per run and scenario).
    pub(crate) key_prefix: String,
    /// Every Nth accepted order is cancelled at once (0: none), so that
    /// orders have two events whose order on the topic can be audited.
    pub(crate) cancel_every: usize,
}

/// An order the service accepted (201).
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) order_id: Uuid,
    pub(crate) expected: ExpectedOrder,
    /// When the client got its 201 (wall clock, the database's clock too).
    pub(crate) at: SystemTime,
    /// Whether the client cancelled it (and got a 200 for that).
    pub(crate) cancelled: bool,
}

/// What the client saw on the way.
#[derive(Debug, Default, Clone)]
pub(crate) struct LoadStats {
    /// Requests sent, retries included.
    pub(crate) attempts: u64,
    /// 503 answers.
    pub(crate) unavailable: u64,
    /// 503 answers whose body was `application/problem+json`.
    pub(crate) unavailable_as_problem: u64,
    /// 503 answers by cause: the problem's `detail`, which names it (a busy
    /// pool, a database away), or how the answer failed to say.
    pub(crate) unavailable_causes: BTreeMap<String, u64>,
    /// Other 5xx answers (500, 502, 504): defects.
    pub(crate) server_errors: u64,
    /// Refused, reset or timed-out connections (the service was down or stuck).
    pub(crate) transport_errors: u64,
    /// Orders answered with a 4xx (the generator's orders are valid: a defect).
    pub(crate) rejected: u64,
    /// Orders still without a definite answer at [`ORDER_DEADLINE`].
    pub(crate) gave_up: u64,
    /// Orders cancelled after they were accepted.
    pub(crate) cancelled: u64,
    /// A few of the unexpected answers, for the report.
    pub(crate) samples: Vec<String>,
}

impl LoadStats {
    fn sample(&mut self, text: String) {
        if self.samples.len() < KEPT_SAMPLES && !self.samples.contains(&text) {
            self.samples.push(text);
        }
    }
}

/// The accepted orders and the client's statistics.
#[derive(Debug)]
pub(crate) struct LoadOutcome {
    pub(crate) accepted: Vec<Accepted>,
    pub(crate) stats: LoadStats,
}

/// Places `plan.orders` orders; `progress` counts the accepted ones as they come.
pub(crate) async fn place_orders(
    plan: LoadPlan,
    progress: watch::Sender<usize>,
) -> Result<LoadOutcome, ChaosError> {
    let client = ApiClient::with_timeouts(ATTEMPT_TIMEOUT, Duration::from_secs(2))?;
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let progress = Arc::new(progress);
    let slots = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let mut generator = OrderGenerator::new(plan.seed);
    let mut tasks = JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / plan.rate.max(0.1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..plan.orders {
        ticks.tick().await;
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let order = generator.next_order();
        let request = Request {
            client: client.clone(),
            base_url: plan.base_url.clone(),
            key: format!("{}-{i}", plan.key_prefix),
        };
        let cancel = plan.cancel_every > 0 && i % plan.cancel_every == plan.cancel_every - 1;
        let (stats, progress) = (stats.clone(), progress.clone());
        tasks.spawn(async move {
            let accepted = request.place(&order.body, &stats).await;
            let mut cancelled = false;
            if let (Some(order_id), true) = (accepted, cancel) {
                cancelled = request.cancel(order_id, &stats).await;
            }
            drop(slot);
            accepted.map(|order_id| {
                progress.send_modify(|n| *n += 1);
                Accepted {
                    order_id,
                    expected: order.expected,
                    at: SystemTime::now(),
                    cancelled,
                }
            })
        });
    }
    let mut accepted = Vec::with_capacity(plan.orders);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(order)) => accepted.push(order),
            Ok(None) => {}
            Err(e) => return Err(ChaosError::Scenario(format!("an order task failed: {e}"))),
        }
    }
    let stats = stats
        .lock()
        .map(|s| s.clone())
        .map_err(|_| ChaosError::Scenario("the load statistics were poisoned".into()))?;
    Ok(LoadOutcome { accepted, stats })
}

struct Request {
    client: ApiClient,
    base_url: String,
    key: String,
}

enum Answer {
    Created(Uuid),
    Retry,
    GiveUp,
}

impl Request {
    /// Retries until a definite answer; the order's id if it was accepted.
    async fn place(&self, order: &PlaceOrder, stats: &Mutex<LoadStats>) -> Option<Uuid> {
        let started = Instant::now();
        let mut pause = FIRST_RETRY;
        loop {
            record(stats, |s| s.attempts += 1);
            let sent = self
                .client
                .send_order(&self.base_url, order, Some(&self.key))
                .await;
            match judge(sent, stats) {
                Answer::Created(id) => return Some(id),
                Answer::GiveUp => return None,
                Answer::Retry if started.elapsed() >= ORDER_DEADLINE => {
                    record(stats, |s| {
                        s.gave_up += 1;
                        s.sample(format!(
                            "{}: no definite answer after {ORDER_DEADLINE:?}",
                            self.key
                        ));
                    });
                    return None;
                }
                Answer::Retry => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// Cancels the accepted order `order_id`, retrying (cancelling is
    /// idempotent) until a definite answer; true once it is cancelled.
    async fn cancel(&self, order_id: Uuid, stats: &Mutex<LoadStats>) -> bool {
        let cancel = CancelOrder::because("changed my mind");
        let started = Instant::now();
        let mut pause = FIRST_RETRY;
        loop {
            record(stats, |s| s.attempts += 1);
            let sent = self
                .client
                .send_cancel(&self.base_url, order_id, &cancel)
                .await;
            match judge(sent, stats) {
                Answer::Created(_) => {
                    record(stats, |s| s.cancelled += 1);
                    return true;
                }
                Answer::GiveUp => return false,
                Answer::Retry if started.elapsed() >= ORDER_DEADLINE => {
                    record(stats, |s| {
                        s.gave_up += 1;
                        s.sample(format!("cancel {order_id}: no definite answer"));
                    });
                    return false;
                }
                Answer::Retry => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

/// One answer to a POST: created or OK with an order, retry, or give up.
fn judge(sent: Result<Reply, orderflow_client::ClientError>, stats: &Mutex<LoadStats>) -> Answer {
    let reply = match sent {
        Ok(reply) => reply,
        Err(_) => {
            record(stats, |s| s.transport_errors += 1);
            return Answer::Retry;
        }
    };
    match reply.status {
        201 | 200 => match reply.json::<Order>() {
            Ok(order) => Answer::Created(order.id),
            Err(e) => {
                record(stats, |s| {
                    s.rejected += 1;
                    s.sample(format!(
                        "{} without an order id ({e})",
                        status_line(reply.status)
                    ));
                });
                Answer::GiveUp
            }
        },
        503 => {
            record(stats, |s| {
                s.unavailable += 1;
                *s.unavailable_causes
                    .entry(cause_of_503(&reply))
                    .or_default() += 1;
                if reply.problem {
                    s.unavailable_as_problem += 1;
                } else {
                    s.sample(format!(
                        "503 without problem+json: {}",
                        shorten(&reply.body)
                    ));
                }
            });
            Answer::Retry
        }
        status if status >= 500 => {
            record(stats, |st| {
                st.server_errors += 1;
                st.sample(format!("{}: {}", status_line(status), shorten(&reply.body)));
            });
            Answer::Retry
        }
        status => {
            record(stats, |st| {
                st.rejected += 1;
                st.sample(format!("{}: {}", status_line(status), shorten(&reply.body)));
            });
            Answer::GiveUp
        }
    }
}

/// What a 503 says caused it: its problem+json `detail`.
fn cause_of_503(reply: &Reply) -> String {
    if !reply.problem {
        return "(not problem+json)".to_owned();
    }
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no detail)".to_owned())
}

impl LoadStats {
    /// The 503 answers the database explains (a busy pool, a database away),
    /// by their problem+json detail.
    pub(crate) fn unavailable_for_the_database(&self) -> u64 {
        [platform::db::POOL_BUSY, platform::db::DATABASE_UNAVAILABLE]
            .iter()
            .filter_map(|cause| self.unavailable_causes.get(*cause))
            .sum()
    }

    /// Each cause of a 503 with its count: `12 × "..."`.
    pub(crate) fn unavailable_by_cause(&self) -> String {
        if self.unavailable_causes.is_empty() {
            return "none".to_owned();
        }
        self.unavailable_causes
            .iter()
            .map(|(cause, n)| format!("{n} × \"{cause}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A status as reqwest shows one: `201 Created`.
fn status_line(status: u16) -> String {
    reqwest::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string())
}

fn record(stats: &Mutex<LoadStats>, update: impl FnOnce(&mut LoadStats)) {
    if let Ok(mut stats) = stats.lock() {
        update(&mut stats);
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}
