//! How the pages write amounts, times and durations.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// An amount in minor units as `EUR 318.00` or `JPY 1,999`: the
/// currency's own decimal places ([`platform::money::format`]).
pub fn money(minor: i64, currency: &str) -> String {
    platform::money::format(minor, currency)
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
        assert_eq!(money(1_999, "JPY"), "JPY 1,999");
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
