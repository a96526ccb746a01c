//! Readiness beyond "the database answers".
//!
//! `GET /health/ready` answers 503 while the database is unreachable, and
//! also while any part of the service has said it cannot do its work (the
//! inbox whose effects the database refuses, say): a load balancer or an
//! operator then sees that the service is up but not working, and why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Each part's reason or note, by part name.
type Notes = Arc<Mutex<BTreeMap<&'static str, String>>>;

/// `notes`, locked; a panic elsewhere while it was held leaves it usable.
fn lock(notes: &Notes) -> MutexGuard<'_, BTreeMap<&'static str, String>> {
    notes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of `notes`, by part name.
fn entries(notes: &Notes) -> Vec<(&'static str, String)> {
    lock(notes)
        .iter()
        .map(|(part, note)| (*part, note.clone()))
        .collect()
}

/// The parts of a service that currently cannot do their work, with why.
/// Cheap to clone; every clone shares the same state.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    problems: Notes,
    degraded: Notes,
}

impl Readiness {
    /// A service with nothing wrong.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// `part` cannot do its work, because of `reason` (replaces its earlier reason).
    pub fn not_ready(&self, part: &'static str, reason: impl Into<String>) {
        lock(&self.problems).insert(part, reason.into());
    }

    /// `part` works again (and is no longer degraded).
    pub fn ready(&self, part: &'static str) {
        lock(&self.problems).remove(part);
        lock(&self.degraded).remove(part);
    }

    /// `part` does its work, but not all of it, because of `note` (a relay
    /// with one partition benched, say): the service stays ready and
    /// `/health/ready` names the note, until [`ready`](Self::ready).
    pub fn degraded(&self, part: &'static str, note: impl Into<String>) {
        lock(&self.degraded).insert(part, note.into());
    }

    /// Each degraded part, with its note, by part name.
    pub fn degradations(&self) -> Vec<(&'static str, String)> {
        entries(&self.degraded)
    }

    /// Each part that cannot work, with its reason, by part name.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        entries(&self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_listed_until_it_is_ready_again() {
        let readiness = Readiness::new();
        let shared = readiness.clone();
        shared.not_ready("inbox", "permission denied");
        shared.not_ready("inbox", "still denied");
        assert_eq!(
            readiness.problems(),
            vec![("inbox", "still denied".to_owned())]
        );
        shared.ready("inbox");
        assert!(readiness.problems().is_empty());
    }
}
