//! Each service's OpenAPI 3.1 document and its API reference page.
//!
//! A service's document is generated (utoipa) from the annotations on its own
//! handlers, merged with [`common`]: the routes every service has (health,
//! metrics, these documents) and the `application/problem+json` error shape
//! every error answers with. [`routes`] serves it as `GET /openapi.json`, and
//! as a reference page at `GET /api-docs`, rendered here from the same
//! document into plain HTML: no script at all, no CDN, one stylesheet from
//! the service itself, sent with a Content-Security-Policy that allows
//! nothing else.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::Serialize;
use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{IntoResponses, ToSchema};

use crate::problem::FieldError;

/// The media type of every error body, as the documents name it.
pub const PROBLEM: &str = crate::problem::CONTENT_TYPE;

/// The reference page's Content-Security-Policy: nothing but its own stylesheet.
pub const CSP: &str = "default-src 'none'; style-src 'self'; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

/// An RFC 9457 problem document: the body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument {
    /// `about:blank`, or `/problems/validation` for a 422 that names fields.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, in words a person can act on.
    pub detail: String,
    /// For 422: each invalid field, named by its JSON path.
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldErrorDocument>>,
}

/// One invalid field of a request.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorDocument {
    /// JSON path of the field, e.g. `lines[0].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl From<&FieldError> for FieldErrorDocument {
    fn from(error: &FieldError) -> Self {
        FieldErrorDocument {
            field: error.field.clone(),
            message: error.message.clone(),
        }
    }
}

/// The errors every route can answer with.
#[derive(IntoResponses)]
pub enum ServerErrors {
    /// The request took longer than `HTTP_REQUEST_TIMEOUT_MS` and was abandoned.
    #[response(status = 408, content_type = "application/problem+json")]
    Timeout(#[to_schema] ProblemDocument),
    /// The `Host` is not one this service is served under (`ALLOWED_HOSTS`): a
    /// DNS-rebinding attempt, or a name missing from the setting.
    #[response(status = 421, content_type = "application/problem+json")]
    Misdirected(#[to_schema] ProblemDocument),
    /// The server failed; the cause is in its log, not here.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(#[to_schema] ProblemDocument),
    /// The database is unavailable, or every request slot stayed taken for
    /// `HTTP_QUEUE_TIMEOUT_MS` (then with `Retry-After`); retry later.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(#[to_schema] ProblemDocument),
}

/// A query or path value that cannot be read (e.g. a `limit` out of range, an id that is no UUID).
#[derive(IntoResponses)]
pub enum BadRequest {
    /// The request cannot be read; `detail` names what.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] ProblemDocument),
}

/// No resource with this id.
#[derive(IntoResponses)]
pub enum NotFound {
    /// There is no such resource.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(#[to_schema] ProblemDocument),
}

/// What a request with a JSON body can be refused for besides [`BadRequest`].
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// A browser sent it from another site's page (`Sec-Fetch-Site` or `Origin`).
    #[response(status = 403, content_type = "application/problem+json")]
    CrossSite(#[to_schema] ProblemDocument),
    /// The body is larger than the limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(#[to_schema] ProblemDocument),
    /// The body is not sent as `application/json` (UTF-8).
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(#[to_schema] ProblemDocument),
    /// The body was read but fields are invalid; `errors` names every one.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(#[to_schema] ProblemDocument),
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service", content_type = "application/json", body = Object), ServerErrors)
)]
async fn openapi_json(document: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// `GET /api-docs`: the API reference, rendered from this document.
#[utoipa::path(
    get,
    path = "/api-docs",
    tag = "documentation",
    responses((status = 200, description = "The API reference as an HTML page (no script)", content_type = "text/html", body = String), ServerErrors)
)]
async fn reference_page(page: Bytes) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response();
    response
        .headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(CSP));
    response
}

/// `GET /api-docs/style.css`: the reference page's stylesheet.
#[utoipa::path(
    get,
    path = "/api-docs/style.css",
    tag = "documentation",
    responses((status = 200, description = "The reference page's stylesheet", content_type = "text/css", body = String), ServerErrors)
)]
async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
code,pre{font-family:ui-monospace,monospace}\
h2{border-bottom:1px solid #ccc;margin-top:2rem}\
.op{margin:1rem 0;padding:.5rem 1rem;border-left:4px solid #36c;background:#f6f8fb}\
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}\
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}";

/// The part of every service's document that `platform` owns: health,
/// metrics, the documents themselves, and the problem shape.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        crate::http::live,
        crate::http::ready,
        crate::http::render_metrics,
        openapi_json,
        reference_page,
        stylesheet
    ),
    components(schemas(ProblemDocument, FieldErrorDocument)),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "documentation", description = "This document and its reference page")
    )
)]
struct Common;

/// `service`'s document (from its handlers' annotations) with the common
/// part merged in, titled and versioned.
pub fn document(mut service: OpenApi, title: &str, description: &str) -> OpenApi {
    use utoipa::OpenApi as _;
    service.merge(Common::openapi());
    service.info.title = title.to_owned();
    service.info.description = Some(description.to_owned());
    service.info.version = env!("CARGO_PKG_VERSION").to_owned();
    service
}

