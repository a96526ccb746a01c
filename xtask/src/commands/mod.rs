//! One function per `cargo xtask` command.
//!
//! `main.rs` parses the command line and calls one of these; each returns an
//! [`InfraError`](crate::InfraError) on failure and prints progress to stderr,
//! keeping stdout for what scripts read (the `NAME=value` settings, the status
//! table). Commands still to come (service processes for `up`/`down`, `chaos`,
//! `bench`) belong here as siblings, built from the same library pieces.

mod demo;
mod infra;
mod test;

pub use demo::demo;
pub use infra::{infra_down, infra_status, infra_up, print_settings};
pub use test::test;
