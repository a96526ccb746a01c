//! What a scenario found, and how it is shown: on the terminal as it
//! finishes, and in LAB.md after a full run.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Scenario;
use crate::chart::Chart;

/// What the counts say about a scenario's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The claim held as stated.
    Holds,
    /// The claim held, with a nuance worth knowing (one line).
    HoldsWithNuance(String),
    /// The claim did not hold; what was seen instead (one line).
    DoesNotHold(String),
}

/// A verdict without its line, for what a scenario is expected to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// Holds.
    Holds,
    /// Holds with a nuance.
    HoldsWithNuance,
    /// Does not hold.
    DoesNotHold,
}

impl VerdictKind {
    /// How the verdict reads.
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::Holds => "holds",
            VerdictKind::HoldsWithNuance => "holds with a nuance",
            VerdictKind::DoesNotHold => "does not hold",
        }
    }
}

impl Verdict {
    /// The verdict without its line.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Verdict::Holds => VerdictKind::Holds,
            Verdict::HoldsWithNuance(_) => VerdictKind::HoldsWithNuance,
            Verdict::DoesNotHold(_) => VerdictKind::DoesNotHold,
        }
    }

    /// "holds", or "holds with a nuance: ...", or "does not hold: ...".
    pub fn line(&self) -> String {
        match self {
            Verdict::Holds => self.kind().label().to_owned(),
            Verdict::HoldsWithNuance(line) | Verdict::DoesNotHold(line) => {
                format!("{}: {line}", self.kind().label())
            }
        }
    }
}

/// A small table of counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells, as many as headers.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// As a markdown table (numbers right-aligned).
    pub fn markdown(&self) -> String {
        let numeric = self.numeric_columns();
        let mut out = format!("| {} |\n|", self.headers.join(" | "));
        for is_number in &numeric {
            out.push_str(if *is_number { "---:|" } else { "---|" });
        }
        out.push('\n');
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    /// As aligned plain text, for the terminal.
    pub fn text(&self) -> String {
        let numeric = self.numeric_columns();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers[c])
                    .chain(self.rows.iter().filter_map(|r| r.get(c)))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let width = widths.get(c).copied().unwrap_or(0);
                    if numeric.get(c).copied().unwrap_or(false) {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            format!("  {}", parts.join("  ").trim_end())
        };
        let mut out = line(&self.headers);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    fn numeric_columns(&self) -> Vec<bool> {
        (0..self.headers.len())
            .map(|c| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| {
                        r.get(c).is_some_and(|cell| {
                            cell.trim_end_matches(['%', 's'])
                                .replace([',', '.', ' ', '-', '+'], "")
                                .chars()
                                .all(|ch| ch.is_ascii_digit())
                                && cell.chars().any(|ch| ch.is_ascii_digit())
                        })
                    })
            })
            .collect()
    }
}

/// What one scenario found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it was set up, with the sizes of this run.
    pub setup: String,
    /// Its counts.
    pub tables: Vec<Table>,
    /// Facts worth a line below the tables.
    pub notes: Vec<String>,
    /// What the counts say.
    pub verdict: Verdict,
    /// A time series or curve worth a picture (LAB.md only).
    pub chart: Option<Chart>,
}

/// One scenario's outcome in a run.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// Which scenario.
    pub scenario: Scenario,
    /// What it found.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl ScenarioResult {
    /// The verdict is the one this scenario is expected to reach.
    pub fn as_expected(&self) -> bool {
        self.outcome.verdict.kind() == self.scenario.expected()
    }

    /// Setup, tables, notes and verdict as terminal text.
    pub fn text(&self) -> String {
        let mut out = format!("Setup: {}\n\n", sentence(&self.outcome.setup));
        for table in &self.outcome.tables {
            out.push_str(&table.text());
            out.push('\n');
        }
        for note in &self.outcome.notes {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(
            out,
            "Verdict: {}{} ({:.0} s)",
            self.outcome.verdict.line(),
            if self.as_expected() {
                String::new()
            } else {
                format!(
                    "  [UNEXPECTED: this lab expects \"{}\"]",
                    self.scenario.expected().label()
                )
            },
            self.elapsed.as_secs_f64()
        );
        out
    }
}

/// Every scenario's result of one run.
#[derive(Debug, Clone)]
pub struct LabReport {
    /// Results in run order.
    pub results: Vec<ScenarioResult>,
    /// Smaller counts (the run inside `cargo xtask test`).
    pub quick: bool,
    /// The Kafka release the brokers ran.
    pub kafka_version: String,
    /// When the run started (local time, for the report).
    pub started: String,
    /// CPU cores of the machine it ran on.
    pub cores: usize,
    /// How long the whole run took.
    pub elapsed: Duration,
}

