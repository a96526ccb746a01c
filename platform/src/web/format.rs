//! How the pages write amounts, times and durations.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// An amount in cents as `EUR 318.00` (two decimal places for every currency).
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{currency} {sign}{}.{:02}", group(cents / 100), cents % 100)
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A point in time as `2026-12-01 15:33:44.123 UTC`.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// The time from `from` to `to` as `+35 ms`, `+1.2 s` or `+3 min 5 s`
/// (`+0 ms` when `to` is not later).
pub fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let gap = (to - from).to_std().unwrap_or(Duration::ZERO);
    format!("+{}", duration(gap))
}

/// A duration as `35 ms`, `1.2 s` or `3 min 5 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1_000)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn amounts_times_and_durations() {
        assert_eq!(money(31_799, "EUR"), "EUR 317.99");
        assert_eq!(money(5, "USD"), "USD 0.05");
        assert_eq!(money(123_456_789, "EUR"), "EUR 1,234,567.89");
        assert_eq!(money(-150, "EUR"), "EUR -1.50");
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 15, 33, 44).unwrap();
        assert_eq!(time(at), "2026-12-01 15:33:44.000 UTC");
        assert_eq!(
            elapsed(at, at + chrono::Duration::milliseconds(35)),
            "+35 ms"
        );
        assert_eq!(elapsed(at, at - chrono::Duration::seconds(1)), "+0 ms");
        assert_eq!(duration(Duration::from_millis(1_250)), "1.2 s");
        assert_eq!(duration(Duration::from_secs(185)), "3 min 5 s");
    }
}
