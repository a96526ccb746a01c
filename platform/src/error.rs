//! Printing an error with its causes, once.
//!
//! Each error type in the workspace says which step failed and leaves the
//! cause to [`std::error::Error::source`]; the chain is walked once, where the
//! error is reported (a log line, the binaries' `main`), so no cause is
//! printed twice.

use std::error::Error;
use std::fmt::Write as _;

/// `error` and each of its sources, joined by `": "`. A cause whose message
/// the line already holds (an error that prints its source in its own
/// message, as some libraries' do) is left out, so nothing shows twice.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            let _ = write!(text, ": {shown}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not store the order")]
    struct Outer(#[source] std::io::Error);

    /// An error of another library that prints its source in its own
    /// message (ours never do: `error_messages` in the e2e tests checks).
    #[derive(Debug)]
    struct Repeating(std::io::Error);

    impl std::fmt::Display for Repeating {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "could not reach Kafka: {}", self.0)
        }
    }

    impl Error for Repeating {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let error = Repeating(std::io::Error::other("connection refused"));
        assert_eq!(chain(&error), "could not reach Kafka: connection refused");
    }

    #[test]
    fn each_cause_appears_once_in_order() {
        let error = Outer(std::io::Error::other("disk full"));
        assert_eq!(chain(&error), "could not store the order: disk full");
    }
}
