//! What an order costs in CPU, part by part: each service, Kafka, PostgreSQL
//! and the load generator.
//!
//! Each part is a process tree. Its CPU time is the `utime + stime` of every
//! live process in the tree (`/proc/<pid>/stat`, through procfs; a JVM's or a
//! service's threads are in its process's figures) plus the root's
//! `cutime + cstime`, which holds the time of children it has reaped
//! (PostgreSQL backends that ended). The load generator is a child of this
//! process, reaped when its step ends: its time shows in our own `cutime`.
//! Readings before and after a step, divided by the orders it placed, give
//! CPU milliseconds per order; absolute times vary between machines, the
//! split between the parts is what shows where the next gain lies.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// A part of the flow whose CPU time is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub(crate) enum Part {
    /// order-service (HTTP intake and the relay).
    Order,
    /// invoicing-service.
    Invoicing,
    /// shipping-service.
    Shipping,
    /// The Kafka broker(s).
    Kafka,
    /// The PostgreSQL server, every backend included.
    Postgres,
    /// The load generator (or the ceiling's client, pgbench).
    Client,
}

impl Part {
    /// Every part, in report order.
    pub(crate) const ALL: [Part; 6] = [
        Part::Order,
        Part::Invoicing,
        Part::Shipping,
        Part::Kafka,
        Part::Postgres,
        Part::Client,
    ];

    /// The part that is service `name` (a service without a part of its own
    /// is not metered).
    pub(crate) fn of_service(name: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|part| part.name() == name)
    }

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Order => "order-service",
            Part::Invoicing => "invoicing-service",
            Part::Shipping => "shipping-service",
            Part::Kafka => "Kafka",
            Part::Postgres => "PostgreSQL",
            Part::Client => "load generator",
        }
    }
}

/// Cumulative CPU seconds of each part at one moment.
pub(crate) type Reading = BTreeMap<Part, f64>;

/// Reads the CPU time of the flow's process trees.
#[derive(Debug, Clone)]
pub(crate) struct CpuMeter {
    roots: Vec<(Part, Vec<u32>)>,
}

impl CpuMeter {
    /// A meter of the services' processes `services` (one pid per service,
    /// in the order of [`platform::services::ALL`]), the broker processes
    /// `kafka` and the PostgreSQL server `postgres`.
    pub(crate) fn new(services: &[u32], kafka: Vec<u32>, postgres: Option<u32>) -> Self {
        let mut roots: Vec<(Part, Vec<u32>)> = platform::services::ALL
            .iter()
            .zip(services)
            .filter_map(|(service, &pid)| Some((Part::of_service(service.name)?, vec![pid])))
            .collect();
        roots.push((Part::Kafka, kafka));
        roots.push((Part::Postgres, postgres.into_iter().collect()));
        CpuMeter { roots }
    }

    /// The parts' CPU seconds now (empty where there is no procfs).
    pub(crate) fn read(&self) -> Reading {
        let table = process_table();
        let children = children(&table);
        let mut reading: Reading = self
            .roots
            .iter()
            .map(|(part, roots)| {
                let seconds = roots
                    .iter()
                    .map(|root| tree_seconds(&table, &children, *root))
                    .sum();
                (*part, seconds)
            })
            .collect();
        let own = std::process::id();
        reading.insert(
            Part::Client,
            table.get(&own).map_or(0.0, |p| p.reaped_children),
        );
        reading
    }

    /// Each part's CPU rate while nothing is asked of it for `window`.
    pub(crate) async fn idle(&self, window: std::time::Duration) -> IdleRate {
        let before = self.read();
        let started = std::time::Instant::now();
        tokio::time::sleep(window).await;
        IdleRate::between(&before, &self.read(), started.elapsed().as_secs_f64())
    }
}

/// What each part burns with no load at all: its CPU milliseconds per second
/// of wall time (a JVM's housekeeping, consumers' polls and heartbeats, the
/// relay's and the purges' timers, PostgreSQL's background processes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct IdleRate {
    /// CPU milliseconds per second, per part.
    pub(crate) ms_per_s: Reading,
    /// How long it was measured, seconds.
    pub(crate) window_s: f64,
}

impl IdleRate {
    /// The rate between two readings `seconds` apart.
    pub(crate) fn between(before: &Reading, after: &Reading, seconds: f64) -> Self {
        let per_s = CpuCost::between(before, after, 1).ms;
        IdleRate {
            ms_per_s: per_s
                .into_iter()
                .map(|(part, ms)| (part, ms / seconds.max(f64::MIN_POSITIVE)))
                .collect(),
            window_s: seconds,
        }
    }

