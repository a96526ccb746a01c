//! [`ApiClient`]: JSON over HTTP to the services on loopback.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    Balance, CancelOrder, ClientError, Invoice, Order, Page, PlaceOrder, Shipment, ToPick,
    metric_value,
};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Page size when walking a whole list (the APIs' maximum).
const PAGE_SIZE: usize = 500;

/// How much of an unexpected answer's body an error keeps.
const SHOWN_BODY: usize = 500;

/// The header that makes `POST /orders` safe to retry.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What a service answered, unjudged: for callers that count statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// Whether the body is declared `application/problem+json`.
    pub problem: bool,
    /// The `Location` header, if any (a created order's path).
    pub location: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// A client of the order, invoicing and shipping APIs; every call takes the
/// service's base URL (`http://127.0.0.1:8081`). Ignores proxy settings: the
/// services run on loopback.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
}

impl ApiClient {
    /// A client with a 10 s request and a 2 s connect timeout.
    pub fn new() -> Result<Self, ClientError> {
        Self::with_timeouts(REQUEST_TIMEOUT, CONNECT_TIMEOUT)
    }

    /// A client whose requests time out after `request`, connections after `connect`.
    pub fn with_timeouts(request: Duration, connect: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(request)
            .connect_timeout(connect)
            .tcp_nodelay(true)
            .build()
            .map_err(ClientError::Build)?;
        Ok(ApiClient { http })
    }

    /// `POST /orders` with `order` (and `Idempotency-Key: key` when given); the new order.
    pub async fn place_order(
        &self,
        base_url: &str,
        order: &PlaceOrder,
        key: Option<&str>,
    ) -> Result<Order, ClientError> {
        let url = orders_url(base_url);
        let reply = self.send_order(base_url, order, key).await?;
        expect_json("POST", &url, reply)
    }

    /// `POST /orders/{id}/cancel` with `cancel`; the order as it is now.
    pub async fn cancel_order(
        &self,
        base_url: &str,
        id: Uuid,
        cancel: &CancelOrder,
    ) -> Result<Order, ClientError> {
        let url = cancel_url(base_url, id);
        let reply = self.send_cancel(base_url, id, cancel).await?;
        expect_json("POST", &url, reply)
    }

    /// `GET /orders/{id}`.
    pub async fn order(&self, base_url: &str, id: Uuid) -> Result<Order, ClientError> {
        self.get_json(&format!("{base_url}/orders/{id}")).await
    }

    /// The invoice invoicing-service holds for `order_id`, `None` while it has none.
    pub async fn invoice_of(
        &self,
        base_url: &str,
        order_id: Uuid,
    ) -> Result<Option<Invoice>, ClientError> {
        let page: Page<Invoice> = self
            .get_json(&format!("{base_url}/invoices?order_id={order_id}"))
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// The shipment shipping-service holds for `order_id`, `None` while it has none.
    pub async fn shipment_of(
        &self,
        base_url: &str,
        order_id: Uuid,
    ) -> Result<Option<Shipment>, ClientError> {
        let page: Page<Shipment> = self
            .get_json(&format!("{base_url}/shipments?order_id={order_id}"))
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// Every open balance invoicing-service holds (`GET /balances`, all pages),
    /// by customer e-mail, then currency.
    pub async fn balances(&self, base_url: &str) -> Result<Vec<Balance>, ClientError> {
        self.list_all(&format!("{base_url}/balances")).await
    }

    /// Shipping-service's units to pick per SKU (`GET /pick-list`, all pages), by SKU.
    pub async fn pick_list(&self, base_url: &str) -> Result<Vec<ToPick>, ClientError> {
        self.list_all(&format!("{base_url}/pick-list")).await
    }

    /// Sends `POST /orders` with `order` and returns the answer whatever its status.
    pub async fn send_order(
        &self,
        base_url: &str,
        order: &PlaceOrder,
        key: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let url = orders_url(base_url);
        let body = serde_json::to_vec(order).map_err(|source| ClientError::Encode {
            method: "POST",
            url: url.clone(),
            source,
        })?;
        self.post_body(&url, key, body).await
    }

    /// Sends `POST /orders/{id}/cancel` and returns the answer whatever its status.
    pub async fn send_cancel(
        &self,
        base_url: &str,
        id: Uuid,
        cancel: &CancelOrder,
    ) -> Result<Reply, ClientError> {
        let url = cancel_url(base_url, id);
        let body = serde_json::to_vec(cancel).map_err(|source| ClientError::Encode {
            method: "POST",
            url: url.clone(),
            source,
        })?;
        self.post_body(&url, None, body).await
    }

    /// `POST url` with `body`, already JSON (a load generator serialises
    /// before its clock starts), and `Idempotency-Key: key` when given; the
    /// answer whatever its status.
    pub async fn post_body(
        &self,
        url: &str,
        key: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        let response = request.send().await.map_err(|e| http("POST", url, e))?;
        reply("POST", url, response).await
    }

    /// `GET url`; the answer whatever its status.
    pub async fn get(&self, url: &str) -> Result<Reply, ClientError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| http("GET", url, e))?;
        reply("GET", url, response).await
    }

