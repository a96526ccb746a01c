//! One function per `cargo xtask` command.
//!
//! `main.rs` parses the command line and calls one of these; each runs what a
//! tool crate offers (`devinfra`, `chaos`, `bench`, `demo`, `lab`), returns that
//! crate's typed error, and prints progress to stderr, keeping stdout for what
//! scripts or people read (the `NAME=value` settings, the status table, the
//! demo's walkthrough, the rebuild's result, the chaos table, the lab's
//! verdicts).

mod bench;
mod chaos;
mod docker_check;
mod infra;
mod kafka;
mod lab;
mod new_consumer;
mod rebuild;
mod stack;
mod test;

pub use bench::bench;
pub use chaos::chaos;
pub use docker_check::{DockerCheckParts, docker_check};
pub use infra::{infra_down, infra_status, infra_up};
pub use kafka::{kafka_tool, watch_topic};
pub use lab::lab;
pub use new_consumer::new_consumer;
pub use rebuild::rebuild;
pub use stack::{down, status, up};
pub use test::test;

/// A child's exit status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> std::process::ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => {
            std::process::ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        (None, None) => std::process::ExitCode::FAILURE,
    }
}