    /// CPU milliseconds per second of every part together.
    pub(crate) fn total_ms_per_s(&self) -> f64 {
        self.ms_per_s.values().sum()
    }

    /// Each part's rate in report order, e.g. `order-service 10.0, Kafka 252.9`.
    pub(crate) fn by_part(&self) -> String {
        Part::ALL
            .iter()
            .map(|part| {
                let ms = self.ms_per_s.get(part).copied().unwrap_or(0.0);
                format!("{} {ms:.1}", part.name())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// CPU milliseconds per unit of work (an order, a transaction) of each part
/// between two readings, and their total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct CpuCost {
    /// Milliseconds per unit, per part.
    pub(crate) ms: Reading,
    /// Their sum.
    pub(crate) total_ms: f64,
    /// The units the time was divided by.
    pub(crate) units: usize,
}

impl CpuCost {
    /// The cost of `units` units of work done between `before` and `after`.
    pub(crate) fn between(before: &Reading, after: &Reading, units: usize) -> Self {
        let divisor = units.max(1) as f64;
        let ms: Reading = after
            .iter()
            .map(|(part, now)| {
                let then = before.get(part).copied().unwrap_or(0.0);
                (*part, (now - then).max(0.0) * 1000.0 / divisor)
            })
            .collect();
        let total_ms = ms.values().sum();
        CpuCost {
            ms,
            total_ms,
            units,
        }
    }

    /// The same cost without what each part burns idle (`idle`) over the
    /// `seconds` the cost was measured in: the work the units themselves
    /// caused. Never below 0 for a part.
    pub(crate) fn above(&self, idle: &IdleRate, seconds: f64) -> Self {
        let units = self.units.max(1) as f64;
        let ms: Reading = self
            .ms
            .iter()
            .map(|(part, ms)| {
                let background = idle.ms_per_s.get(part).copied().unwrap_or(0.0) * seconds;
                (*part, (ms * units - background).max(0.0) / units)
            })
            .collect();
        CpuCost {
            total_ms: ms.values().sum(),
            ms,
            units: self.units,
        }
    }

    /// The same cost restricted to `parts`.
    pub(crate) fn only(self, parts: &[Part]) -> Self {
        let ms: Reading = self
            .ms
            .into_iter()
            .filter(|(part, _)| parts.contains(part))
            .collect();
        CpuCost {
            total_ms: ms.values().sum(),
            ms,
            units: self.units,
        }
    }

    /// Milliseconds per unit of `part` (0 when it was not measured).
    pub(crate) fn of(&self, part: Part) -> f64 {
        self.ms.get(&part).copied().unwrap_or(0.0)
    }

    /// The part that cost the most, and its share of the total.
    pub(crate) fn largest(&self) -> Option<(Part, f64)> {
        self.ms
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(part, ms)| (*part, ms / self.total_ms.max(f64::MIN_POSITIVE)))
    }
}

/// One process as the CPU accounting needs it.
#[derive(Debug, Clone, Copy)]
struct Accounted {
    parent: u32,
    /// utime + stime, seconds.
    own: f64,
    /// cutime + cstime (children it has waited for), seconds.
    reaped_children: f64,
}

/// Every process's parent and CPU time.
fn process_table() -> HashMap<u32, Accounted> {
    #[cfg(target_os = "linux")]
    {
        let tick = procfs::ticks_per_second() as f64;
        let Ok(all) = procfs::process::all_processes() else {
            return HashMap::new();
        };
        all.filter_map(Result::ok)
            .filter_map(|p| p.stat().ok())
            .filter_map(|stat| {
                let pid = u32::try_from(stat.pid).ok()?;
                let parent = u32::try_from(stat.ppid).unwrap_or(0);
                let own = (stat.utime + stat.stime) as f64 / tick;
                let children = (stat.cutime + stat.cstime).max(0) as f64 / tick;
                Some((
                    pid,
                    Accounted {
                        parent,
                        own,
                        reaped_children: children,
                    },
                ))
            })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        HashMap::new()
    }
}

/// Each pid's children in `table`.
fn children(table: &HashMap<u32, Accounted>) -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, p) in table {
        children.entry(p.parent).or_default().push(*pid);
    }
    children
}