/// `GET /openapi.json`, `GET /api-docs` and its stylesheet, serving `document`.
pub fn routes<S: Clone + Send + Sync + 'static>(document: &OpenApi) -> Router<S> {
    // Rendered once; each answer shares the bytes.
    let json = Bytes::from(
        document
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned()),
    );
    let page = Bytes::from(render(document));
    Router::new()
        .route("/openapi.json", get(move || openapi_json(json.clone())))
        .route("/api-docs", get(move || reference_page(page.clone())))
        .route("/api-docs/style.css", get(stylesheet))
}

/// The reference page: every operation with its parameters, body and
/// answers, written with `maud` like every other page (it escapes every
/// value it interpolates).
pub fn render(document: &OpenApi) -> String {
    let version = serde_json::to_value(&document.openapi)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let methods = |item: &utoipa::openapi::PathItem| {
        [
            ("get", item.get.clone()),
            ("post", item.post.clone()),
            ("put", item.put.clone()),
            ("patch", item.patch.clone()),
            ("delete", item.delete.clone()),
        ]
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (document.info.title) ": API reference" }
                link rel="stylesheet" href="/api-docs/style.css";
            }
            body {
                h1 { (document.info.title) }
                p { (document.info.description.as_deref().unwrap_or("")) }
                p { "OpenAPI " (version) " document: " a href="/openapi.json" { "/openapi.json" }
                    ". Every error is " code { "application/problem+json" } "." }
                @for (path, item) in &document.paths.paths {
                    @for (method, operation) in methods(item) {
                        @if let Some(operation) = operation {
                            (operation_html(method, path, &operation))
                        }
                    }
                }
            }
        }
    };
    page.into_string() + "\n"
}

fn operation_html(method: &str, path: &str, operation: &Operation) -> Markup {
    html! {
        section.op {
            h2 { span.method { (method) } code { (path) } }
            @if let Some(summary) = &operation.summary { p { (summary) } }
            @if let Some(description) = &operation.description { p { (description) } }
            @if let Some(parameters) = operation.parameters.as_ref().filter(|p| !p.is_empty()) {
                h3 { "Parameters" }
                table {
                    tr { th { "Name" } th { "In" } th { "Required" } th { "Description" } }
                    @for parameter in parameters { (parameter_html(parameter)) }
                }
            }
            @if let Some(body) = &operation.request_body {
                h3 { "Request body" }
                p {
                    (body.content.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
                    " " (body.description.as_deref().unwrap_or(""))
                }
            }
            h3 { "Answers" }
            table {
                tr { th { "Status" } th { "Description" } th { "Media type" } }
                @for (status, response) in &operation.responses.responses {
                    @let (description, types) = match response {
                        RefOr::T(response) => (
                            response.description.clone(),
                            response.content.keys().cloned().collect::<Vec<_>>().join(", "),
                        ),
                        RefOr::Ref(reference) => (reference.ref_location.clone(), String::new()),
                    };
                    tr { td { (status) } td { (description) } td { (types) } }
                }
            }
        }
    }
}

fn parameter_html(parameter: &Parameter) -> Markup {
    let location = match parameter.parameter_in {
        utoipa::openapi::path::ParameterIn::Query => "query",
        utoipa::openapi::path::ParameterIn::Path => "path",
        utoipa::openapi::path::ParameterIn::Header => "header",
        utoipa::openapi::path::ParameterIn::Cookie => "cookie",
    };
    let required = matches!(parameter.required, utoipa::openapi::Required::True);
    html! {
        tr {
            td { code { (parameter.name) } }
            td { (location) }
            td { (if required { "yes" } else { "no" }) }
            td { (parameter.description.as_deref().unwrap_or("")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi as _;

    use super::*;
    use crate::Problem;

    fn problem_schema() -> Value {
        let document = document(Common::openapi(), "t", "d");
        let mut schema =
            serde_json::to_value(&document).unwrap()["components"]["schemas"]["Problem"].clone();
        // Resolve the one reference inside it for the validator.
        let field =
            serde_json::to_value(&document).unwrap()["components"]["schemas"]["FieldError"].clone();
        schema["$defs"] = serde_json::json!({ "FieldError": field });
        let text = schema
            .to_string()
            .replace("#/components/schemas/", "#/$defs/");
        serde_json::from_str(&text).unwrap()
    }

    /// The documented shape is the shape `Problem` serialises to.
    #[test]
    fn every_problem_the_services_send_matches_the_documented_shape() {
        let schema = problem_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        for problem in [
            Problem::not_found("no order 42"),
            Problem::validation(vec![FieldError::new(
                "lines[0].quantity",
                "must be 1 to 10000",
            )]),
            Problem::internal(),
            Problem::unavailable("database unavailable, retry"),
        ] {
            let json = serde_json::to_value(&problem).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&json)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{json}: {errors:?}");
        }
    }

    #[test]
    fn the_reference_page_lists_every_operation_escaped_and_without_script() {
        let document = document(Common::openapi(), "order <service>", "d");
        let page = render(&document);
        assert!(page.contains("order &lt;service&gt;"));
        assert!(page.contains("<code>/health/ready</code>"));
        assert!(page.contains("<code>/openapi.json</code>"));
        assert!(!page.contains("<script"), "no script on the page");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing from elsewhere"
        );
        assert!(CSP.contains("default-src 'none'") && !CSP.contains("script-src"));
    }
}
