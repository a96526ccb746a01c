//! Reading a request body: from bytes to a request type, or to an error
//! that says exactly what to fix.
//!
//! Reading happens in stages, each with its own status:
//!
//! 1. media type (415) and size (413, enforced while the body is read);
//! 2. JSON syntax (400, with line and column): the body is parsed into a
//!    `serde_json::Value` first, so a syntax error is never confused with a
//!    shape error, and a key that occurs twice is refused;
//! 3. JSON shape via `serde_path_to_error` (400 for a wrong type, naming the
//!    path, e.g. `lines[0].quantity`; 422 for an unknown field), reading
//!    objects only where the request has objects ([`Strict`]).
//!
//! Validation into domain values is the next step, [`super::validate`].
//! Handlers take a [`StrictJson<T>`] (or an [`OptionalJson<T>`] where the
//! body may be left out) and never see bytes or headers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use platform_web::FieldError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use super::headers::require_json;
use super::json::Strict;

/// Largest accepted request body: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body of type `T`, read strictly (see the module documentation);
/// its rejection is an [`ApiError`], so a client mistake is a 4xx problem.
#[derive(Debug, Clone)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let body = body_bytes(Bytes::from_request(request, state).await)?;
        read_json(&body).map(StrictJson)
    }
}

/// [`StrictJson`] for a body that may be left out: an empty body is `None`.
/// Empty or not, it must be declared `application/json`: an HTML form can
/// send an empty `text/plain` body from any site without a CORS preflight,
/// and a JSON route that took it would act on another site's behalf.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let body = body_bytes(Bytes::from_request(request, state).await)?;
        read_optional_json(&headers, &body).map(OptionalJson)
    }
}

/// The body of a request whose body is optional: `None` when it is empty;
/// declared `application/json` either way.
pub fn read_optional_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<T>, ApiError> {
    require_json(headers)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    read_json(body).map(Some)
}

/// The buffered body, or 413 when it exceeded [`MAX_BODY_BYTES`].
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        } else {
            ApiError::BadRequest(format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ))
        }
    })
}

/// Parses a JSON body into `T`: syntax errors and wrong types are 400,
/// unknown fields 422, each naming where the problem is.
pub fn read_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let value: Value = super::json::parse(body).map_err(|e| {
        ApiError::BadRequest(match e.classify() {
            serde_json::error::Category::Eof => format!(
                "the JSON body ends early at line {} column {}; was it cut off?",
                e.line(),
                e.column()
            ),
            _ => format!("the request body is not valid JSON: {e}"),
        })
    })?;
    serde_path_to_error::deserialize(Strict(value)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        match message.strip_prefix("unknown field ") {
            // "`foo`, expected one of `a`, `b`": the path already ends in `foo`.
            Some(rest) => {
                let expected = rest
                    .split_once(", ")
                    .map_or("this object has no fields", |(_, expected)| expected);
                ApiError::Validation(vec![FieldError::new(
                    path,
                    format!("is not a known field; {expected}"),
                )])
            }
            None if path == "." => ApiError::BadRequest(format!("request body: {message}")),
            None => ApiError::BadRequest(format!("{path}: {message}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use serde_json::json;

    use super::*;
    use crate::api::request::CancelRequest;
    use crate::api::sample::{bad_request, decode, decode_bytes, field_errors, fields, valid};
    use crate::domain::CancelReason;

    /// A cancel body read and validated as `POST /orders/{id}/cancel` does.
    fn cancel(headers: &HeaderMap, body: &[u8]) -> Result<Option<CancelReason>, ApiError> {
        let request: Option<CancelRequest> = read_optional_json(headers, body)?;
        Ok(request.map(|r| r.validate()).transpose()?.flatten())
    }

    #[test]
    fn syntax_and_type_errors_are_bad_requests() {
        let detail = bad_request(decode_bytes(b"{\"customer\": "));
        assert!(detail.contains("line 1 column 13"), "{detail}");
        let detail = bad_request(decode_bytes(b"{\n  \"currency\": EUR }"));
        assert!(detail.contains("line 2"), "{detail}");
        assert!(bad_request(decode_bytes(b"")).contains("empty"));
        assert!(bad_request(decode_bytes(b"\xff\xfe")).contains("not valid JSON"));
        assert!(bad_request(decode_bytes(b"{} {}")).contains("not valid JSON"));
        let detail = bad_request(decode_bytes(br#"{"currency":"EUR","\u0063urrency":"USD"}"#));
        assert!(detail.contains("`currency` occurs twice"), "{detail}");

        let mut v = valid();
        v["lines"][0]["quantity"] = json!("2");
        assert!(bad_request(decode(&v)).starts_with("lines[0].quantity:"));
        let mut v = valid();
        v["customer"] = json!("Ada");
        assert!(bad_request(decode(&v)).starts_with("customer:"));
        let detail = bad_request(decode(&json!([1, 2])));
        assert!(detail.starts_with("request body:"), "{detail}");
        let deep = "[".repeat(1000);
        assert!(bad_request(decode_bytes(deep.as_bytes())).contains("not valid JSON"));
    }
    #[test]
    fn unknown_fields_are_named_by_path() {
        let mut v = valid();
        v["customer"]["phone"] = json!("123");
        let errors = field_errors(decode(&v));
        assert_eq!(errors[0].0, "customer.phone");
        assert!(errors[0].1.contains("`name`"), "{}", errors[0].1);
        let mut v = valid();
        v["lines"][1]["discount"] = json!(5);
        assert_eq!(fields(decode(&v)), ["lines[1].discount"]);
        let mut v = valid();
        v["total_cents"] = json!(5);
        assert_eq!(fields(decode(&v)), ["total_cents"]);
    }
    #[test]
    fn cancel_reasons() {
        let none = HeaderMap::new();
        let mut json_headers = HeaderMap::new();
        json_headers.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(cancel(&json_headers, b"").unwrap(), None);
        assert_eq!(cancel(&json_headers, b"{}").unwrap(), None);
        assert_eq!(cancel(&json_headers, br#"{"reason":"  "}"#).unwrap(), None);
        let reason = cancel(&json_headers, br#"{"reason":" changed my mind "}"#).unwrap();
        assert_eq!(reason.unwrap().as_str(), "changed my mind");
        let long = format!(r#"{{"reason":"{}"}}"#, "r".repeat(501));
        assert!(matches!(
            cancel(&json_headers, long.as_bytes()),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            cancel(&json_headers, br#"{"why":"x"}"#),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            cancel(&none, br#"{"reason":"x"}"#),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        // An empty body is what an HTML form can send from any site.
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let mut form = HeaderMap::new();
            form.insert("content-type", content_type.parse().unwrap());
            assert!(
                matches!(cancel(&form, b""), Err(ApiError::UnsupportedMediaType(_))),
                "{content_type}"
            );
        }
        assert!(matches!(
            cancel(&none, b""),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
