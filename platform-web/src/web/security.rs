//! What keeps the services safe to reach from a browser: from a page of
//! their own, from another site's page, and through a name another site
//! controls.
//!
//! - [`security_headers`] puts on every answer a Content-Security-Policy
//!   that allows scripts, styles and requests only from the service itself
//!   (no inline script, no inline style, no plugin, no framing), plus
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` and
//!   `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`.
//! - [`guard`] runs before any route, on every request, health and metrics
//!   included, and makes two checks:
//!   1. **`Host` must be one of [`AllowedHosts`]** (421 Misdirected Request
//!      otherwise; 400 without a `Host`). This is what defeats DNS
//!      rebinding: a site whose name an attacker points at 127.0.0.1 makes
//!      the victim's browser send `Host: evil.example`, and its page is
//!      then "same-origin" with everything it reads. A service that answers
//!      only the names it is published under is never reached that way.
//!   2. **An unsafe request (POST, PUT, PATCH, DELETE, anything but GET,
//!      HEAD, OPTIONS, TRACE) must not come from another site's page**
//!      (cross-site request forgery; 403 otherwise), API and pages alike.
//!      Browsers say where a request comes from: `Sec-Fetch-Site` (every
//!      current browser), else `Origin`. A request with `Sec-Fetch-Site`
//!      must be `same-origin` (or `none`: typed or bookmarked by the user);
//!      one with only `Origin` must name an allowed origin: `http://` or
//!      `https://` and an allowed host, never compared with the request's
//!      own `Host`, which the rebinding site chooses. A request with neither
//!      is not from a browser page (curl, the services' own clients) and
//!      carries nothing a forger could borrow; it passes. This is the check
//!      Go's `http.CrossOriginProtection` makes, without tokens to manage.
//!
//! The JSON API adds a third rule of its own: a body, even an empty one,
//! must be declared `application/json`, a type no HTML form can send
//! without a CORS preflight, which this service never grants.
//!
//! A refusal is a page when the request looks like a browser's (it accepts
//! `text/html`, or carries what an HTML form sends), else problem+json.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::PageError;
use crate::problem::Problem;

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

/// The `Host` values (`host` or `host:port`) a service answers to, compared
/// without regard to case; and so the origins (`http://` or `https://` and
/// one of them) whose pages may send it unsafe requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Arc<[String]>);

impl AllowedHosts {
    /// Exactly `hosts`, each as [`parse_host`] reads it.
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        AllowedHosts(hosts.into_iter().collect())
    }

    /// The names a service listening on `addr` is reached under on this
    /// machine: `localhost`, `127.0.0.1` and `[::1]` at its port, and the
    /// address itself when it is a specific one (not `0.0.0.0` or `::`).
    /// The port is the one really bound, so a test server on port 0 is
    /// reached under its real port.
    pub fn local(addr: SocketAddr) -> Self {
        let port = addr.port();
        let mut hosts = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        let own = addr.to_string();
        if !addr.ip().is_unspecified() && !hosts.contains(&own) {
            hosts.push(own);
        }
        Self::new(hosts)
    }

    /// The hosts, as given.
    pub fn hosts(&self) -> &[String] {
        &self.0
    }

    /// Whether `host` (a `Host` header or a request target's authority) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }

    /// Whether `origin` (an `Origin` header) is an allowed host's, over
    /// `http` or `https`. `null` (a sandboxed or `file:` page) never is.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        host.is_some_and(|host| self.allows(host))
    }

    /// Why `headers` (with `authority`, the request target's, if it had one)
    /// may not be served, or `None` if they may.
    fn refusal(
        &self,
        method: &Method,
        authority: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Refusal> {
        // A request target in absolute form names the host; `Host` then
        // must be ignored (RFC 9112, section 3.2.2).
        let host = match authority {
            Some(authority) => authority,
            None => match headers.get(header::HOST).map(HeaderValue::to_str) {
                Some(Ok(host)) => host,
                Some(Err(_)) => return Some(Refusal::ForeignHost("(not text)".into())),
                None => return Some(Refusal::NoHost),
            },
        };
        if !self.allows(host) {
            return Some(Refusal::ForeignHost(shown(host.as_bytes(), 80)));
        }
        if method.is_safe() {
            return None;
        }
        self.cross_site(headers).map(Refusal::CrossSite)
    }

    /// Why `headers` show a request sent from another site's page, or
    /// `None` if they do not.
    pub fn cross_site(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(site) = headers.get("sec-fetch-site") {
            return match site.as_bytes() {
                b"same-origin" | b"none" => None,
                other => Some(format!("Sec-Fetch-Site: {}", shown(other, 40))),
            };
        }
        let origin = headers.get(header::ORIGIN)?;
        match origin.to_str() {
            Ok(origin) if self.allows_origin(origin) => None,
            _ => Some(format!("Origin: {}", shown(origin.as_bytes(), 80))),
        }
    }
}

