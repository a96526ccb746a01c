//! What keeps a page safe to open and a form safe to accept.
//!
//! - [`security_headers`] puts on every answer a Content-Security-Policy
//!   that allows scripts, styles and requests only from the service itself
//!   (no inline script, no inline style, no plugin, no framing), plus
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//!   `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`.
//! - [`same_origin_forms`] refuses a state-changing request that a browser
//!   sent on behalf of another site (cross-site request forgery). Browsers
//!   say where a request comes from: `Sec-Fetch-Site` (every current
//!   browser), else `Origin`. A request with `Sec-Fetch-Site` must be
//!   `same-origin` (or `none`, typed by the user); one with only `Origin`
//!   must name this very host. A request with neither is not from a
//!   browser page (curl, the services' own clients) and carries nothing a
//!   forger could borrow; it passes. This is the check Go's
//!   `http.CrossOriginProtection` makes, without tokens to manage.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::PageError;

/// The Content-Security-Policy of every answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Middleware: the security headers of the module documentation, on every answer.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    // A route that set a stricter policy of its own (the API reference) keeps it.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Middleware: refuses (403) an unsafe request sent from another site's
/// page; see the module documentation.
pub async fn same_origin_forms(request: Request, next: Next) -> Response {
    if request.method().is_safe() {
        return next.run(request).await;
    }
    match cross_site(request.headers()) {
        None => next.run(request).await,
        Some(why) => {
            tracing::warn!(why, "cross-site form post refused");
            PageError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this form was sent from another site ({why}); nothing was changed. \
                     Open the form on this service's own page and send it from there."
                ),
            )
            .into_response()
        }
    }
}

/// Why a request comes from another site's page, or `None` if it does not.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            other => Some(format!(
                "Sec-Fetch-Site: {}",
                String::from_utf8_lossy(other)
                    .chars()
                    .take(40)
                    .collect::<String>()
            )),
        };
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    match (origin_host, host) {
        (Some(from), Some(host)) if from.eq_ignore_ascii_case(host) => None,
        _ => Some(format!(
            "Origin: {}",
            String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(80)
                .collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_pages_of_this_origin_may_post() {
        assert_eq!(cross_site(&headers(&[])), None, "curl");
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "none")])), None);
        for site in ["cross-site", "same-site"] {
            let map = match site {
                "cross-site" => headers(&[("sec-fetch-site", "cross-site")]),
                _ => headers(&[("sec-fetch-site", "same-site")]),
            };
            assert!(cross_site(&map).is_some(), "{site}");
        }
        let same = headers(&[
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8081"),
        ]);
        assert_eq!(cross_site(&same), None);
        for origin in ["http://127.0.0.1:9999", "null", "http://evil.example"] {
            let mut map = headers(&[("host", "127.0.0.1:8081")]);
            map.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(cross_site(&map).is_some(), "{origin}");
        }
        // Sec-Fetch-Site decides when both are there.
        let forged = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8081"),
            ("host", "127.0.0.1:8081"),
        ]);
        assert!(cross_site(&forged).is_some());
    }
}