impl LabReport {
    /// True when every scenario reached its expected verdict.
    pub fn as_expected(&self) -> bool {
        self.results.iter().all(ScenarioResult::as_expected)
    }

    /// The summary: scenario | verdict | expected | seconds.
    pub fn summary(&self) -> Table {
        let mut table = Table::new(&["#", "scenario", "verdict", "as expected", "seconds"]);
        for r in &self.results {
            table.row(vec![
                r.scenario.number().to_string(),
                r.scenario.name().to_owned(),
                r.outcome.verdict.kind().label().to_owned(),
                if r.as_expected() { "yes" } else { "NO" }.to_owned(),
                format!("{:.0}", r.elapsed.as_secs_f64()),
            ]);
        }
        table
    }

    /// LAB.md: how it was made, the summary, then each scenario's claim,
    /// setup, counts, verdict and chart (`chart_links` by scenario).
    pub fn markdown(&self, chart_link: impl Fn(Scenario) -> Option<String>) -> String {
        let mut out = String::from(
            "# The Kafka lab\n\n\
             Twelve claims people learn about Kafka, each tested on real brokers and counted. \
             `cargo xtask lab` wrote this file: every number below comes from its last full run \
             (do not edit by hand).\n\n",
        );
        let _ = writeln!(
            out,
            "That run: Apache Kafka {} in KRaft mode (one node; three for replication) and PostgreSQL, \
             as local processes on free ports of a {}-core machine; started {}, {:.0} s in all.\n",
            self.kafka_version,
            self.cores,
            self.started,
            self.elapsed.as_secs_f64()
        );
        out.push_str(
            "Run one scenario with `cargo xtask lab <name>`, list them with `cargo xtask lab --list`; \
             `cargo xtask test` runs every scenario with smaller counts and fails when a verdict \
             is not the expected one.\n\n",
        );
        let mut summary = Table::new(&["#", "scenario", "claim", "verdict"]);
        for r in &self.results {
            summary.row(vec![
                r.scenario.number().to_string(),
                format!("[{}](#{})", r.scenario.name(), anchor(r.scenario)),
                r.scenario.claim().to_owned(),
                r.outcome.verdict.kind().label().to_owned(),
            ]);
        }
        out.push_str(&summary.markdown());
        for r in &self.results {
            let _ = write!(
                out,
                "\n## {}. {}: {}\n\n**Claim.** {}\n\n**Setup.** {}\n\n",
                r.scenario.number(),
                r.scenario.name(),
                r.scenario.title(),
                r.scenario.claim(),
                sentence(&r.outcome.setup)
            );
            for table in &r.outcome.tables {
                out.push_str(&table.markdown());
                out.push('\n');
            }
            if let Some(link) = chart_link(r.scenario) {
                let _ = writeln!(out, "![{}]({link})\n", r.scenario.title());
            }
            for note in &r.outcome.notes {
                let _ = writeln!(out, "- {note}");
            }
            if !r.outcome.notes.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "**Verdict: {}** ({:.0} s)",
                r.outcome.verdict.line(),
                r.elapsed.as_secs_f64()
            );
        }
        out
    }
}

/// `text` with its first letter upper-case.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The markdown heading anchor of a scenario's section.
fn anchor(scenario: Scenario) -> String {
    format!(
        "{}-{}-{}",
        scenario.number(),
        scenario.name(),
        scenario.title()
    )
    .to_lowercase()
    .chars()
    .filter_map(|c| match c {
        'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
        ' ' => Some('-'),
        _ => None,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right() {
        let mut table = Table::new(&["setup", "lost"]);
        table.row(vec!["before".into(), "10".into()]);
        table.row(vec!["after, with dedup".into(), "0".into()]);
        assert_eq!(
            table.markdown(),
            "| setup | lost |\n|---|---:|\n| before | 10 |\n| after, with dedup | 0 |\n"
        );
        let text = table.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "  before               10", "{text}");
        assert_eq!(lines[1].len(), lines[2].len(), "{text}");
    }

    #[test]
    fn verdict_lines_carry_their_nuance() {
        assert_eq!(Verdict::Holds.line(), "holds");
        assert_eq!(
            Verdict::HoldsWithNuance("per key only".into()).line(),
            "holds with a nuance: per key only"
        );
        assert_eq!(
            Verdict::DoesNotHold("x".into()).kind(),
            VerdictKind::DoesNotHold
        );
    }

    #[test]
    fn anchors_follow_githubs_rule() {
        assert_eq!(
            anchor(Scenario::KeyOrder),
            "3-key-order-key--partition--order"
        );
    }
}
