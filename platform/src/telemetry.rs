//! The tracing subscriber every binary installs.
//!
//! Log lines go to stdout. They carry ANSI colours only when stdout is a
//! terminal: under `docker logs`, a log collector or a file, escape codes are
//! noise that every reader has to strip. `NO_COLOR` (<https://no-color.org>)
//! turns them off on a terminal too.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs a formatting subscriber on stdout, filtered by `RUST_LOG` (default
/// `info`), coloured only on a terminal. Calling it twice (as tests do) is harmless.
pub fn init() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    init_with(&filter);
}

/// [`init`] with the filter `filter` (a service's `RUST_LOG` setting).
pub fn init_with(filter: &str) {
    let ansi = colours(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("RUST_LOG={filter:?} is not a valid filter ({e}); logging at info");
        EnvFilter::new("info")
    });
    let _ = subscriber(std::io::stdout, ansi, filter).try_init();
}

/// Whether log lines get ANSI colours: only when stdout is a terminal, and not
/// when `NO_COLOR` is set to a non-empty value.
pub fn colours(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// The subscriber [`init`] installs, writing to `writer`, with or without colours.
fn subscriber<W>(
    writer: W,
    ansi: bool,
    filter: EnvFilter,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .with_writer(writer)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn colours_only_on_a_terminal_and_never_with_no_color() {
        assert!(colours(true, None));
        assert!(
            !colours(false, None),
            "a pipe or file (docker logs) gets plain text"
        );
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(
            colours(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!colours(false, Some(OsStr::new("1"))));
    }

    /// Everything written to it, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(ansi: bool) -> String {
        let out = Captured::default();
        tracing::subscriber::with_default(
            subscriber(out.clone(), ansi, EnvFilter::new("info")),
            || {
                tracing::warn!(order_id = 7, "placed");
            },
        );
        let bytes = out.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8 log line")
    }

    #[test]
    fn a_log_line_off_a_terminal_has_no_escape_codes() {
        let plain = logged(colours(false, None));
        assert!(plain.contains("placed"), "{plain:?}");
        assert!(!plain.contains('\u{1b}'), "{plain:?}");
        // The same line on a terminal is coloured, so the check above can fail.
        assert!(logged(colours(true, None)).contains('\u{1b}'));
    }
}
