//! The consumers' public HTTP APIs, as order-service's pages read them: an
//! order's invoice and shipment, the records of it each consumer refused,
//! and each consumer's `/metrics`. No service reads another's database; a
//! view across services is composed from their APIs. Each call has a short
//! timeout: a consumer that is down makes a step of the journey say so, it
//! never holds the page.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use messaging::dead_letter::Recorded;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// How long a page waits for a consumer's answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Which consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// invoicing-service.
    Invoicing,
    /// shipping-service.
    Shipping,
}

impl Consumer {
    /// Both, in the order of the flow.
    pub const BOTH: [Consumer; 2] = [Consumer::Invoicing, Consumer::Shipping];

    /// Its entry in the registry of services.
    fn facts(self) -> &'static platform::services::ServiceFacts {
        match self {
            Consumer::Invoicing => &platform::services::INVOICING_SERVICE,
            Consumer::Shipping => &platform::services::SHIPPING_SERVICE,
        }
    }

    /// The service's name.
    pub fn service(self) -> &'static str {
        self.facts().name
    }

    /// Its collection in the API (`invoices`, `shipments`).
    fn collection(self) -> &'static str {
        self.facts().collection.trim_start_matches('/')
    }
}

/// Why a consumer's API gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer (refused, timed out) or an unreadable one.
    #[error("{service} did not answer")]
    Unreachable {
        /// Which service.
        service: &'static str,
        /// What the client saw.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status.
    #[error("{service} answered {status}")]
    Status {
        /// Which service.
        service: &'static str,
        /// The status.
        status: u16,
    },
}

/// An invoice or a shipment, as far as the journey cares.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Effect {
    /// Its id (its page is `/invoice/{id}` or `/shipment/{id}`).
    pub id: Uuid,
    /// `open`/`pending` or `cancelled`.
    pub status: String,
    /// When the consumer committed it (`issued_at` / `created_at`).
    #[serde(rename = "issued_at", alias = "created_at")]
    pub at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// A client of both consumers' APIs.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    invoicing: Arc<str>,
    shipping: Arc<str>,
}

impl Upstream {
    /// Reads invoicing's API at `invoicing` and shipping's at `shipping` (base
    /// URLs); fails only when the HTTP client cannot be built.
    pub fn new(invoicing: &str, shipping: &str) -> Result<Self, reqwest::Error> {
        Ok(Upstream {
            client: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            invoicing: Arc::from(invoicing),
            shipping: Arc::from(shipping),
        })
    }

    fn base(&self, consumer: Consumer) -> &str {
        match consumer {
            Consumer::Invoicing => &self.invoicing,
            Consumer::Shipping => &self.shipping,
        }
    }

    async fn get(
        &self,
        consumer: Consumer,
        path: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let service = consumer.service();
        let response = self
            .client
            .get(format!("{}{path}", self.base(consumer)))
            .send()
            .await
            .map_err(|source| UpstreamError::Unreachable { service, source })?;
        if !response.status().is_success() {
            return Err(UpstreamError::Status {
                service,
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        consumer: Consumer,
        path: &str,
    ) -> Result<T, UpstreamError> {
        let service = consumer.service();
        self.get(consumer, path)
            .await?
            .json()
            .await
            .map_err(|source| UpstreamError::Unreachable { service, source })
    }

    /// The order's invoice (or shipment), once the consumer has made it.
    pub async fn effect_of(
        &self,
        consumer: Consumer,
        order: Uuid,
    ) -> Result<Option<Effect>, UpstreamError> {
        let path = format!("/{}?order_id={order}&limit=1", consumer.collection());
        let page: Items<Effect> = self.json(consumer, &path).await?;
        Ok(page.items.into_iter().next())
    }

    /// The records of the order the consumer refused (dead-lettered).
    pub async fn dead_letters(
        &self,
        consumer: Consumer,
        order: Uuid,
    ) -> Result<Vec<Recorded>, UpstreamError> {
        let page: Items<Recorded> = self
            .json(consumer, &format!("/dead-letters?order_id={order}"))
            .await?;
        Ok(page.items)
    }

    /// The consumer's `/metrics` text.
    pub async fn metrics(&self, consumer: Consumer) -> Result<String, UpstreamError> {
        let service = consumer.service();
        self.get(consumer, "/metrics")
            .await?
            .text()
            .await
            .map_err(|source| UpstreamError::Unreachable { service, source })
    }
}
