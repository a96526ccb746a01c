//! The benchmark's results and their markdown report (`BENCHMARKS.md`).
//!
//! Everything in the report is computed from one run's measurements, except
//! the tuning notes, which are written by people (`benchmarks/tuning.md`,
//! with the measurements behind each choice) and included verbatim.

use std::fmt::Write as _;

use chrono::{DateTime, Local};

use super::BenchOptions;
use super::ceilings::{PGBENCH_CLIENTS, PgbenchResult, ProducerResult};
use super::drain::{DrainResult, EventShape};
use super::latency::Percentiles;
use super::machine::Machine;
use super::step::{
    MAX_GROWTH, MAX_QUEUED_SECONDS, MIN_CREATED, QUEUE_SLACK, SAMPLE_INTERVAL, StepResult,
};
use devinfra::stack::Service;

/// The hand-written tuning notes, relative to the workspace root.
pub(crate) const TUNING_NOTES: &str = "benchmarks/tuning.md";

/// How long the phases took, in seconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Timings {
    pub(crate) total_s: f64,
    pub(crate) steps_s: f64,
    pub(crate) ceilings_s: f64,
    pub(crate) drain_s: f64,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchResults {
    pub(crate) started: DateTime<Local>,
    pub(crate) options: BenchOptions,
    pub(crate) machine: Machine,
    pub(crate) knobs: Vec<(String, String)>,
    pub(crate) idle_rss_kib: [u64; 3],
    pub(crate) steps: Vec<StepResult>,
    pub(crate) event: EventShape,
    pub(crate) pgbench: PgbenchResult,
    pub(crate) pgbench_no_notify: PgbenchResult,
    pub(crate) producer: ProducerResult,
    pub(crate) drain: DrainResult,
    pub(crate) timings: Timings,
}

impl BenchResults {
    /// The highest sustained step, if any.
    pub(crate) fn sustained(&self) -> Option<&StepResult> {
        self.steps
            .iter()
            .filter(|s| s.sustained)
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }

    /// The highest rate sustained, orders/s (0 when none was).
    pub fn sustained_rate(&self) -> f64 {
        self.sustained().map_or(0.0, |s| s.rate)
    }

    /// The relay's drain rate, events/s.
    pub fn drain_rate(&self) -> f64 {
        self.drain.events_per_s
    }

    /// The report; `plot` is the plot's path relative to the report.
    pub fn markdown(&self, plot: &str) -> String {
        let mut md = String::new();
        self.header(&mut md);
        self.headline(&mut md, plot);
        self.machine_section(&mut md);
        method(&mut md);
        self.per_rate(&mut md);
        self.sustained_section(&mut md);
        self.drain_section(&mut md);
        self.footprint(&mut md);
        self.ceilings(&mut md);
        self.tuning(&mut md);
        md
    }

