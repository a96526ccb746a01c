//! Ctrl-C and SIGTERM as values, so a command can clean up instead of dying.
//!
//! Once installed, the default action (exit at once) no longer applies: a
//! signal is queued until the command asks for it with [`Interrupts::recv`],
//! typically in a `select!` next to the work it interrupts.

use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::InfraError;
use crate::process::Signal;

/// SIGINT and SIGTERM, caught so that cleanup runs instead of the default exit.
pub struct Interrupts {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Interrupts {
    /// Starts catching SIGINT and SIGTERM.
    pub fn install() -> Result<Self, InfraError> {
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| InfraError::Spawn {
                program: "signal handler".into(),
                source: e,
            })
        };
        Ok(Interrupts {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
        })
    }

    /// The next signal (one that arrived since the last call returns at once).
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::Int,
            _ = self.term.recv() => Signal::Term,
        }
    }
}

/// The shell's convention for a run ended by a signal: 128 + its number.
pub fn interrupted_by(signal: Signal) -> ExitCode {
    eprintln!("xtask: interrupted by {}", signal.name());
    ExitCode::from(u8::try_from(128 + signal.number()).unwrap_or(1))
}

/// Runs `step` to completion even when a signal arrives meanwhile (a startup
/// cut off half-way could leave a server coming up after we looked); returns
/// its result and the signal, if one came.
pub async fn uninterrupted<T>(
    step: impl std::future::Future<Output = T>,
    interrupts: &mut Interrupts,
) -> (T, Option<Signal>) {
    tokio::pin!(step);
    let mut interrupted = None;
    loop {
        tokio::select! {
            result = &mut step => return (result, interrupted),
            signal = interrupts.recv() => {
                eprintln!("xtask: {} received, stopping once this step has finished", signal.name());
                interrupted = Some(signal);
            }
        }
    }
}

/// Waits until `child` (the program `what`) has exited; a signal that
/// arrives meanwhile is passed on to it and the wait goes on, so that
/// whatever runs after the child runs after it stopped. (A terminal's Ctrl-C
/// reaches the child anyway, through the process group; a SIGTERM from a CI
/// runner reaches only us.) Returns how it ended and the signal, if one came.
pub async fn wait_passing_on(
    child: &mut tokio::process::Child,
    what: &str,
    interrupts: &mut Interrupts,
) -> Result<(std::process::ExitStatus, Option<Signal>), InfraError> {
    let mut interrupted = None;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| InfraError::Spawn {
                    program: what.to_owned(),
                    source: e,
                })?;
                return Ok((status, interrupted));
            }
            signal = interrupts.recv() => {
                interrupted = Some(signal);
                if let Some(pid) = child.id() {
                    crate::process::send_signal(pid, signal)?;
                }
            }
        }
    }
}
