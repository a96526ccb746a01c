//! The tracing subscriber every binary installs.

use tracing_subscriber::EnvFilter;

/// Installs a formatting subscriber filtered by `RUST_LOG` (default `info`).
/// Calling it twice (as tests do) is harmless.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}
