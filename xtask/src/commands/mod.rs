//! One function per `cargo xtask` command.
//!
//! `main.rs` parses the command line and calls one of these; each returns a
//! typed error ([`InfraError`](crate::InfraError) for the infrastructure alone,
//! [`StackError`](crate::stack::StackError) once services are involved) and
//! prints progress to stderr, keeping stdout for what scripts or people read
//! (the `NAME=value` settings, the status table, the demo's walkthrough, the
//! rebuild's result). `chaos` and `bench` are built from the same library pieces
//! ([`crate::stack`], [`crate::infra`]).

mod bench;
mod chaos;
mod demo;
mod infra;
mod interrupts;
mod rebuild;
mod stack;
mod test;

pub use bench::bench;
pub use chaos::chaos;
pub use demo::{DemoOptions, demo};
pub use infra::{infra_down, infra_status, infra_up, print_settings};
pub use rebuild::rebuild;
pub use stack::{down, status, up};
pub use test::test;
