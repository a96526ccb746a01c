//! Every test and every helper gets its infrastructure through the one
//! acquisition, [`e2e::TestInfra::acquire`]: the environment's, else Docker's,
//! else one line saying how to get it.
//!
//! A helper that reads the environment itself works under `cargo xtask test`
//! and fails everywhere else; that is how the order API tests once panicked
//! on every machine that had Docker but no infrastructure variables. These
//! tests read the sources of the test crate and keep it from happening again.

use std::path::{Path, PathBuf};

/// The files that make up the acquisition itself.
const ACQUISITION: [&str; 2] = ["src/lib.rs", "src/containers.rs"];

/// What only the acquisition may do: build a `TestInfra` from the environment
/// or from a lookup, or read the infrastructure's variables.
const FORBIDDEN: [&str; 7] = [
    "TestInfra::from_",
    "from_environment(",
    "from_lookup(",
    "\"KAFKA_BOOTSTRAP_SERVERS\"",
    "\"POSTGRES_ADMIN_URL\"",
    "_DATABASE_URL\"",
    "e2e::KAFKA_BOOTSTRAP_SERVERS",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as a path relative to the crate.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(
                path.strip_prefix(crate_dir())
                    .expect("under the crate")
                    .to_path_buf(),
            );
        }
    }
}

/// The lines of `text` that contain one of `needles`, outside comments.
fn offending_lines(text: &str, needles: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .filter(|line| needles.iter().any(|n| line.contains(n)))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn no_test_or_helper_reads_the_infrastructure_around_the_acquisition() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    rust_files(&crate_dir().join("tests"), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("order_api_client.rs")),
        "the scan must see the helpers: {files:?}"
    );
    let mut offences = Vec::new();
    for file in files
        .iter()
        .filter(|f| !ACQUISITION.iter().any(|a| f.as_path() == Path::new(a)))
    {
        let text = std::fs::read_to_string(crate_dir().join(file)).expect("source file");
        // This file names what it forbids.
        if file.ends_with("acquisition.rs") {
            continue;
        }
        for line in offending_lines(&text, &FORBIDDEN) {
            offences.push(format!("{}: {line}", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "only TestInfra::acquire may read the infrastructure's settings:\n{}",
        offences.join("\n")
    );
}

#[test]
fn inside_the_acquisition_the_environment_is_read_only_by_acquire() {
    let lib = std::fs::read_to_string(crate_dir().join("src/lib.rs")).expect("lib.rs");
    let start = lib
        .find("pub async fn acquire()")
        .expect("TestInfra::acquire in lib.rs");
    // The body ends at the first line that closes a method of the impl block.
    let end = start
        + lib[start..]
            .find("\n    }\n")
            .expect("the end of acquire's body");
    let calls: Vec<usize> = lib
        .match_indices("Self::from_environment()")
        .map(|(at, _)| at)
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "from_environment() is called once, by acquire: {calls:?}"
    );
    assert!(
        (start..end).contains(&calls[0]),
        "from_environment() is called outside acquire"
    );
    assert!(
        !lib.contains("pub fn from_environment") && !lib.contains("pub fn from_lookup"),
        "reading the environment must stay private to the acquisition"
    );
}
