//! Reading one number off a service's `/metrics` (OpenMetrics text).

/// The sum of every sample of metric `name` in a Prometheus/OpenMetrics text
/// exposition, `None` when it has no sample.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name{labels} value` or `name value`, never a longer name with this prefix.
        let value = if let Some(labelled) = rest.strip_prefix('{') {
            labelled.split_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        let sample = value
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok());
        if let Some(sample) = sample {
            found = Some(found.unwrap_or(0.0) + sample);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_labels_and_not_confused_with_longer_names() {
        let text = "# HELP inbox_consumer_lag Records behind\n\
                    # TYPE inbox_consumer_lag gauge\n\
                    inbox_consumer_lag 3\n\
                    inbox_consumer_lag_max 99\n\
                    inbox_records_processed_total{partition=\"0\"} 2\n\
                    inbox_records_processed_total{partition=\"1\"} 5\n\
                    # EOF\n";
        assert_eq!(metric_value(text, "inbox_consumer_lag"), Some(3.0));
        assert_eq!(
            metric_value(text, "inbox_records_processed_total"),
            Some(7.0)
        );
        assert_eq!(metric_value(text, "inbox_retries_total"), None);
    }
}
