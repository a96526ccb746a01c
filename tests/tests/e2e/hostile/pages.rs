//! Hostile page requests (the HTML form) get 4xx pages and write nothing.

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use crate::order_api_client::OrdersApi;

// ---- the pages' forms and addresses ------------------------------------------

/// A valid new-order form, URL-encoded, with its key.
const FORM: &str = "idempotency_key=k-hostile&customer.name=Ada+Lovelace\
    &customer.email=ada%40example.com&billing_address.street=1+Analytical+Way\
    &billing_address.zip=10115&billing_address.city=Berlin&billing_address.country=DE\
    &shipping_same_as_billing=on&currency=EUR&lines%5B0%5D.sku=IPOD-NANO\
    &lines%5B0%5D.name=iPod+nano&lines%5B0%5D.quantity=2&lines%5B0%5D.unit_price=149";

/// One bad request to a page and the status it must get.
struct BadPage {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: StatusCode,
}

impl BadPage {
    fn form(what: &'static str, body: impl Into<Vec<u8>>, status: StatusCode) -> Self {
        BadPage {
            what,
            method: Method::POST,
            path: "/new".into(),
            headers: vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: Some(body.into()),
            status,
        }
    }

    fn get(what: &'static str, path: String, status: StatusCode) -> Self {
        BadPage {
            what,
            method: Method::GET,
            path,
            headers: Vec::new(),
            body: None,
            status,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    fn at(self, path: String) -> Self {
        BadPage { path, ..self }
    }
}

/// The corpus of the pages: every request must get its status as an HTML
/// page that says what is wrong; `port` is the service's.
fn page_corpus(port: u16) -> Vec<BadPage> {
    use StatusCode as S;
    let unknown = Uuid::now_v7();
    let cancel = format!("/order/{unknown}/cancel");
    let big_name = format!("{FORM}&customer.name={}", "x".repeat(200 * 1024));
    vec![
        // ---- the new-order form -------------------------------------------
        BadPage::form("JSON instead of a form", FORM, S::UNSUPPORTED_MEDIA_TYPE)
            .header("content-type", "application/json"),
        BadPage::form("no content type", FORM, S::UNSUPPORTED_MEDIA_TYPE)
            .header("content-type", "text/plain"),
        BadPage::form("latin-1 form", FORM, S::UNSUPPORTED_MEDIA_TYPE).header(
            "content-type",
            "application/x-www-form-urlencoded; charset=iso-8859-1",
        ),
        BadPage::form("larger than the form limit", big_name, S::PAYLOAD_TOO_LARGE),
        BadPage::form(
            "no idempotency key",
            FORM.replace("idempotency_key=k-hostile&", ""),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a key with a space",
            FORM.replace("k-hostile", "k+hostile"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a key of 256 characters",
            FORM.replace("k-hostile", &"k".repeat(256)),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "an unknown field",
            format!("{FORM}&total_cents=1"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a field twice",
            format!("{FORM}&currency=USD"),
            S::BAD_REQUEST,
        ),
        BadPage::form("not UTF-8", format!("{FORM}&x=%FF"), S::BAD_REQUEST),
        BadPage::form(
            "a raw byte that is not UTF-8",
            [FORM.as_bytes(), b"\xff"].concat(),
            S::BAD_REQUEST,
        ),
        BadPage::form("a broken escape", format!("{FORM}%4"), S::BAD_REQUEST),
        BadPage::form(
            "line 100",
            format!("{FORM}&lines%5B100%5D.sku=X"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a line index beyond u64",
            format!("{FORM}&lines%5B99999999999999999999%5D.sku=X"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a negative line",
            format!("{FORM}&lines%5B-1%5D.sku=X"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "a made-up button",
            format!("{FORM}&action=explode"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "removing line 100",
            format!("{FORM}&action=remove-line-100"),
            S::BAD_REQUEST,
        ),
        BadPage::form(
            "NUL in a name",
            FORM.replace("Ada+Lovelace", "Ada%00Lovelace"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "ANSI escape in a city",
            FORM.replace("Berlin", "Ber%1B%5B2Jlin"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "a quantity beyond i64",
            FORM.replace("quantity=2", "quantity=99999999999999999999"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "a price with more decimals than its currency",
            FORM.replace("unit_price=149", "unit_price=149.001"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "a price in yen with decimals",
            FORM.replace("currency=EUR", "currency=JPY")
                .replace("unit_price=149", "unit_price=149.5"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "a price beyond i64",
            FORM.replace("unit_price=149", "unit_price=99999999999999999999"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "a price with a decimal comma",
            FORM.replace("unit_price=149", "unit_price=149%2C00"),
            S::UNPROCESSABLE_ENTITY,
        ),
        BadPage::form(
            "the API's price field instead of the form's",
            format!("{FORM}&lines%5B0%5D.unit_price_cents=14900"),
            S::BAD_REQUEST,
        ),
        BadPage::form("an empty form", "", S::BAD_REQUEST),
        BadPage::form("a valid form from another site", FORM, S::FORBIDDEN)
            .header("sec-fetch-site", "cross-site"),
        BadPage::form("a valid form from a sibling site", FORM, S::FORBIDDEN)
            .header("sec-fetch-site", "same-site"),
        BadPage::form("a valid form with a foreign Origin", FORM, S::FORBIDDEN)
            .header("origin", "http://evil.example"),
        BadPage::form("a valid form with Origin null", FORM, S::FORBIDDEN).header("origin", "null"),
        // DNS rebinding: Origin equals Host, and both name the attacker's site.
        BadPage::form(
            "a valid form from a rebound name",
            FORM,
            S::MISDIRECTED_REQUEST,
        )
        .header("host", &format!("evil.example:{port}"))
        .header("origin", &format!("http://evil.example:{port}")),
        BadPage::get(
            "the order list under a rebound name",
            "/".into(),
            S::MISDIRECTED_REQUEST,
        )
        .header("host", &format!("evil.example:{port}"))
        .header("accept", "text/html"),
        // ---- the cancel button ------------------------------------------------
        BadPage::form("cancel an unknown order", "reason=why", S::NOT_FOUND).at(cancel.clone()),
        BadPage::form("cancel a bad id", "reason=why", S::BAD_REQUEST)
            .at("/order/not-a-uuid/cancel".into()),
        BadPage::form(
            "cancel with an unknown field",
            "why=because",
            S::BAD_REQUEST,
        )
        .at(cancel.clone()),
        BadPage::form("cancel with NUL", "reason=a%00b", S::NOT_FOUND).at(cancel.clone()),
        BadPage::form("cancel from another site", "reason=x", S::FORBIDDEN)
            .at(cancel)
            .header("sec-fetch-site", "cross-site"),
        // ---- addresses and queries -----------------------------------------
        BadPage::get(
            "an order page of a bad id",
            "/order/42".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get(
            "an unknown order",
            format!("/order/{unknown}"),
            S::NOT_FOUND,
        ),
        BadPage::get(
            "a journey of a bad id",
            "/order/%00/journey".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get(
            "a journey of an unknown order",
            format!("/order/{unknown}/journey"),
            S::NOT_FOUND,
        ),
        BadPage::get(
            "a list cursor that is no cursor",
            "/?cursor=x".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get("a list limit of 0", "/?limit=0".into(), S::BAD_REQUEST),
        BadPage::get(
            "a list limit twice",
            "/?limit=1&limit=2".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get(
            "a form key with a space",
            "/new?key=a%20b".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get(
            "a form key not UTF-8",
            "/new?key=%FF".into(),
            S::BAD_REQUEST,
        ),
        BadPage::get("an empty form key", "/new?key=".into(), S::BAD_REQUEST),
    ]
}

#[tokio::test]
async fn hostile_page_requests_get_4xx_pages_and_write_nothing() {
    let api = OrdersApi::start().await;
    let cases = page_corpus(api.addr.port());
    let total = cases.len();
    let mut failures = Vec::new();
    for case in cases {
        let what = case.what;
        let before = api.counts().await;
        let mut request = api.client.request(case.method, api.url(&case.path));
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = case.body {
            request = request.body(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                failures.push(format!("{what}: no answer: {e}"));
                continue;
            }
        };
        let status = response.status();
        let html = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let body = response.text().await.unwrap_or_default();
        let shown: String = body.chars().take(200).collect();
        if status != case.status {
            failures.push(format!(
                "{what}: {status}, expected {}: {shown}",
                case.status
            ));
        } else if !html || !(body.contains("error-message") || body.contains("field-error")) {
            failures.push(format!("{what}: not an HTML page that says why: {shown}"));
        }
        let after = api.counts().await;
        if after != before {
            failures.push(format!("{what} wrote rows: {before:?} -> {after:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} hostile page requests were not refused as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(api.counts().await, [0, 0, 0, 0]);
    api.stop().await;
}
