//! `GET /overview`: the three services at a glance, with small charts of
//! the last minutes drawn from their own `/metrics`: orders per second
//! (order-service's `orders_placed`), the outbox backlog (`outbox_backlog`),
//! each consumer group's lag (`inbox_consumer_lag`), dead letters
//! (`inbox_dead_lettered`) and the end-to-end latency from an order's commit
//! to its invoice's and shipment's commit (`inbox_event_latency_seconds`,
//! the mean over each interval).
//!
//! Samples are taken when the overview is looked at (at most one a second,
//! whoever looks), not in the background: a service nobody watches scrapes
//! nothing. They are kept for [`WINDOW`]; the charts are SVG drawn on the
//! server, refreshed by `live.js`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use platform::services::{self, ORDER_SERVICE};
use platform_web::web::layout::{Section, page};
use platform_web::web::{PageError, ok};
use prometheus_client::registry::Registry;

use super::Pages;
use super::upstream::{Consumer, Upstream};

/// How far back the charts go.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// The least time between two samples.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// One reading of the counters and gauges, as scraped.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    orders_placed: f64,
    backlog: f64,
    lag: [Option<f64>; 2],
    dead_lettered: [Option<f64>; 2],
    latency_sum: [Option<f64>; 2],
    latency_count: [Option<f64>; 2],
}

/// One point of the charts.
#[derive(Debug, Clone, Copy)]
struct Point {
    at: Instant,
    orders_per_second: Option<f64>,
    backlog: f64,
    lag: [Option<f64>; 2],
    dead_letters: Option<f64>,
    latency_ms: [Option<f64>; 2],
}

#[derive(Debug, Default)]
struct History {
    last: Option<(Instant, Reading)>,
    /// When the sample being taken now was started: concurrent viewers do
    /// not take a second one (two points a moment apart make a rate spike).
    sampling_since: Option<Instant>,
    points: VecDeque<Point>,
}

/// The overview's samples; cheap to clone, every clone shares them.
#[derive(Clone)]
pub struct Overview {
    history: Arc<Mutex<History>>,
    registry: Arc<Registry>,
    upstream: Upstream,
}

impl std::fmt::Debug for Overview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overview").finish_non_exhaustive()
    }
}

impl Overview {
    /// Samples this service's `registry` and the consumers through `upstream`.
    pub fn new(registry: Arc<Registry>, upstream: Upstream) -> Self {
        Overview {
            history: Arc::default(),
            registry,
            upstream,
        }
    }

    /// Takes a sample unless one was taken within the last second.
    async fn sample(&self) {
        let now = Instant::now();
        {
            let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = |at: Instant| now.duration_since(at) < MIN_INTERVAL;
            if history.last.is_some_and(|(at, _)| recent(at))
                || history.sampling_since.is_some_and(recent)
            {
                return;
            }
            history.sampling_since = Some(now);
        }
        let mut own = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut own, &self.registry) {
            tracing::warn!(error = %e, "encoding this service's metrics failed");
        }
        let (invoicing, shipping) = tokio::join!(
            self.upstream.metrics(Consumer::Invoicing),
            self.upstream.metrics(Consumer::Shipping),
        );
        let mut reading = Reading {
            orders_placed: value(&own, "orders_placed_total").unwrap_or(0.0),
            backlog: value(&own, "outbox_backlog").unwrap_or(0.0),
            ..Reading::default()
        };
        for (i, text) in [invoicing, shipping].iter().enumerate() {
            if let Ok(text) = text {
                reading.lag[i] = value(text, "inbox_consumer_lag");
                reading.dead_lettered[i] = value(text, "inbox_dead_lettered_total");
                reading.latency_sum[i] = value(text, "inbox_event_latency_seconds_sum");
                reading.latency_count[i] = value(text, "inbox_event_latency_seconds_count");
            }
        }
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.sampling_since = None;
        let previous = history.last.replace((now, reading));
        let (orders_per_second, latency_ms) = match previous {
            Some((then, before)) => {
                let seconds = now.duration_since(then).as_secs_f64().max(0.001);
                let mut latency = [None; 2];
                for (i, slot) in latency.iter_mut().enumerate() {
                    if let (Some(sum), Some(count), Some(sum0), Some(count0)) = (
                        reading.latency_sum[i],
                        reading.latency_count[i],
                        before.latency_sum[i],
                        before.latency_count[i],
                    ) && count > count0
                    {
                        *slot = Some((sum - sum0) / (count - count0) * 1000.0);
                    }
                }
                (
                    Some(((reading.orders_placed - before.orders_placed) / seconds).max(0.0)),
                    latency,
                )
            }
            None => (None, [None; 2]),
        };
        let dead_letters = match reading.dead_lettered {
            [None, None] => None,
            [a, b] => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        history.points.push_back(Point {
            at: now,
            orders_per_second,
            backlog: reading.backlog,
            lag: reading.lag,
            dead_letters,
            latency_ms,
        });
        while history
            .points
            .front()
            .is_some_and(|p| now.duration_since(p.at) > WINDOW)
        {
            history.points.pop_front();
        }
    }