    fn header(&self, md: &mut String) {
        let o = &self.options;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `cargo xtask bench` ({} mode, {:?} build) on {}; the run took {:.0} s \
             (rate steps {:.0} s, ceilings {:.0} s, relay drain {:.0} s). Every figure below \
             comes from that run; only the tuning notes are written by hand. Regenerate with \
             `cargo xtask bench` on a quiet machine: the load generator, the services, Kafka \
             and PostgreSQL all share it.\n",
            o.mode,
            o.profile,
            self.started.format("%Y-%m-%d %H:%M %:z"),
            self.timings.total_s,
            self.timings.steps_s,
            self.timings.ceilings_s,
            self.timings.drain_s
        );
    }

    fn headline(&self, md: &mut String, plot: &str) {
        let _ = writeln!(md, "## Headline\n");
        let sustained = self.sustained();
        let rate = self.sustained_rate();
        let _ = writeln!(
            md,
            "| Figure | Ours | Ceiling | Ratio |\n|---|---:|---:|---:|"
        );
        let rate_text = if sustained.is_some() {
            format!("{rate:.0}")
        } else {
            "0 (no rate was sustained)".into()
        };
        let _ = writeln!(
            md,
            "| Sustained throughput (orders/s) | {rate_text} | {:.0} (pgbench, transactions/s) | {} |",
            self.pgbench.tps,
            percent(rate / self.pgbench.tps)
        );
        let _ = writeln!(
            md,
            "| Relay drain (events/s) | {:.0} | {:.0} (ProducerPerformance, records/s) | {} |",
            self.drain.events_per_s,
            self.producer.records_per_s,
            percent(self.drain.events_per_s / self.producer.records_per_s)
        );
        // Latencies at the sustained rate, or at the lowest rate run when none was.
        let shown = sustained.or_else(|| self.steps.first());
        let label = match (sustained, shown) {
            (Some(s), _) => format!("{:.0} orders/s", s.rate),
            (None, Some(s)) => format!("{:.0} orders/s (not sustained)", s.rate),
            (None, None) => "no rate".into(),
        };
        let at = |p: Option<Percentiles>, what: &str| {
            format!(
                "| {what} p99 at {label} (ms) | {} | | |",
                p.map_or("-".into(), |p| format!("{:.1}", p.p99))
            )
        };
        let _ = writeln!(md, "{}", at(shown.and_then(|s| s.http), "POST /orders"));
        let _ = writeln!(
            md,
            "{}",
            at(shown.and_then(|s| s.invoice), "Order → invoice")
        );
        let _ = writeln!(
            md,
            "{}",
            at(shown.and_then(|s| s.shipment), "Order → shipment")
        );
        let _ = writeln!(
            md,
            "\n![Latency percentiles versus offered rate]({plot})\n\n\
             *Latency percentiles (log scale) versus offered rate: `POST /orders` from each \
             request's scheduled time, and order commit to invoice / shipment commit.*\n"
        );
    }

    fn machine_section(&self, md: &mut String) {
        let m = &self.machine;
        let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
        for (name, value) in [
            ("CPU", m.cpu.clone()),
            ("Cores", m.cores.to_string()),
            ("Memory", format!("{:.1} GiB", m.memory_gib)),
            ("OS", m.os.clone()),
            ("Kernel", m.kernel.clone()),
            ("Rust", m.rustc.clone()),
            ("Java", m.java.clone()),
            ("PostgreSQL", m.postgres.clone()),
            ("Kafka", m.kafka.clone()),
            ("librdkafka", m.librdkafka.clone()),
        ] {
            let _ = writeln!(md, "| {name} | {value} |");
        }
        let _ = writeln!(
            md,
            "\nOne Kafka node (KRaft) and one PostgreSQL server (`fsync` and \
             `synchronous_commit` on) on loopback, the three services built {:?}, and the load \
             generator, all on this machine.\n",
            self.options.profile
        );
    }

    fn per_rate(&self, md: &mut String) {
        let _ = writeln!(md, "## Results per rate\n");
        for s in &self.steps {
            let verdict = if s.sustained {
                "sustained"
            } else {
                "not sustained"
            };
            let _ = writeln!(md, "### {:.0} orders/s: {verdict}\n", s.rate);
            let _ = writeln!(
                md,
                "| Latency (ms) | count | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for (name, p) in [
                ("POST /orders", s.http),
                ("order → invoice", s.invoice),
                ("order → shipment", s.shipment),
            ] {
                let _ = writeln!(md, "{}", percentile_row(name, p));
            }
            let _ = writeln!(
                md,
                "\n| Queue during the load | peak | trend (records/s) |\n|---|---:|---:|"
            );
            for (name, q) in [
                ("outbox backlog", s.outbox),
                ("invoicing lag", s.invoicing_lag),
                ("shipping lag", s.shipping_lag),
            ] {
                let _ = writeln!(md, "| {name} | {} | {:+.1} |", q.peak, q.trend_per_s);
            }
            let c = &s.client;
            let _ = writeln!(
                md,
                "\nClient: {} scheduled, {} created ({:.0}/s achieved), {} other status, {} \
                 without answer, {} not sent; the client fell at most {:.1} ms behind its \
                 schedule. {}. Peak RSS: {}.",
                c.scheduled,
                c.created,
                s.achieved_rate,
                c.other_status,
                c.failed,
                c.not_sent,
                c.max_send_delay_ms,
                match s.settled_after_s {
                    Some(t) => format!(
                        "Every invoice and shipment was there {t:.1} s after the last request"
                    ),
                    None => format!(
                        "{} invoices and {} shipments were still missing when the run stopped waiting",
                        s.missing_invoices, s.missing_shipments
                    ),
                },
                rss_list(&s.rss_peak_kib)
            );
            if !s.reasons.is_empty() {
                let _ = writeln!(md, "\nNot sustained because: {}.", s.reasons.join("; "));
            }
            let _ = writeln!(md);
        }
    }

    fn sustained_section(&self, md: &mut String) {
        let _ = writeln!(md, "## Sustained throughput\n");
        match self.sustained() {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "**{:.0} orders/s** is the highest rate at which every queue stayed bounded \
                     (definition under *Method*). ",
                    s.rate
                );
            }
            None => {
                let _ = writeln!(md, "**No rate** was sustained in this run. ");
            }
        }
        let rates: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{:.0} ({})",
                    s.rate,
                    if s.sustained {
                        "bounded"
                    } else {
                        "not bounded"
                    }
                )
            })
            .collect();
        let _ = writeln!(md, "Rates run: {}.\n", rates.join(", "));
    }

    fn drain_section(&self, md: &mut String) {
        let d = &self.drain;
        let _ = writeln!(
            md,
            "## Relay drain\n\n{} events in the outbox (relay held off with `RELAY_ENABLED=false`, \
             consumers stopped), then order-service restarted with the relay on: the outbox was \
             empty **{:.1} s** after the relay's first batch, **{:.0} events/s** \
             ({:.0} % of the ProducerPerformance ceiling). The relay started publishing {:.1} s \
             after order-service was launched. Each event is {:.0} bytes of JSON, {} bytes per \
             record with its key and headers.\n",
            d.events,
            d.seconds,
            d.events_per_s,
            100.0 * d.events_per_s / self.producer.records_per_s,
            d.startup_s,
            self.event.value_bytes,
            self.event.record_bytes
        );
    }

    fn footprint(&self, md: &mut String) {
        let _ = writeln!(md, "## Footprint\n");
        let at = self.sustained();
        let header = match at {
            Some(s) => format!("peak RSS at {:.0} orders/s (MiB)", s.rate),
            None => "peak RSS at the highest rate run (MiB)".into(),
        };
        let busy = at.or_else(|| self.steps.last());
        let _ = writeln!(
            md,
            "| Service | idle RSS (MiB) | {header} |\n|---|---:|---:|"
        );
        for (i, service) in Service::ALL.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {service} | {:.1} | {} |",
                mib(self.idle_rss_kib[i]),
                busy.map_or("-".into(), |s| format!("{:.1}", mib(s.rss_peak_kib[i])))
            );
        }
        let _ = writeln!(
            md,
            "\nRSS is `VmRSS` from `/proc/<pid>/status`: idle right after start-up, busy as the \
             largest of the samples taken every {} ms during the load.\n",
            SAMPLE_INTERVAL.as_millis()
        );
    }

    fn ceilings(&self, md: &mut String) {
        let p = &self.producer;
        let rate = self.sustained_rate();
        let notify_cost = 1.0 - self.pgbench.tps / self.pgbench_no_notify.tps;
        let _ = writeln!(
            md,
            "## Ceilings and ratios\n\n\
             | Ceiling | Measured | Ours | Ratio |\n|---|---:|---:|---:|\n\
             | pgbench, one order's transaction with NOTIFY, {PGBENCH_CLIENTS} clients (transactions/s) | {:.0} | {rate:.0} orders/s sustained | {} |\n\
             | pgbench, the same without NOTIFY (transactions/s) | {:.0} | | |\n\
             | ProducerPerformance, {} records of {} bytes, acks=all, idempotent (records/s) | {:.0} | {:.0} events/s drained | {} |\n",
            self.pgbench.tps,
            percent(rate / self.pgbench.tps),
            self.pgbench_no_notify.tps,
            p.records,
            p.record_size,
            p.records_per_s,
            self.drain.events_per_s,
            percent(self.drain.events_per_s / p.records_per_s),
        );
        let _ = writeln!(
            md,
            "pgbench's average transaction took {:.2} ms with NOTIFY and {:.2} ms without; the \
             NOTIFY costs {:.0} % of the intake ceiling here (PostgreSQL serialises the commits \
             of notifying transactions). ProducerPerformance sent {:.1} MB/s with {:.1} ms \
             average and {:.0} ms p99 latency.\n",
            self.pgbench.latency_ms,
            self.pgbench_no_notify.latency_ms,
            100.0 * notify_cost,
            p.mb_per_s,
            p.avg_latency_ms,
            p.p99_latency_ms
        );
    }

    fn tuning(&self, md: &mut String) {
        let _ = writeln!(md, "## Tuning\n");
        if self.knobs.is_empty() {
            let _ = writeln!(
                md,
                "This run used the services' defaults (the configuration table in README.md).\n"
            );
        } else {
            let knobs: Vec<String> = self
                .knobs
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect();
            let _ = writeln!(
                md,
                "This run set {} on every service; everything else at the defaults (README.md).\n",
                knobs.join(", ")
            );
        }
        let notes = std::fs::read_to_string(devinfra::workspace_root().join(TUNING_NOTES))
            .unwrap_or_else(|_| format!("(no tuning notes: {TUNING_NOTES} is missing)\n"));
        let _ = writeln!(md, "{}", notes.trim_end());
    }
}

