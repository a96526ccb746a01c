//! What can go wrong between a client and a service.

/// A request that got no usable answer, or not the one expected.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client")]
    Build(#[source] reqwest::Error),

    /// The request got no usable answer (connection, timeout, unreadable body).
    #[error("{method} {url} failed")]
    Http {
        /// The request method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },

    /// The request was answered with a status the call does not accept.
    #[error("{method} {url} answered {status}: {body}")]
    Status {
        /// The request method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },

    /// The answer is not the JSON the call expects.
    #[error("{method} {url} answered JSON of another shape")]
    Decode {
        /// The request method.
        method: &'static str,
        /// The URL.
        url: String,
        /// Where and why decoding failed.
        #[source]
        source: serde_json::Error,
    },

    /// A request body could not be encoded as JSON.
    #[error("cannot encode the body of {method} {url}")]
    Encode {
        /// The request method.
        method: &'static str,
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// A service's `/metrics` lacks a metric the caller relies on.
    #[error("{url} has no metric `{metric}`")]
    MissingMetric {
        /// The metrics URL.
        url: String,
        /// The metric's name.
        metric: String,
    },
}

impl ClientError {
    /// Whether the request timed out (no answer in time).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Http { source, .. } if source.is_timeout())
    }

    /// Whether the connection could not be made (nothing listens, refused).
    pub fn is_connect(&self) -> bool {
        matches!(self, ClientError::Http { source, .. } if source.is_connect())
    }
}
