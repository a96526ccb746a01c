//! The stylesheet and the script every page loads, embedded in the binary
//! (`platform/assets/`) and served by each service at `/assets/...`.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Where the stylesheet is served.
pub const STYLESHEET: &str = "/assets/style.css";
/// Where the script is served.
pub const SCRIPT: &str = "/assets/live.js";

const STYLE_CSS: &[u8] = include_bytes!("../../assets/style.css");
const LIVE_JS: &[u8] = include_bytes!("../../assets/live.js");

/// The asset routes; merge them into a service's pages.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            STYLESHEET,
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            SCRIPT,
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
}

fn asset(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