    /// The HTTP status of `GET url` (e.g. `/health/ready`).
    pub async fn status(&self, url: &str) -> Result<u16, ClientError> {
        Ok(self.get(url).await?.status)
    }

    /// `GET url`, expecting 200 and a JSON body of type `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, ClientError> {
        let reply = self.get(url).await?;
        expect_json("GET", url, reply)
    }

    /// `POST url` with `body` as JSON, expecting 200 or 201 and a JSON answer of type `T`.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|source| ClientError::Encode {
            method: "POST",
            url: url.to_owned(),
            source,
        })?;
        let reply = self.post_body(url, None, body).await?;
        expect_json("POST", url, reply)
    }

    /// `GET url` as text, expecting 200 (e.g. `/metrics`).
    pub async fn get_text(&self, url: &str) -> Result<String, ClientError> {
        let reply = self.get(url).await?;
        Ok(expect_success("GET", url, reply)?.body)
    }

    /// Every item of a paged list (`{ "items": [...], "next_cursor": ... }`),
    /// following `next_cursor`; `url` may already carry a query.
    pub async fn list_all<T: DeserializeOwned>(&self, url: &str) -> Result<Vec<T>, ClientError> {
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_url = match &cursor {
                Some(cursor) => format!("{url}{separator}limit={PAGE_SIZE}&cursor={cursor}"),
                None => format!("{url}{separator}limit={PAGE_SIZE}"),
            };
            let page: Page<T> = self.get_json(&page_url).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) if !next.is_empty() => cursor = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// The value of metric `name` on `<base_url>/metrics`, summed over its label sets.
    pub async fn metric(&self, base_url: &str, name: &str) -> Result<f64, ClientError> {
        let url = format!("{base_url}/metrics");
        let text = self.get_text(&url).await?;
        metric_value(&text, name).ok_or(ClientError::MissingMetric {
            url,
            metric: name.to_owned(),
        })
    }
}

fn orders_url(base_url: &str) -> String {
    format!("{base_url}/orders")
}

fn cancel_url(base_url: &str, id: Uuid) -> String {
    format!("{base_url}/orders/{id}/cancel")
}

fn http(method: &'static str, url: &str, source: reqwest::Error) -> ClientError {
    ClientError::Http {
        method,
        url: url.to_owned(),
        source,
    }
}

/// Reads the whole answer: an answer is complete only once its body is read
/// (and the connection can serve the next request).
async fn reply(
    method: &'static str,
    url: &str,
    response: reqwest::Response,
) -> Result<Reply, ClientError> {
    let status = response.status().as_u16();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let problem = header(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let location = header(reqwest::header::LOCATION);
    let body = response.text().await.map_err(|e| http(method, url, e))?;
    Ok(Reply {
        status,
        problem,
        location,
        body,
    })
}

fn expect_success(method: &'static str, url: &str, reply: Reply) -> Result<Reply, ClientError> {
    if (200..300).contains(&reply.status) {
        return Ok(reply);
    }
    Err(ClientError::Status {
        method,
        url: url.to_owned(),
        status: reply.status,
        body: reply.body.chars().take(SHOWN_BODY).collect(),
    })
}

fn expect_json<T: DeserializeOwned>(
    method: &'static str,
    url: &str,
    reply: Reply,
) -> Result<T, ClientError> {
    let reply = expect_success(method, url, reply)?;
    reply.json().map_err(|source| ClientError::Decode {
        method,
        url: url.to_owned(),
        source,
    })
}