/// Parses one allowed host: `host` or `host:port`, where host is a name,
/// an IPv4 address or a bracketed IPv6 address (no scheme, path or user).
pub fn parse_host(value: &str) -> Result<String, String> {
    let value = value.trim();
    let refused = || {
        format!(
            "{value:?} is not a host such as localhost:8081, shop.example or [::1]:8081 \
             (no scheme, no path)"
        )
    };
    let authority: Authority = value.parse().map_err(|_| refused())?;
    // What follows the host must be `:port`, a port being a number.
    let port = &value[authority.host().len().min(value.len())..];
    let bad_port = !port.is_empty()
        && port
            .strip_prefix(':')
            .and_then(|p| p.parse::<u16>().ok())
            .is_none();
    if value.is_empty() || value.contains('@') || authority.host().is_empty() || bad_port {
        return Err(refused());
    }
    Ok(authority.as_str().to_ascii_lowercase())
}

/// Parses a comma-separated list of allowed hosts ([`parse_host`] each).
pub fn parse_hosts(value: &str) -> Result<AllowedHosts, String> {
    let hosts = value
        .split(',')
        .map(parse_host)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AllowedHosts::new(hosts))
}

/// Why [`guard`] refused a request.
enum Refusal {
    /// No `Host`: HTTP/1.1 requires one.
    NoHost,
    /// A `Host` this service is not published under.
    ForeignHost(String),
    /// An unsafe request from another site's page, and why it is taken to be.
    CrossSite(String),
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NoHost => StatusCode::BAD_REQUEST,
            Refusal::ForeignHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::CrossSite(_) => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::NoHost => "the request has no Host header; HTTP/1.1 requires one".to_owned(),
            Refusal::ForeignHost(host) => format!(
                "this service is not served under the name {host}, so it did nothing: \
                 use the address it is published at (the ALLOWED_HOSTS setting lists them)"
            ),
            Refusal::CrossSite(why) => format!(
                "this request was sent from another site's page ({why}); nothing was changed. \
                 Open the form on this service's own page and send it from there."
            ),
        }
    }

    /// The refusal as a page for a browser's request, else as problem+json.
    fn into_response(self, headers: &HeaderMap) -> Response {
        let (status, message) = (self.status(), self.message());
        if from_a_browser(headers) {
            PageError::new(status, message).into_response()
        } else {
            Problem::new(status, message).into_response()
        }
    }
}

/// Whether a request looks like a browser's page load or form post: it
/// accepts HTML, or its body has one of the media types an HTML form sends.
fn from_a_browser(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let content_type = text(header::CONTENT_TYPE);
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    text(header::ACCEPT).contains("text/html")
        || matches!(
            essence,
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        )
}

/// At most `max` characters of a header value, for a message.
fn shown(value: &[u8], max: usize) -> String {
    String::from_utf8_lossy(value).chars().take(max).collect()
}