fn method(md: &mut String) {
    let _ = writeln!(
        md,
        "## Method\n\n\
         - **Open-loop load.** The `loadgen` binary sends `POST /orders` with realistic, varied \
           orders (one to five lines, several currencies, billing and shipping addresses apart) \
           on a fixed schedule, whatever the answers do, so there is no coordinated omission. \
           The HTTP latency runs from each request's *scheduled* time to its complete answer.\n\
         - **End to end.** From the commit of the order's transaction to the commit of the \
           invoice's and of the shipment's transaction: `pg_xact_commit_timestamp(xmin)` of each \
           row with `track_commit_timestamp = on`, all three databases on one server, one clock. \
           (`placed_at`, `issued_at` and `created_at` hold `now()`, each transaction's *start*.)\n\
         - **Percentiles** come from HDR histograms (3 significant digits) of every order of a \
           rate step.\n\
         - **Bounded.** During each step the outbox backlog (rows in `outbox`) and each consumer \
           group's lag (end offsets minus committed offsets) are sampled every {} ms. A rate R is \
           *sustained* when, while requests were sent, no queue held more than R × {:.0} s + {:.0} \
           records, no queue's mean grew from the middle to the last third of the step faster than \
           {:.0} % of R per second, at least {:.1} % of the requests were answered 201, and every order \
           reached invoicing and shipping afterwards. Offsets are committed every second, so a \
           lag reads up to a second of records high even when the consumer keeps up.\n\
         - **Rates** run in order (100, 500, 1 000, 2 000, then ×1.5) until one is not \
           sustained; then up to three more rates halve the gap between the highest sustained \
           and the lowest unsustained one (in steps of 25 orders/s). A warm-up of 2 s at \
           50 orders/s runs first and is not reported.\n",
        SAMPLE_INTERVAL.as_millis(),
        MAX_QUEUED_SECONDS,
        QUEUE_SLACK,
        MAX_GROWTH * 100.0,
        MIN_CREATED * 100.0
    );
}

fn percentile_row(name: &str, p: Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p.count, p.p50, p.p90, p.p99, p.p999, p.max
        ),
        None => format!("| {name} | 0 | - | - | - | - | - |"),
    }
}

fn rss_list(kib: &[u64; 3]) -> String {
    Service::ALL
        .iter()
        .zip(kib)
        .map(|(s, k)| format!("{s} {:.1} MiB", mib(*k)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percent(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.0} %", ratio * 100.0)
    } else {
        "-".into()
    }
}
