//! Talking to the services over HTTP: JSON requests, paged lists, metrics.
//!
//! The dev tool is a client like any other: it reads the services' JSON into
//! its own narrow types (or plain [`serde_json::Value`]s) and never links the
//! services' crates, so a service that does not compile cannot lock anyone out
//! of `cargo xtask down`.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::StackError;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Page size when walking a whole list (the APIs' maximum).
const PAGE_SIZE: usize = 500;

/// A JSON-over-HTTP client for the services on loopback (no proxy, short timeouts).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
}

impl ApiClient {
    /// A client that ignores proxy settings (the services are on 127.0.0.1).
    pub fn new() -> Result<Self, StackError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(StackError::Client)?;
        Ok(ApiClient { http })
    }

    /// The HTTP status of `GET url` (the body is discarded).
    pub async fn status(&self, url: &str) -> Result<u16, StackError> {
        let response = self.get(url).await?;
        Ok(response.status().as_u16())
    }

    /// `GET url`, expecting 200 and a JSON body of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, StackError> {
        let response = self.get(url).await?;
        json(response, "GET", url).await
    }

    /// `POST url` with `body` as JSON, expecting 200 or 201 and a JSON answer of type `T`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T, StackError> {
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| http("POST", url, e))?;
        json(response, "POST", url).await
    }

    /// Places the order `body` on the order service at `base_url` with
    /// `Idempotency-Key: key`; the new order's id.
    pub async fn place_order(
        &self,
        base_url: &str,
        body: &Value,
        key: &str,
    ) -> Result<uuid::Uuid, StackError> {
        let url = format!("{base_url}/orders");
        let response = self
            .http
            .post(&url)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .map_err(|e| http("POST", &url, e))?;
        let created: Value = json(response, "POST", &url).await?;
        created["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| StackError::config(format!("POST {url} answered without an order id")))
    }

    /// Cancels order `id` on the order service at `base_url`.
    pub async fn cancel_order(&self, base_url: &str, id: uuid::Uuid) -> Result<(), StackError> {
        let url = format!("{base_url}/orders/{id}/cancel");
        let _: Value = self
            .post_json(&url, &serde_json::json!({ "reason": "changed my mind" }))
            .await?;
        Ok(())
    }

    /// `GET url` as text, expecting 200 (e.g. `/metrics`).
    pub async fn get_text(&self, url: &str) -> Result<String, StackError> {
        let response = self.get(url).await?;
        let response = expect_success(response, "GET", url).await?;
        response.text().await.map_err(|e| http("GET", url, e))
    }

    /// `GET url`, any status.
    async fn get(&self, url: &str) -> Result<reqwest::Response, StackError> {
        self.http
            .get(url)
            .send()
            .await
            .map_err(|e| http("GET", url, e))
    }

    /// Every item of a paged list (`{ "items": [...], "next_cursor": ... }`),
    /// following `next_cursor`; `url` may already carry a query.
    pub async fn list_all(&self, url: &str) -> Result<Vec<Value>, StackError> {
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_url = match &cursor {
                Some(cursor) => format!("{url}{separator}limit={PAGE_SIZE}&cursor={cursor}"),
                None => format!("{url}{separator}limit={PAGE_SIZE}"),
            };
            let mut page: Value = self.get_json(&page_url).await?;
            if let Some(Value::Array(page_items)) = page.get_mut("items").map(Value::take) {
                items.extend(page_items);
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
                _ => return Ok(items),
            }
        }
    }

    /// The value of metric `name` on `<base_url>/metrics`, summed over its label sets.
    pub async fn metric(&self, base_url: &str, name: &str) -> Result<f64, StackError> {
        let url = format!("{base_url}/metrics");
        let text = self.get_text(&url).await?;
        metric_value(&text, name).ok_or(StackError::MissingMetric {
            url,
            metric: name.to_owned(),
        })
    }
}

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

fn http(method: &'static str, url: &str, source: reqwest::Error) -> StackError {
    StackError::Http {
        method,
        url: url.to_owned(),
        source,
    }
}

async fn expect_success(
    response: reqwest::Response,
    method: &'static str,
    url: &str,
) -> Result<reqwest::Response, StackError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(StackError::Status {
        method,
        url: url.to_owned(),
        status: status.as_u16(),
        body: body.chars().take(500).collect(),
    })
}

async fn json<T: DeserializeOwned>(
    response: reqwest::Response,
    method: &'static str,
    url: &str,
) -> Result<T, StackError> {
    let response = expect_success(response, method, url).await?;
    response.json().await.map_err(|e| http(method, url, e))
}

/// `error` and its sources on one line, joined by ": " (repeats left out).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
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