/// Middleware: the `Host` and same-origin checks of the module
/// documentation, on every request, before any route runs.
pub async fn guard(State(hosts): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let authority = request.uri().authority().map(Authority::as_str);
    match hosts.refusal(request.method(), authority, request.headers()) {
        None => next.run(request).await,
        Some(refusal) => {
            tracing::warn!(
                status = refusal.status().as_u16(),
                reason = %refusal.message(),
                "request refused at the boundary"
            );
            refusal.into_response(request.headers())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn local() -> AllowedHosts {
        AllowedHosts::local("127.0.0.1:8081".parse().unwrap())
    }

    #[test]
    fn only_pages_of_an_allowed_origin_may_send_unsafe_requests() {
        let hosts = local();
        assert_eq!(hosts.cross_site(&headers(&[])), None, "curl");
        assert_eq!(
            hosts.cross_site(&headers(&[("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(
            hosts.cross_site(&headers(&[("sec-fetch-site", "none")])),
            None
        );
        for site in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
        ] {
            assert!(hosts.cross_site(&site).is_some(), "{site:?}");
        }
        for origin in [
            "http://127.0.0.1:8081",
            "http://LOCALHOST:8081",
            "https://[::1]:8081",
        ] {
            let mut map = HeaderMap::new();
            map.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert_eq!(hosts.cross_site(&map), None, "{origin}");
        }
        for origin in [
            "http://127.0.0.1:9999",
            "null",
            "http://evil.example",
            "ftp://127.0.0.1:8081",
            "http://127.0.0.1:8081.evil.example",
        ] {
            let mut map = headers(&[("host", "127.0.0.1:8081")]);
            map.insert("origin", HeaderValue::from_str(origin).unwrap());
            assert!(hosts.cross_site(&map).is_some(), "{origin}");
        }
        // DNS rebinding: Origin equals Host, and both are the attacker's.
        let rebound = headers(&[
            ("origin", "http://evil.example:8081"),
            ("host", "evil.example:8081"),
        ]);
        assert!(hosts.cross_site(&rebound).is_some());
        // Sec-Fetch-Site decides when both are there.
        let forged = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8081"),
        ]);
        assert!(hosts.cross_site(&forged).is_some());
    }

    #[test]
    fn the_local_hosts_are_at_the_bound_port_and_a_specific_address_is_added() {
        assert_eq!(
            local().hosts(),
            ["localhost:8081", "127.0.0.1:8081", "[::1]:8081"]
        );
        let any = AllowedHosts::local("0.0.0.0:8082".parse().unwrap());
        assert_eq!(any.hosts().len(), 3, "0.0.0.0 is no name to be reached by");
        let lan = AllowedHosts::local("192.0.2.7:8083".parse().unwrap());
        assert!(lan.allows("192.0.2.7:8083"));
        assert!(!lan.allows("192.0.2.7:8084"));
        assert!(
            !local().allows("localhost"),
            "no port, so port 80: another origin"
        );
    }

    #[test]
    fn allowed_hosts_are_names_with_an_optional_port() {
        let hosts =
            parse_hosts("invoicing-service:8082, LOCALHOST:8082,shop.example,[::1]:8082").unwrap();
        assert_eq!(
            hosts.hosts(),
            [
                "invoicing-service:8082",
                "localhost:8082",
                "shop.example",
                "[::1]:8082"
            ]
        );
        for bad in [
            "",
            "a,,b",
            "http://shop.example",
            "shop.example/x",
            "user@shop.example",
            "shop.example:port",
            ":8081",
        ] {
            assert!(parse_hosts(bad).is_err(), "{bad:?}");
        }
    }

    async fn answer(request: axum::http::Request<Body>) -> (StatusCode, String) {
        let app = Router::new()
            .route(
                "/health/live",
                get(|| async { "live" }).post(|| async { "posted" }),
            )
            .layer(axum::middleware::from_fn_with_state(local(), guard));
        let response = app.oneshot(request).await.unwrap();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), content_type)
    }

    fn request(
        method: &str,
        uri: &str,
        pairs: &[(&'static str, &'static str)],
    ) -> axum::http::Request<Body> {
        let mut request = axum::http::Request::builder().method(method).uri(uri);
        for (name, value) in pairs {
            request = request.header(*name, *value);
        }
        request.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_foreign_host_is_misdirected_and_a_cross_site_post_forbidden() {
        let ok = |(status, _): (StatusCode, String)| status;
        let host = ("host", "127.0.0.1:8081");
        assert_eq!(
            ok(answer(request("GET", "/health/live", &[host])).await),
            StatusCode::OK
        );
        assert_eq!(
            ok(answer(request(
                "GET",
                "/health/live",
                &[("host", "evil.example:8081")]
            ))
            .await),
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(
            ok(answer(request("GET", "/health/live", &[])).await),
            StatusCode::BAD_REQUEST,
            "no Host"
        );
        // The request target's authority decides over Host.
        assert_eq!(
            ok(answer(request(
                "GET",
                "http://evil.example:8081/health/live",
                &[host]
            ))
            .await),
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(
            ok(answer(request("POST", "/health/live", &[host])).await),
            StatusCode::OK
        );
        let (status, content_type) = answer(request(
            "POST",
            "/health/live",
            &[
                host,
                ("sec-fetch-site", "cross-site"),
                ("content-type", "text/plain"),
            ],
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            content_type.starts_with("text/html"),
            "a form's post gets a page"
        );
        let (status, content_type) = answer(request(
            "POST",
            "/health/live",
            &[host, ("origin", "http://evil.example")],
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(content_type, crate::problem::CONTENT_TYPE);
        // A safe request from another site reads nothing it could not anyway.
        assert_eq!(
            ok(answer(request(
                "GET",
                "/health/live",
                &[host, ("sec-fetch-site", "cross-site")]
            ))
            .await),
            StatusCode::OK
        );
    }
}
