//! The request headers the API reads besides the body: `Idempotency-Key`,
//! `Content-Type` and the W3C `traceparent`, and the request span they are
//! recorded in.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use shared_events::TraceParent;
use uuid::Uuid;

use super::ApiError;

/// The request header that makes `POST /orders` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header that marks an answer replayed from an earlier request.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` request header, as the OpenAPI document shows it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// Optional: a client-chosen key (1 to 255 visible ASCII characters, e.g. a UUID). A retry
    /// with the same key and body returns the order the key placed (within
    /// IDEMPOTENCY_KEY_RETENTION_HOURS); the same key with another body is a 409.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}

/// A client-chosen key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest accepted key.
    pub const MAX_LEN: usize = 255;

    /// Validates a key value.
    pub fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        let visible = raw.iter().all(|b| (0x21..=0x7e).contains(b));
        if !(1..=Self::MAX_LEN).contains(&raw.len()) || !visible {
            return Err(ApiError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {} visible ASCII characters \
                 (no spaces), e.g. a UUID",
                Self::MAX_LEN
            )));
        }
        // All bytes are ASCII, so this cannot fail; stay total anyway.
        String::from_utf8(raw.to_vec())
            .map(IdempotencyKey)
            .map_err(|_| ApiError::BadRequest("the Idempotency-Key header must be ASCII".into()))
    }

    /// The key from `headers`, if the client sent one; more than one is an error.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => Self::parse(value.as_bytes()).map(Some),
            (Some(_), Some(_)) => Err(ApiError::BadRequest(
                "send the Idempotency-Key header once".into(),
            )),
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks that the body is declared `application/json` (a `charset`
/// parameter is allowed if it says UTF-8).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |got: &str| {
        ApiError::UnsupportedMediaType(format!(
            "the request body must be JSON sent with `Content-Type: application/json`; got {got}"
        ))
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(unsupported("no Content-Type"));
    };
    let Ok(value) = value.to_str() else {
        return Err(unsupported("an unreadable Content-Type"));
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(unsupported(&format!("`{}`", truncate(value, 100))));
    }
    for parameter in parts {
        let (name, val) = parameter.split_once('=').unwrap_or((parameter, ""));
        let val = val.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset")
            && !val.eq_ignore_ascii_case("utf-8")
            && !val.eq_ignore_ascii_case("utf8")
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "JSON must be UTF-8; got charset `{}`",
                truncate(val, 40)
            )));
        }
    }
    Ok(())
}

/// The trace context for the work this request causes: the caller's trace
/// continued from a new span when it sent a valid `traceparent`, else a new trace.
pub fn trace_context(headers: &HeaderMap) -> TraceParent {
    headers
        .get(platform::telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceParent>().ok())
        .map_or_else(TraceParent::new_root, |parent| parent.child())
}

/// The request's trace context ([`trace_context`]), as an extractor.
#[derive(Debug, Clone)]
pub struct TraceContext(pub TraceParent);

impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(TraceContext(trace_context(&parts.headers)))
    }
}

/// `Option<IdempotencyKey>` as an extractor: `None` without the header, a
/// 400 for an invalid or repeated one.
impl<S: Send + Sync> OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        IdempotencyKey::from_headers(&parts.headers)
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The per-request span the platform layer opens (with empty `trace_id` and
/// `order_id` fields), captured while extracting, before the handler's own
/// `#[instrument]` span is entered.
#[derive(Debug, Clone)]
pub struct RequestSpan(tracing::Span);

impl RequestSpan {
    /// Records the trace id in the request span and the handler's span.
    pub fn record_trace(&self, trace: &TraceParent) {
        let trace_id = trace.trace_id();
        self.0.record("trace_id", trace_id.as_str());
        tracing::Span::current().record("trace_id", trace_id.as_str());
    }

    /// Records the order id in the request span and the handler's span.
    pub fn record_order(&self, order_id: Uuid) {
        self.0.record("order_id", tracing::field::display(order_id));
        tracing::Span::current().record("order_id", tracing::field::display(order_id));
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestSpan {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestSpan(tracing::Span::current()))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse(b"abc-123_!~").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"has space").is_err());
        assert!(IdempotencyKey::parse("ümlaut".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"tab\t").is_err());
        assert_eq!(IdempotencyKey::from_headers(&headers(&[])).unwrap(), None);
        assert!(
            IdempotencyKey::from_headers(&headers(&[
                ("idempotency-key", "a"),
                ("idempotency-key", "b")
            ]))
            .is_err()
        );
    }

    #[test]
    fn only_json_bodies_are_accepted() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=\"UTF-8\"",
        ] {
            assert!(
                require_json(&headers(&[("content-type", ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
        ] {
            assert!(
                require_json(&headers(&[("content-type", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(require_json(&HeaderMap::new()).is_err());
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_anything_else_starts_a_trace() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = trace_context(&headers(&[("traceparent", incoming)]));
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(tp.to_string(), incoming);
        let fresh = trace_context(&headers(&[("traceparent", "garbage")]));
        assert_ne!(fresh.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
