//! Typed configuration from environment variables, with local defaults.
//!
//! Every service reads its settings through [`var`], so a bad value fails
//! start-up with one line naming the variable, and the set of variables a
//! service reads is visible in one `Config::from_env` function per service.

use std::fmt::Display;
use std::str::FromStr;

/// A configuration value that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub name: &'static str,
    /// What it held.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Reads `name` from the environment, or `default` when it is unset or empty.
pub fn var<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().map_err(|e: T::Err| ConfigError {
                name,
                value,
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

/// Reads a duration given in milliseconds.
pub fn millis(name: &'static str, default_ms: u64) -> Result<std::time::Duration, ConfigError> {
    var(name, default_ms).map(std::time::Duration::from_millis)
}

/// How many names `lists` hold together: the length of [`concat_names`]'s result.
pub const fn count_names(lists: &[&[&str]]) -> usize {
    let mut count = 0;
    let mut i = 0;
    while i < lists.len() {
        count += lists[i].len();
        i += 1;
    }
    count
}

/// Joins lists of environment variable names at compile time, so that a
/// service's `ENV_VARS` is assembled from the lists of the settings it reads:
///
/// ```
/// use platform::config::{concat_names, count_names};
/// const PARTS: &[&[&str]] = &[&["HTTP_ADDR"], &["KAFKA_BOOTSTRAP_SERVERS", "ORDERS_TOPIC"]];
/// const ALL: [&str; count_names(PARTS)] = concat_names(PARTS);
/// assert_eq!(ALL, ["HTTP_ADDR", "KAFKA_BOOTSTRAP_SERVERS", "ORDERS_TOPIC"]);
/// ```
pub const fn concat_names<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut all = [""; N];
    let mut n = 0;
    let mut i = 0;
    while i < lists.len() {
        let mut j = 0;
        while j < lists[i].len() {
            all[n] = lists[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "N must be count_names(lists)");
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_fall_back_to_the_default() {
        let v: u16 = var("PLATFORM_TEST_SURELY_UNSET_VARIABLE", 8081).unwrap();
        assert_eq!(v, 8081);
    }
}