    fn points(&self) -> Vec<Point> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.points.iter().copied().collect()
    }

    /// The charts fragment, refreshed every two seconds.
    fn charts(&self) -> Markup {
        let points = self.points();
        let series = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(Instant, f64)> {
            points
                .iter()
                .filter_map(|p| f(p).map(|v| (p.at, v)))
                .collect()
        };
        html! {
            section.charts #charts data-live-url="/overview/charts" data-live-every="2000" {
                (chart("Orders per second", "orders/s", &series(&|p| p.orders_per_second), None, 1))
                (chart("Outbox backlog", "events waiting", &series(&|p| Some(p.backlog)), None, 0))
                (chart("Consumer lag", "records behind",
                    &series(&|p| p.lag[0]), Some(("invoicing", "shipping", &series(&|p| p.lag[1]))), 0))
                (chart("Dead letters", "records refused, both consumers", &series(&|p| p.dead_letters), None, 0))
                (chart("End-to-end latency", "ms, order commit to effect commit",
                    &series(&|p| p.latency_ms[0]), Some(("invoicing", "shipping", &series(&|p| p.latency_ms[1]))), 0))
            }
        }
    }
}

/// The value of the sample `name` (no labels) in an OpenMetrics text.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (metric, rest) = line.split_once(' ')?;
        (metric == name).then(|| rest.split_whitespace().next()?.parse().ok())?
    })
}

/// A chart's series: (when, value), oldest first.
type Series = [(Instant, f64)];

/// A second series drawn in the same chart: the first series' label, this
/// one's label, and its points.
type Second<'a> = (&'a str, &'a str, &'a Series);

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 80.0;

