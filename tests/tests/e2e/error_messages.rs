//! Errors state their cause once: a message says which step failed and
//! leaves the cause to `source()`, which the top of each binary walks once
//! (`anyhow`'s report, `platform::error::chain`). A message that also
//! embeds its source (`"database error: {0}"` over a `#[from]` field) prints
//! every cause twice in that chain. This test reads the workspace's sources
//! and keeps it from coming back.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the test crate sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The `#[error("...")]` messages in `text` that print their own source:
/// `{source}` (thiserror takes a field named `source` as the source), or a
/// positional field that the same variant marks `#[from]` or `#[source]`.
fn self_printing_messages(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // An attribute opens its line (a string that mentions one does not).
        if !line.trim_start().starts_with("#[error(") {
            continue;
        }
        // The attribute, which may span lines, up to its closing `)]`.
        let end = (i..lines.len())
            .find(|&j| lines[j].contains(")]"))
            .unwrap_or(i);
        let message = lines[i..=end].join(" ");
        // The variant or struct it belongs to: up to the next attribute.
        let variant: Vec<&str> = lines[end + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("#[error("))
            .take(8)
            .copied()
            .collect();
        let variant = variant.join("\n");
        let sourced_field = variant.contains("#[from]") || variant.contains("#[source]");
        if message.contains("{source}") || (message.contains("{0}") && sourced_field) {
            found.push(message.trim().to_owned());
        }
    }
    found
}

#[test]
fn no_error_message_prints_its_own_source() {
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    assert!(files.len() > 50, "the workspace's sources were found");
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for message in self_printing_messages(&text) {
            offenders.push(format!("{}: {message}", file.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "these messages embed their source, which source() already carries:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_finds_a_message_that_embeds_its_source() {
    let bad =
        "enum E {\n    #[error(\"database error: {0}\")]\n    Database(#[from] sqlx::Error),\n}";
    assert_eq!(self_printing_messages(bad).len(), 1);
    let named = "#[error(\"creating topic {topic} failed: {source}\")]\nCreate { topic: String, source: E },";
    assert_eq!(self_printing_messages(named).len(), 1);
    let good = "enum E {\n    #[error(\"the orders database failed\")]\n    Database(#[from] sqlx::Error),\n    #[error(\"bad request: {0}\")]\n    BadRequest(String),\n}";
    assert!(self_printing_messages(good).is_empty());
}
