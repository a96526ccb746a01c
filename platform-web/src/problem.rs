//! RFC 9457 problem details: the one error body every endpoint answers with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The media type of every error body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request, named by its JSON path (`lines[0].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the offending field.
    pub field: String,
    /// What is wrong with it, in words a person can act on.
    pub message: String,
}

impl FieldError {
    /// A field error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error response in `application/problem+json` form.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    #[serde(serialize_with = "serialize_status")]
    status: StatusCode,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

fn serialize_status<S: serde::Serializer>(status: &StatusCode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u16(status.as_u16())
}

impl Problem {
    /// A problem with the given status; the title is the status's reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400: the request could not be read.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the resource's state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422: the request was read but its content is invalid; `errors` names each field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid; see `errors`", many.len()),
        };
        Problem {
            kind: "/problems/validation",
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    /// 503: a dependency (the database) is unavailable; the client may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// 500: our fault. The detail never carries internals; they go to the log.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server failed to handle the request; the error was logged",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The human-readable explanation.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The field errors of a validation problem.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// Middleware: turns every error response that is not already problem+json
/// (axum's own 405 and extractor rejections, tower-http's 408 and 413) into
/// one, keeping its status and, when it is short plain text, its message.
/// The pages' own HTML error pages (`text/html`) are left as they are.
pub async fn ensure_problem_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CONTENT_TYPE) || v.starts_with("text/html"));
    if is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    };
    let detail = match status {
        // axum adds the `Allow` header after this layer has run, so the
        // allowed methods reach the client as that header, not in the detail.
        StatusCode::METHOD_NOT_ALLOWED => {
            "this method is not allowed on this resource; the Allow header lists the ones that are"
                .to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was abandoned".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_owned(),
        _ if !text.is_empty() && text.len() <= 500 => text,
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let mut fixed = Problem::new(status, detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// A database error as an HTTP answer: 503 when it is transient (the client
/// may retry), 500 otherwise. The error is logged in full; the client never
/// sees SQL or driver internals.
impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Self {
        if platform::db::is_transient(&error) {
            tracing::warn!(error = %error, "database unavailable");
            Problem::unavailable(platform::db::unavailable_detail(&error))
        } else {
            tracing::error!(error = ?error, "database error");
            Problem::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_names_each_field() {
        let p = Problem::validation(vec![FieldError::new(
            "lines[0].quantity",
            "must be 1..=10000",
        )]);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["status"], 422);
        assert_eq!(json["errors"][0]["field"], "lines[0].quantity");
        assert_eq!(json["detail"], "lines[0].quantity: must be 1..=10000");
    }

    #[test]
    fn problem_response_has_the_problem_media_type() {
        let r = Problem::not_found("no order 42").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }

    #[test]
    fn database_errors_answer_503_when_transient_and_500_otherwise() {
        let unavailable = Problem::from(sqlx::Error::PoolTimedOut);
        assert_eq!(unavailable.status().as_u16(), 503);
        assert_eq!(
            unavailable.detail(),
            platform::db::POOL_BUSY,
            "a busy pool says so"
        );
        let away = Problem::from(sqlx::Error::PoolClosed);
        assert_eq!(away.detail(), platform::db::DATABASE_UNAVAILABLE);
        let bug = Problem::from(sqlx::Error::RowNotFound);
        assert_eq!(bug.status().as_u16(), 500);
        assert!(!bug.detail().contains("no rows"));
    }
}
