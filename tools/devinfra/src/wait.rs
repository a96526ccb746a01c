//! Waiting for a condition with a deadline, never for a fixed time.
//!
//! Readiness is something we observe (a metadata response, a `select 1`), so
//! every wait here is a loop of probes until the condition holds, a fatal
//! problem shows up (the process died), or the deadline passes. The error then
//! says what the last probe saw.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::InfraError;

/// What one probe of a condition found.
#[derive(Debug)]
pub enum Probe<T> {
    /// The condition holds; here is what was observed.
    Ready(T),
    /// Not yet, and why (kept for the error message).
    NotYet(String),
    /// It never will (the process exited); stop waiting.
    Failed(InfraError),
}

/// Probes every `interval` until `probe` reports [`Probe::Ready`] or `timeout` passes.
pub async fn until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    log: Option<PathBuf>,
    mut probe: F,
) -> Result<T, InfraError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe<T>>,
{
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let reason = match probe().await {
            Probe::Ready(value) => return Ok(value),
            Probe::Failed(err) => return Err(err),
            Probe::NotYet(reason) => reason,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(InfraError::NotReady {
                what: what.to_owned(),
                waited: now - started,
                last_error: reason,
                log,
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let value = until(
            "counter",
            Duration::from_secs(5),
            Duration::ZERO,
            None,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n == 3 {
                        Probe::Ready(n)
                    } else {
                        Probe::NotYet(format!("at {n}"))
                    }
                }
            },
        )
        .await
        .expect("ready");
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn reports_the_last_reason_at_the_deadline() {
        let err = until::<(), _, _>(
            "thing",
            Duration::from_millis(30),
            Duration::from_millis(5),
            None,
            || async { Probe::NotYet("still booting".into()) },
        )
        .await
        .expect_err("deadline");
        assert!(err.to_string().contains("still booting"), "{err}");
    }
}