/// A small chart: the latest value large, the last minutes as a line (a
/// second series, when given, in another colour).
fn chart(
    title: &str,
    unit: &str,
    first: &[(Instant, f64)],
    second: Option<Second<'_>>,
    decimals: usize,
) -> Markup {
    let all = first
        .iter()
        .chain(second.map_or(&[][..], |(_, _, s)| s).iter());
    let max = all.clone().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { max * 1.1 } else { 1.0 };
    let newest = all.clone().map(|(at, _)| *at).max();
    let oldest = all.clone().map(|(at, _)| *at).min();
    // The x axis spans what has been seen, up to the window (at least 30 s).
    let span = match (newest, oldest) {
        (Some(newest), Some(oldest)) => newest.duration_since(oldest),
        _ => Duration::ZERO,
    }
    .clamp(Duration::from_secs(30), WINDOW)
    .as_secs_f64();
    let line = |series: &[(Instant, f64)]| -> String {
        let Some(newest) = newest else {
            return String::new();
        };
        series
            .iter()
            .map(|(at, v)| {
                let age = newest.duration_since(*at).as_secs_f64();
                let x = WIDTH - age / span * WIDTH;
                let y = HEIGHT - v / scale * HEIGHT;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let latest = |series: &[(Instant, f64)]| {
        series
            .last()
            .map_or("–".to_owned(), |(_, v)| format!("{v:.decimals$}"))
    };
    html! {
        div.card.chart data-chart=(title) {
            h3 { (title) }
            div.now {
                @match second {
                    Some((a, b, s)) => {
                        (latest(first)) " " span.legend { (a) } " · " (latest(s)) " " span.legend.second { (b) }
                    }
                    None => { (latest(first)) }
                }
            }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } preserveAspectRatio="none" role="img" aria-label=(title) {
                line.axis x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) {}
                polyline.line points=(line(first)) {}
                @if let Some((_, _, s)) = second { polyline.line.second points=(line(s)) {} }
            }
            div.legend { (unit) "; up to the last " (WINDOW.as_secs() / 60) " min, peak " (format!("{max:.decimals$}")) }
        }
    }
}

/// `GET /overview`.
pub async fn show(State(pages): State<Pages>) -> Result<Response, PageError> {
    pages.overview.sample().await;
    let links = &pages.links;
    let content = html! {
        h1 { "Overview" }
        p.muted { "Orders enter at order-service, travel through its outbox and Kafka, and are "
                  "invoiced and shipped by two consumers, each with its own database." }
        div.services {
            div.card {
                h2 { a href={ (links.order) "/" } { (ORDER_SERVICE.name) } }
                p { (ORDER_SERVICE.summary) }
                p { a href={ (links.order) "/new" } { "Place an order" } " · " a href={ (links.order) "/metrics" } { "metrics" } }
            }
            @for service in services::consumers() {
                div.card {
                    h2 { a href={ (links.of(service)) "/" } { (service.name) } }
                    p { (service.summary) }
                    p { a href={ (links.of(service)) "/metrics" } { "metrics" } }
                }
            }
        }
        h2 { "The last minutes" }
        (pages.overview.charts())
    };
    Ok(ok(page("Overview", links, Section::Overview, content)))
}

/// `GET /overview/charts`: the charts fragment.
pub async fn charts(State(pages): State<Pages>) -> Response {
    pages.overview.sample().await;
    Html(pages.overview.charts().into_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two viewers at once (the page and its charts fragment) take one
    /// sample, not two a moment apart.
    #[tokio::test]
    async fn concurrent_viewers_take_one_sample() {
        let upstream = Upstream::new("http://127.0.0.1:1", "http://127.0.0.1:1").unwrap();
        let overview = Overview::new(Arc::new(Registry::default()), upstream);
        tokio::join!(overview.sample(), overview.sample());
        assert_eq!(overview.points().len(), 1);
    }

    #[test]
    fn values_are_read_by_exact_name() {
        let text = "# TYPE orders_placed counter\norders_placed_total 42\n\
                    inbox_consumer_lag 3\ninbox_event_latency_seconds_sum 1.5\n";
        assert_eq!(value(text, "orders_placed_total"), Some(42.0));
        assert_eq!(value(text, "inbox_consumer_lag"), Some(3.0));
        assert_eq!(value(text, "inbox_event_latency_seconds_sum"), Some(1.5));
        assert_eq!(value(text, "orders_placed"), None);
    }

    #[test]
    fn a_chart_draws_its_series_and_escapes_nothing_it_did_not_write() {
        let now = Instant::now();
        let series = [(now - Duration::from_secs(60), 1.0), (now, 3.0)];
        let svg = chart("Lag", "records", &series, None, 0).into_string();
        assert!(svg.contains("polyline"), "{svg}");
        assert!(
            svg.contains("300.0,"),
            "the newest point is at the right edge: {svg}"
        );
        assert!(
            chart("Empty", "x", &[], None, 0)
                .into_string()
                .contains("–")
        );
    }
}
