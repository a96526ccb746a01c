//! Every way a request can fail, and the problem+json answer for each.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform_web::{FieldError, Problem};
use uuid::Uuid;

use crate::store::StoreError;

/// A failed request; converting it into a response logs server faults.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON, wrong type, bad header, bad path).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 415: the body is not `application/json`.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 413: the body is larger than the limit.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 422: the body was read but fields are invalid; names every one.
    #[error("{} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// 404: no order with this id.
    #[error("no order {0}")]
    OrderNotFound(Uuid),
    /// 409: the `Idempotency-Key` was used before for a different request.
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    /// 503 or 500, depending on whether the database is only unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The problem document for this error (logging server faults on the way).
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::BadRequest(detail) => Problem::bad_request(detail.clone()),
            ApiError::UnsupportedMediaType(detail) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail.clone())
            }
            ApiError::PayloadTooLarge { limit } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} KiB; an order has at most 100 lines",
                    limit / 1024
                ),
            ),
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::OrderNotFound(id) => Problem::not_found(format!("there is no order {id}")),
            ApiError::IdempotencyKeyReused => Problem::conflict(
                "this Idempotency-Key was already used for a different request; \
                 use a new key for a new order, or resend the original request unchanged",
            ),
            ApiError::Store(e) if e.is_transient() => {
                tracing::warn!(error = %platform::error::chain(e), "database unavailable");
                Problem::unavailable(match e {
                    StoreError::Database(e) => platform::db::unavailable_detail(e),
                    StoreError::Event(_) | StoreError::Inconsistent(_) => {
                        platform::db::DATABASE_UNAVAILABLE
                    }
                })
            }
            ApiError::Store(e) => {
                tracing::error!(error = %platform::error::chain(e), "request failed");
                Problem::internal()
            }
        }
    }
}

impl From<Vec<FieldError>> for ApiError {
    fn from(errors: Vec<FieldError>) -> Self {
        ApiError::Validation(errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.to_problem().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_their_status() {
        let cases = [
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (ApiError::PayloadTooLarge { limit: 65536 }, 413),
            (ApiError::Validation(vec![FieldError::new("a", "b")]), 422),
            (ApiError::OrderNotFound(Uuid::nil()), 404),
            (ApiError::IdempotencyKeyReused, 409),
        ];
        for (error, status) in cases {
            assert_eq!(error.to_problem().status().as_u16(), status, "{error}");
        }
    }

    #[test]
    fn database_errors_are_503_when_transient_and_500_otherwise() {
        let transient = ApiError::Store(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(
            transient.to_problem().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(transient.to_problem().detail(), platform::db::POOL_BUSY);
        let bug = ApiError::Store(StoreError::Database(sqlx::Error::RowNotFound));
        assert_eq!(bug.to_problem().status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!bug.to_problem().detail().contains("RowNotFound"));
    }
}