/// The CPU seconds of `root` and every live descendant (`children`: each
/// pid's children in `table`), plus the children `root` has reaped.
fn tree_seconds(
    table: &HashMap<u32, Accounted>,
    children: &HashMap<u32, Vec<u32>>,
    root: u32,
) -> f64 {
    let Some(top) = table.get(&root) else {
        return 0.0;
    };
    let mut seconds = top.reaped_children;
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        if let Some(p) = table.get(&pid) {
            seconds += p.own;
        }
        if let Some(kids) = children.get(&pid) {
            stack.extend(kids.iter().copied().filter(|k| *k != pid));
        }
    }
    seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_counts_its_live_descendants_and_what_its_root_reaped() {
        let table: HashMap<u32, Accounted> = [
            (
                1,
                Accounted {
                    parent: 0,
                    own: 1.0,
                    reaped_children: 5.0,
                },
            ),
            (
                2,
                Accounted {
                    parent: 1,
                    own: 2.0,
                    reaped_children: 0.0,
                },
            ),
            (
                3,
                Accounted {
                    parent: 2,
                    own: 3.0,
                    reaped_children: 7.0,
                },
            ),
            (
                4,
                Accounted {
                    parent: 9,
                    own: 100.0,
                    reaped_children: 0.0,
                },
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            tree_seconds(&table, &children(&table), 1),
            1.0 + 2.0 + 3.0 + 5.0
        );
        assert_eq!(tree_seconds(&table, &children(&table), 42), 0.0);
    }

    #[test]
    fn per_order_is_the_difference_in_milliseconds_per_unit() {
        let before: Reading = [(Part::Order, 1.0), (Part::Kafka, 2.0)]
            .into_iter()
            .collect();
        let after: Reading = [(Part::Order, 2.0), (Part::Kafka, 2.5)]
            .into_iter()
            .collect();
        let cost = CpuCost::between(&before, &after, 500);
        assert_eq!(cost.of(Part::Order), 2.0);
        assert_eq!(cost.of(Part::Kafka), 1.0);
        assert_eq!(cost.of(Part::Postgres), 0.0);
        assert_eq!(cost.total_ms, 3.0);
        assert_eq!(cost.largest(), Some((Part::Order, 2.0 / 3.0)));
    }

    #[test]
    fn above_idle_takes_off_each_parts_idle_rate_over_the_window() {
        let before: Reading = [(Part::Order, 0.0), (Part::Kafka, 0.0)]
            .into_iter()
            .collect();
        // 10 s idle: order-service 0.1 s of CPU, Kafka 0.5 s.
        let idle_after: Reading = [(Part::Order, 0.1), (Part::Kafka, 0.5)]
            .into_iter()
            .collect();
        let idle = IdleRate::between(&before, &idle_after, 10.0);
        assert_eq!(idle.ms_per_s[&Part::Order], 10.0);
        assert_eq!(idle.ms_per_s[&Part::Kafka], 50.0);
        assert_eq!(idle.total_ms_per_s(), 60.0);
        // 1 000 orders in 4 s: order-service 1.04 s, Kafka 0.1 s (less than
        // its idle rate would burn: rounding of ticks, so 0, never negative).
        let after: Reading = [(Part::Order, 1.04), (Part::Kafka, 0.1)]
            .into_iter()
            .collect();
        let cost = CpuCost::between(&before, &after, 1000).above(&idle, 4.0);
        assert!((cost.of(Part::Order) - 1.0).abs() < 1e-9, "{cost:?}");
        assert_eq!(cost.of(Part::Kafka), 0.0);
        assert!((cost.total_ms - 1.0).abs() < 1e-9);
        assert_eq!(cost.units, 1000);
    }

    #[test]
    fn this_process_is_measured() {
        let meter = CpuMeter::new(
            &vec![std::process::id(); platform::services::ALL.len()],
            vec![],
            None,
        );
        let before = meter.read();
        // Work until the kernel has charged us at least one clock tick
        // (10 ms at the usual USER_HZ), or give up after 5 s of wall time.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let mut after = meter.read();
        while after[&Part::Order] <= before[&Part::Order]
            && started.elapsed() < std::time::Duration::from_secs(5)
        {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            after = meter.read();
        }
        assert!(
            after[&Part::Order] > before[&Part::Order],
            "{before:?} → {after:?}"
        );
        assert_eq!(after[&Part::Postgres], 0.0, "no PostgreSQL was given");
    }
}
