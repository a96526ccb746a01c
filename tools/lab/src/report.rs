//! What a scenario found, and how it is shown: on the terminal as it
//! finishes, and in LAB.md after a full run.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Scenario;
use crate::chart::Chart;
use crate::claims::{Claim, Grading};

/// What the counts say about a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The claim held as stated.
    Holds,
    /// The claim held, with a nuance worth knowing (one line).
    HoldsWithNuance(String),
    /// The claim did not hold; what was seen instead (one line).
    DoesNotHold(String),
    /// The run could not decide (it saw neither what the claim says nor
    /// its refutation, or stopped before it got there); why (one line).
    NotShown(String),
}

/// A verdict without its line, for what a claim is expected to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// Holds.
    Holds,
    /// Holds with a nuance.
    HoldsWithNuance,
    /// Does not hold.
    DoesNotHold,
    /// Not shown by the run.
    NotShown,
}

impl VerdictKind {
    /// How the verdict reads.
    pub fn label(self) -> &'static str {
        match self {
            VerdictKind::Holds => "holds",
            VerdictKind::HoldsWithNuance => "holds with a nuance",
            VerdictKind::DoesNotHold => "does not hold",
            VerdictKind::NotShown => "not shown by this run",
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
            Verdict::NotShown(_) => VerdictKind::NotShown,
        }
    }

    /// "holds", or "holds with a nuance: ...", or "does not hold: ...".
    pub fn line(&self) -> String {
        match self {
            Verdict::Holds => self.kind().label().to_owned(),
            Verdict::HoldsWithNuance(line)
            | Verdict::DoesNotHold(line)
            | Verdict::NotShown(line) => {
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
    /// What the counts say, per measured claim (by [`Claim::id`]).
    pub verdicts: Vec<(&'static str, Verdict)>,
    /// A time series or curve worth a picture (LAB.md only).
    pub chart: Option<Chart>,
}

impl Outcome {
    /// What is left of a scenario a claim-relevant wait ended: the wait
    /// did not see `what` within `waited_secs`, which refutes `claim`; the
    /// scenario's other claims get no verdict from this run.
    pub fn timed_out(claim: &'static str, what: &str, waited_secs: u64, last_seen: &str) -> Self {
        let refuted = (
            claim,
            Verdict::DoesNotHold(format!("{what} did not happen within {waited_secs} s")),
        );
        // The scenario's other claims, graded after that wait, say so.
        let others = crate::claims::find(claim)
            .map(|(scenario, _)| scenario.claims())
            .unwrap_or_default()
            .iter()
            .filter(|c| c.id != claim && matches!(c.grading, Grading::Measured(_)))
            .map(|c| {
                (
                    c.id,
                    Verdict::NotShown(format!(
                        "the scenario stopped before grading it: {what} did not happen within {waited_secs} s"
                    )),
                )
            });
        Outcome {
            setup: "the scenario stopped at the wait below; its tables were not completed".into(),
            tables: Vec::new(),
            notes: vec![format!("Last seen while waiting: {last_seen}.")],
            verdicts: std::iter::once(refuted).chain(others).collect(),
            chart: None,
        }
    }
}

/// How one claim came out in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grade {
    /// Graded from the run's counts.
    Measured(Verdict),
    /// Not measured; what a source says (see [`Grading::Background`]).
    Background(VerdictKind, &'static str),
}

impl Grade {
    /// Its verdict's kind.
    pub fn kind(&self) -> VerdictKind {
        match self {
            Grade::Measured(verdict) => verdict.kind(),
            Grade::Background(kind, _) => *kind,
        }
    }

    /// "holds with a nuance: ...", or "does not hold (background, not measured: source)".
    pub fn line(&self) -> String {
        match self {
            Grade::Measured(verdict) => verdict.line(),
            Grade::Background(kind, source) => {
                format!("{} (background, not measured: {source})", kind.label())
            }
        }
    }

    /// The verdict's label, marked when it is background.
    pub fn label(&self) -> String {
        match self {
            Grade::Measured(verdict) => verdict.kind().label().to_owned(),
            Grade::Background(kind, _) => format!("{} (background)", kind.label()),
        }
    }
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
    /// Each claim of the scenario with how it came out: a measured claim the
    /// outcome gave no verdict for is "not shown".
    pub fn grades(&self) -> Vec<(&'static Claim, Grade)> {
        self.scenario
            .claims()
            .iter()
            .map(|claim| {
                let grade = match claim.grading {
                    Grading::Background { verdict, source } => Grade::Background(verdict, source),
                    Grading::Measured(_) => Grade::Measured(
                        self.outcome
                            .verdicts
                            .iter()
                            .find(|(id, _)| *id == claim.id)
                            .map_or_else(
                                || Verdict::NotShown("this run gave it no verdict".into()),
                                |(_, verdict)| verdict.clone(),
                            ),
                    ),
                };
                (claim, grade)
            })
            .collect()
    }

    /// Verdicts the outcome gave for claims the scenario does not declare
    /// (a bug in the lab, which fails the run).
    pub fn strays(&self) -> Vec<&'static str> {
        self.outcome
            .verdicts
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| self.scenario.claims().iter().all(|c| c.id != *id))
            .collect()
    }

    /// Every measured claim got the verdict the lab expects.
    pub fn as_expected(&self) -> bool {
        self.strays().is_empty()
            && self
                .grades()
                .iter()
                .all(|(claim, grade)| expected(claim).is_none_or(|kind| grade.kind() == kind))
    }

    /// Setup, tables, notes and verdicts as terminal text.
    pub fn text(&self) -> String {
        let mut out = format!("Setup: {}\n\n", sentence(&self.outcome.setup));
        for table in &self.outcome.tables {
            out.push_str(&table.text());
            out.push('\n');
        }
        for note in &self.outcome.notes {
            let _ = writeln!(out, "- {note}");
        }
        for (claim, grade) in self.grades() {
            let _ = writeln!(
                out,
                "Verdict on \"{}\": {}{}",
                claim.text,
                grade.line(),
                match expected(claim) {
                    Some(kind) if kind != grade.kind() =>
                        format!("  [UNEXPECTED: this lab expects \"{}\"]", kind.label()),
                    _ => String::new(),
                }
            );
        }
        for stray in self.strays() {
            let _ = writeln!(
                out,
                "UNEXPECTED: a verdict for \"{stray}\", a claim this scenario does not declare"
            );
        }
        let _ = writeln!(out, "({:.0} s)", self.elapsed.as_secs_f64());
        out
    }
}

/// The verdict a measured claim is expected to get; `None` for background.
fn expected(claim: &Claim) -> Option<VerdictKind> {
    match claim.grading {
        Grading::Measured(kind) => Some(kind),
        Grading::Background { .. } => None,
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
    /// True when every measured claim got its expected verdict.
    pub fn as_expected(&self) -> bool {
        self.results.iter().all(ScenarioResult::as_expected)
    }

    /// The summary: one row per claim.
    pub fn summary(&self) -> Table {
        let mut table = Table::new(&["#", "claim", "verdict", "as expected", "seconds"]);
        for r in &self.results {
            for (i, (claim, grade)) in r.grades().into_iter().enumerate() {
                table.row(vec![
                    if i == 0 {
                        r.scenario.number().to_string()
                    } else {
                        String::new()
                    },
                    claim.id.to_owned(),
                    grade.label(),
                    match expected(claim) {
                        None => "-",
                        Some(kind) if kind == grade.kind() => "yes",
                        Some(_) => "NO",
                    }
                    .to_owned(),
                    if i == 0 {
                        format!("{:.0}", r.elapsed.as_secs_f64())
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        table
    }

    /// LAB.md: how it was made, the summary (per claim: the notes' sentence
    /// and the verdict; per scenario: its takeaway), then each scenario's
    /// claims, setup, counts, verdicts and chart (`chart_link` by scenario).
    pub fn markdown(&self, chart_link: impl Fn(Scenario) -> Option<String>) -> String {
        let graded: Vec<_> = self.results.iter().map(|r| (r, r.grades())).collect();
        let claims = graded.iter().map(|(_, g)| g.len()).sum::<usize>();
        let background = graded
            .iter()
            .flat_map(|(_, g)| g)
            .filter(|(_, grade)| matches!(grade, Grade::Background(..)))
            .count();
        let refuted = graded
            .iter()
            .flat_map(|(_, g)| g)
            .filter(|(_, grade)| matches!(grade, Grade::Measured(Verdict::DoesNotHold(_))))
            .count();
        // A claim the run gave no verdict was not measured: the header says
        // so rather than count it among the measured ones.
        let not_shown = graded
            .iter()
            .flat_map(|(_, g)| g)
            .filter(|(_, grade)| matches!(grade, Grade::Measured(Verdict::NotShown(_))))
            .count();
        let not_shown_line = match not_shown {
            0 => String::new(),
            n => format!(", {n} not shown by it (it gave them no verdict)"),
        };
        let own = graded
            .iter()
            .flat_map(|(_, g)| g)
            .filter(|(claim, _)| claim.quote.is_none())
            .count();
        let sources = match own {
            0 => String::new(),
            n => format!(" and {n} of the lab's own"),
        };
        let mut out = String::from("# The Kafka lab\n\n");
        let _ = writeln!(
            out,
            "{} claims from the study notes the lab is built on{sources}, tested in {} scenarios on real brokers \
             and counted: {} measured by the run below ({refuted} of them do not hold){not_shown_line}, \
             {background} background (history no run can measure; the source is named). `cargo xtask lab` \
             wrote this file from the counts of that run (do not edit by hand).\n",
            claims - own,
            self.results.len(),
            claims - background - not_shown
        );
        let three: Vec<&str> = self
            .results
            .iter()
            .filter(|r| r.scenario.three_nodes())
            .map(|r| r.scenario.name())
            .collect();
        let _ = writeln!(
            out,
            "That run: {} counts; Apache Kafka {} in KRaft mode ({}){}, as local processes on free ports of \
             a {}-core machine; started {}, {:.0} s in all.\n",
            if self.quick { "quick (small)" } else { "full" },
            self.kafka_version,
            nodes(
                &three,
                self.results.iter().any(|r| !r.scenario.three_nodes())
            ),
            if self.results.iter().any(|r| r.scenario.postgres()) {
                " and PostgreSQL"
            } else {
                ""
            },
            self.cores,
            self.started,
            self.elapsed.as_secs_f64()
        );
        if !self.as_expected() {
            out.push_str(
                "**Some verdicts differ from the ones the lab expects (marked below): this run is not a \
                 clean record.**\n\n",
            );
        }
        out.push_str(
            "Run one scenario with `cargo xtask lab <name>`, list them with `cargo xtask lab --list`; \
             `cargo xtask test` runs every scenario with smaller counts and fails when a measured claim's \
             verdict is not the expected one.\n\n",
        );
        let mut summary = Table::new(&[
            "#",
            "scenario and takeaway",
            "claim, in the notes' words",
            "verdict",
        ]);
        for (r, grades) in &graded {
            for (i, (claim, grade)) in grades.iter().enumerate() {
                let (number, scenario) = if i == 0 {
                    (
                        r.scenario.number().to_string(),
                        format!(
                            "[{}](#{}): {}",
                            r.scenario.name(),
                            anchor(r.scenario),
                            r.scenario.takeaway()
                        ),
                    )
                } else {
                    (String::new(), String::new())
                };
                summary.row(vec![
                    number,
                    scenario,
                    match claim.quote {
                        Some(quote) => format!(
                            "{} <br>*«{}»* ({}: \"{}\")",
                            claim.text, quote.original, quote.notes, quote.translation
                        ),
                        None => format!("{} <br>*({OWN_CLAIM})*", claim.text),
                    },
                    format!(
                        "{}{}",
                        grade.label(),
                        match expected(claim) {
                            Some(kind) if kind != grade.kind() => " (UNEXPECTED)",
                            _ => "",
                        }
                    ),
                ]);
            }
        }
        out.push_str(&summary.markdown());
        out.push_str(
            "\nThe notes are quoted in their own words (Italian 000, Portuguese 001 and 003, Russian 002 and \
             004), with a translation.\n",
        );
        for (r, grades) in &graded {
            let _ = write!(
                out,
                "\n## {}. {}: {}\n\n",
                r.scenario.number(),
                r.scenario.name(),
                r.scenario.title(),
            );
            for (claim, _) in grades {
                let _ = match claim.quote {
                    Some(quote) => writeln!(
                        out,
                        "**Claim.** {} (notes {}: *«{}»*, \"{}\")\n",
                        claim.text, quote.notes, quote.original, quote.translation
                    ),
                    None => writeln!(out, "**Claim.** {} ({OWN_CLAIM})\n", claim.text),
                };
            }
            let _ = write!(out, "**Setup.** {}\n\n", sentence(&r.outcome.setup));
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
            for (claim, grade) in grades {
                let _ = writeln!(out, "**Verdict on \"{}\": {}**\n", claim.text, grade.line());
            }
            let _ = writeln!(out, "({:.0} s)", r.elapsed.as_secs_f64());
        }
        out
    }
}

/// The Kafka nodes a run used: one, three for `three` (the scenarios that
/// ran on the three-node cluster), or both.
fn nodes(three: &[&str], single: bool) -> String {
    match (single, three.is_empty()) {
        (true, true) => "one node".to_owned(),
        (true, false) => format!("one node; three for {}", three.join(" and ")),
        (false, _) => format!("three nodes, for {}", three.join(" and ")),
    }
}

/// How LAB.md marks a claim that quotes no sentence of the notes.
const OWN_CLAIM: &str = "the lab's own claim: the notes do not say it";

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

    fn outcome(verdicts: Vec<(&'static str, Verdict)>) -> Outcome {
        Outcome {
            setup: "two groups".into(),
            tables: Vec::new(),
            notes: Vec::new(),
            verdicts,
            chart: None,
        }
    }

    fn result(scenario: Scenario, outcome: Outcome) -> ScenarioResult {
        ScenarioResult {
            scenario,
            outcome,
            elapsed: Duration::from_secs(3),
        }
    }

    fn report(results: Vec<ScenarioResult>) -> LabReport {
        LabReport {
            results,
            quick: true,
            kafka_version: "4.4.0".into(),
            started: "today".into(),
            cores: 2,
            elapsed: Duration::from_secs(9),
        }
    }

    #[test]
    fn each_claim_is_graded_against_its_own_expected_verdict() {
        let graded = |must_equal: Verdict| {
            result(
                Scenario::Parallelism,
                outcome(vec![
                    ("parallelism.must-equal", must_equal),
                    ("parallelism.extras-idle", Verdict::Holds),
                ]),
            )
        };
        assert!(graded(Verdict::DoesNotHold("none idle".into())).as_expected());
        // The false half graded kindly is a failure of the quick lab.
        assert!(!graded(Verdict::HoldsWithNuance("none idle".into())).as_expected());
    }

    #[test]
    fn a_claim_without_a_verdict_or_a_verdict_without_a_claim_is_unexpected() {
        let missing = result(
            Scenario::Parallelism,
            outcome(vec![("parallelism.extras-idle", Verdict::Holds)]),
        );
        assert!(!missing.as_expected());
        assert_eq!(missing.grades()[0].1.kind(), VerdictKind::NotShown);
        let stray = result(
            Scenario::Parallelism,
            outcome(vec![
                ("parallelism.must-equal", Verdict::DoesNotHold("x".into())),
                ("parallelism.extras-idle", Verdict::Holds),
                ("parallelism.typo", Verdict::Holds),
            ]),
        );
        assert!(!stray.as_expected());
        assert!(stray.text().contains("UNEXPECTED"), "{}", stray.text());
    }

    #[test]
    fn background_claims_are_marked_with_their_source_and_not_graded_as_measured() {
        let transactions = result(
            Scenario::Transactions,
            outcome(vec![(
                "transactions.exactly-once",
                Verdict::HoldsWithNuance("read_committed only".into()),
            )]),
        );
        assert!(transactions.as_expected());
        let (claim, grade) = &transactions.grades()[1];
        assert_eq!(claim.id, "transactions.since-4.0");
        assert!(matches!(
            grade,
            Grade::Background(VerdictKind::DoesNotHold, _)
        ));
        assert!(
            grade.line().contains("background, not measured: KIP-98"),
            "{}",
            grade.line()
        );
        let markdown = report(vec![transactions]).markdown(|_| None);
        assert!(
            markdown.contains("does not hold (background)"),
            "{markdown}"
        );
        assert!(
            markdown.contains("Появилась в кафке версии 4.0"),
            "{markdown}"
        );
        assert!(
            markdown.contains("Appeared in Kafka version 4.0"),
            "{markdown}"
        );
    }

    #[test]
    fn a_timed_out_wait_is_the_claims_verdict() {
        let timed_out = result(
            Scenario::Compaction,
            Outcome::timed_out(
                "compaction.last-per-key",
                "the cleaner to keep one record per customer",
                90,
                "20 records of customer-0",
            ),
        );
        let grades = timed_out.grades();
        assert_eq!(
            grades[0].1.line(),
            "does not hold: the cleaner to keep one record per customer did not happen within 90 s"
        );
        // Not what the lab expects of compaction, so the quick run fails;
        // LAB.md still has the verdict.
        assert!(!timed_out.as_expected());
        let markdown = report(vec![timed_out]).markdown(|_| None);
        assert!(
            markdown.contains("did not happen within 90 s"),
            "{markdown}"
        );
        // In a scenario of several claims, the others are not shown, and say why.
        let pubsub = result(
            Scenario::PubSub,
            Outcome::timed_out(
                "pubsub.history",
                "the analytics group to read 2000",
                60,
                "0",
            ),
        );
        assert!(pubsub.strays().is_empty());
        let grades = pubsub.grades();
        assert_eq!(grades[0].1.kind(), VerdictKind::DoesNotHold);
        assert_eq!(
            grades[1].1.line(),
            "not shown by this run: the scenario stopped before grading it: the analytics group to read \
             2000 did not happen within 60 s"
        );
        assert!(
            markdown.contains("differ from the ones the lab expects"),
            "{markdown}"
        );
    }

    #[test]
    fn a_claim_of_the_labs_own_says_so_instead_of_quoting_the_notes() {
        let acks = result(
            Scenario::Acks,
            outcome(vec![
                (
                    "acks.copy-before-ack",
                    Verdict::DoesNotHold("acks=1 lost 22".into()),
                ),
                ("acks.lost", Verdict::HoldsWithNuance("both stall".into())),
            ]),
        );
        assert!(acks.as_expected());
        let markdown = report(vec![acks]).markdown(|_| None);
        assert!(
            markdown.contains(
                "1 claims from the study notes the lab is built on and 1 of the lab's own, tested in 1 scenarios"
            ),
            "{markdown}"
        );
        assert!(
            markdown.contains(&format!("**Claim.** When the leader dies, a producer with acks=1 can lose records it was told were written; with acks=all it loses none. ({OWN_CLAIM})")),
            "{markdown}"
        );
    }

    #[test]
    fn the_header_claims_only_what_the_run_produced() {
        let pubsub = result(
            Scenario::PubSub,
            outcome(vec![
                (
                    "pubsub.history",
                    Verdict::HoldsWithNuance("earliest only".into()),
                ),
                ("pubsub.producer-unchanged", Verdict::Holds),
            ]),
        );
        let markdown = report(vec![pubsub]).markdown(|_| None);
        let header: String = markdown.lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(header.contains("2 claims"), "{header}");
        assert!(header.contains("in 1 scenarios"), "{header}");
        assert!(header.contains("quick (small) counts"), "{header}");
        assert!(header.contains("(one node)"), "{header}");
        assert!(!header.contains("three for replication"), "{header}");
        // No scenario of this run counted effects in PostgreSQL.
        assert!(!header.contains("PostgreSQL"), "{header}");
    }

    #[test]
    fn the_header_does_not_count_a_claim_without_a_verdict_as_measured() {
        // Compaction's wait ran out: its one claim does not hold. Pull gave
        // no verdict at all: its claim is not shown, and not "measured".
        let compaction = result(
            Scenario::Compaction,
            Outcome::timed_out("compaction.last-per-key", "the cleaner to run", 90, "20"),
        );
        let pull = result(Scenario::Pull, outcome(Vec::new()));
        let batch = result(
            Scenario::BatchCommits,
            outcome(vec![("batch-commits.trade-off", Verdict::Holds)]),
        );
        let markdown = report(vec![compaction, pull, batch]).markdown(|_| None);
        let header: String = markdown.lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(
            header.contains(
                "2 measured by the run below (1 of them do not hold), 1 not shown by it (it gave them no \
                 verdict), 0 background"
            ),
            "{header}"
        );
        assert!(header.contains("(one node) and PostgreSQL"), "{header}");
    }

    #[test]
    fn a_run_on_the_three_nodes_only_does_not_claim_the_single_node() {
        let acks = result(
            Scenario::Acks,
            outcome(vec![
                ("acks.copy-before-ack", Verdict::DoesNotHold("x".into())),
                ("acks.lost", Verdict::HoldsWithNuance("y".into())),
            ]),
        );
        let markdown = report(vec![acks]).markdown(|_| None);
        assert!(markdown.contains("(three nodes, for acks),"), "{markdown}");
        assert!(!markdown.contains("one node"), "{markdown}");
    }
}
