//! Hostile input: requests built to break a parser, a number type, a header
//! check or a router, and clients that connect and then stall.
//!
//! The promise for every bad request is the same: a 4xx
//! `application/problem+json` answer with a detail a person can act on, never
//! a 5xx, never a crash, and not a row written. The promise for slow and
//! abandoned clients is that they cost the server a bounded time: a request
//! that stalls mid-body is answered 408 after `http_limits.request_timeout`,
//! a connection that never completes its request head is closed after
//! [`platform_web::http::HEADER_READ_TIMEOUT`], and neither keeps anyone else
//! from being served meanwhile.
//!
//! Malformed HTTP that the server's HTTP/1 parser itself refuses (a broken
//! request line, a control byte in a header, oversized headers) is answered
//! by hyper before any route runs, with a bare status and no problem body;
//! the corpus sends only what a conforming HTTP client can send.

use std::io::ErrorKind;
use std::time::Duration;

use platform_web::http::HEADER_READ_TIMEOUT;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use uuid::Uuid;

use crate::order_api_client::{Bad, OrdersApi, assert_all_refused, order, with};

/// Deeper than any JSON parser should follow by recursion.
const DEEP: usize = 10_000;

/// `text` with the first `from` replaced by `to`, as bytes; `from` must occur.
fn replacing(text: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(text.contains(from), "{from} is not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// `POST /orders/{unknown}/cancel` with `body` declared JSON.
fn cancel(what: &'static str, unknown: Uuid, body: impl Into<Vec<u8>>, status: StatusCode) -> Bad {
    Bad {
        path: format!("/orders/{unknown}/cancel"),
        ..Bad::raw(what, body, status)
    }
}

/// The corpus: every request here must be refused with the status given;
/// `port` is the service's, for the requests that name a foreign host at it.
fn corpus(port: u16) -> Vec<Bad> {
    use StatusCode as S;
    let valid = order();
    // Compact JSON: `"quantity":2`, no spaces, so raw edits below can find their place.
    let text = valid.to_string();
    let unknown = Uuid::now_v7();
    let line = |i: usize, quantity: Value, price: Value| json!({ "sku": format!("S{i}"), "name": "n", "quantity": quantity, "unit_price_cents": price });
    let lines = |quantity: Value, price: Value| -> Value {
        (0..100)
            .map(|i| line(i, quantity.clone(), price.clone()))
            .collect()
    };
    let nested_arrays = format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(DEEP), "}".repeat(DEEP));
    let ten_megabytes = format!(
        r#"{{"customer":{{"name":"{}"}}}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let with_key = |what: &'static str, key: &[u8]| Bad {
        headers: vec![("idempotency-key", key.to_vec())],
        ..Bad::post(what, valid.clone(), S::BAD_REQUEST)
    };
    let with_content_type = |what: &'static str, content_type: &[u8]| Bad {
        content_type: None,
        headers: vec![("content-type", content_type.to_vec())],
        ..Bad::post(what, valid.clone(), S::UNSUPPORTED_MEDIA_TYPE)
    };
    let get = |what: &'static str, path: &str, status: StatusCode| {
        Bad::request(what, Method::GET, path.to_owned(), status)
    };

    vec![
        // ---- unreadable JSON: 400 ------------------------------------------
        Bad::raw("malformed JSON", "{\"customer\": }", S::BAD_REQUEST),
        Bad::raw(
            "truncated JSON",
            &text.as_bytes()[..text.len() / 2],
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "truncated inside an escape",
            r#"{"customer":{"name":"Ada\u00"#,
            S::BAD_REQUEST,
        ),
        Bad::raw("a lone brace", "{", S::BAD_REQUEST),
        Bad::raw("empty body", "", S::BAD_REQUEST),
        Bad::raw("whitespace only", " \r\n\t ", S::BAD_REQUEST),
        Bad::raw("trailing garbage", format!("{text} x"), S::BAD_REQUEST),
        Bad::raw("two objects", format!("{text}{text}"), S::BAD_REQUEST),
        Bad::raw("single quotes", "{'currency': 'EUR'}", S::BAD_REQUEST),
        Bad::raw(
            "trailing comma",
            replacing(&text, r#""currency":"EUR""#, r#""currency":"EUR","#),
            S::BAD_REQUEST,
        ),
        Bad::raw("a comment", format!("// order\n{text}"), S::BAD_REQUEST),
        Bad::raw(
            "NaN",
            replacing(&text, r#""quantity":2"#, r#""quantity":NaN"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "Infinity",
            replacing(&text, r#""quantity":2"#, r#""quantity":Infinity"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "leading zeros",
            replacing(&text, r#""quantity":2"#, r#""quantity":002"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "hex number",
            replacing(&text, r#""quantity":2"#, r#""quantity":0x2"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "explicit plus sign",
            replacing(&text, r#""quantity":2"#, r#""quantity":+2"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-8 byte order mark",
            [b"\xef\xbb\xbf".as_slice(), text.as_bytes()].concat(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-16 body",
            [0xff_u8, 0xfe]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        // ---- not UTF-8, control characters, NUL -----------------------------
        Bad::raw(
            "not UTF-8",
            b"{\"currency\": \"\xff\"}".to_vec(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "not UTF-8 in a key",
            b"{\"cur\xc3\x28ency\": \"EUR\"}".to_vec(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "overlong UTF-8 encoding of '/'",
            replacing(&text, "Ada Lovelace", "Ada \u{0}Lovelace")
                .into_iter()
                .flat_map(|b| if b == 0 { vec![0xc0, 0xaf] } else { vec![b] })
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "UTF-8 encoded surrogate",
            replacing(&text, "Ada Lovelace", "Ada \u{0}Lovelace")
                .into_iter()
                .flat_map(|b| {
                    if b == 0 {
                        vec![0xed, 0xa0, 0x80]
                    } else {
                        vec![b]
                    }
                })
                .collect::<Vec<u8>>(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "lone surrogate escape",
            replacing(&text, "Ada Lovelace", r"Ada \ud800 Lovelace"),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "raw NUL byte in a string",
            replacing(&text, "Ada Lovelace", "Ada\u{0}Lovelace"),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "raw newline in a string",
            replacing(&text, "Ada Lovelace", "Ada\nLovelace"),
            S::BAD_REQUEST,
        ),
        Bad::invalid(
            "NUL in a name",
            with(valid.clone(), "/customer/name", json!("Ada\u{0}")),
            "customer.name",
        ),
        Bad::invalid(
            "NUL in an e-mail",
            with(
                valid.clone(),
                "/customer/email",
                json!("ada\u{0}@example.com"),
            ),
            "customer.email",
        ),
        Bad::invalid(
            "BEL in a street",
            with(
                valid.clone(),
                "/billing_address/street",
                json!("1 Analytical\u{7} Way"),
            ),
            "billing_address.street",
        ),
        Bad::invalid(
            "ANSI escape in a city",
            with(
                valid.clone(),
                "/shipping_address/city",
                json!("Mun\u{1b}[2Jich"),
            ),
            "shipping_address.city",
        ),
        Bad::invalid(
            "DEL in a product name",
            with(valid.clone(), "/lines/0/name", json!("iPod\u{7f}nano")),
            "lines[0].name",
        ),
        Bad::invalid(
            "C1 control (NEL) in a zip",
            with(valid.clone(), "/billing_address/zip", json!("101\u{85}15")),
            "billing_address.zip",
        ),
        Bad::invalid(
            "NUL in a sku",
            with(valid.clone(), "/lines/1/sku", json!("CASE\u{0}")),
            "lines[1].sku",
        ),
        Bad::invalid(
            "NUL in a currency",
            with(valid.clone(), "/currency", json!("EU\u{0}")),
            "currency",
        ),
        Bad {
            field: Some("reason"),
            ..cancel(
                "NUL in a cancel reason",
                unknown,
                json!({ "reason": "changed\u{0}my mind" }).to_string(),
                S::UNPROCESSABLE_ENTITY,
            )
        },
        Bad::raw(
            "NUL in a field name",
            replacing(&text, r#""currency""#, r#""currency\u0000""#),
            S::UNPROCESSABLE_ENTITY,
        ),
        // ---- wrong types ----------------------------------------------------
        Bad::post(
            "array instead of an object",
            json!([valid.clone()]),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "customer as an array",
            with(
                valid.clone(),
                "/customer",
                json!(["Ada", "ada@example.com"]),
            ),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "quantity as a string",
            with(valid.clone(), "/lines/0/quantity", json!("2")),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "lines as an object",
            with(valid.clone(), "/lines", json!({})),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "currency as a number",
            with(valid.clone(), "/currency", json!(978)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "quantity as a boolean",
            with(valid.clone(), "/lines/0/quantity", json!(true)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "price as an array",
            with(valid.clone(), "/lines/0/unit_price_cents", json!([14900])),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "name as a number",
            with(valid.clone(), "/customer/name", json!(42)),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "e-mail as an object",
            with(valid.clone(), "/customer/email", json!({ "@": "x" })),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "a null line",
            with(valid.clone(), "/lines", json!([null])),
            S::BAD_REQUEST,
        ),
        Bad::post(
            "a number as a line",
            with(valid.clone(), "/lines", json!([1])),
            S::BAD_REQUEST,
        ),
        Bad::raw("body null", "null", S::BAD_REQUEST),
        Bad::raw("body an empty array", "[]", S::BAD_REQUEST),
        Bad::raw("body a string", r#""an order, please""#, S::BAD_REQUEST),
        Bad::raw("body a number", "42", S::BAD_REQUEST),
        Bad::raw("body true", "true", S::BAD_REQUEST),
        // ---- huge and odd numbers -------------------------------------------
        Bad::raw(
            "quantity 1e400",
            replacing(&text, r#""quantity":2"#, r#""quantity":1e400"#),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "price -1e400",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                r#""unit_price_cents":-1e400"#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "a number of 10 000 digits",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                &format!(r#""unit_price_cents":{}"#, "9".repeat(10_000)),
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "quantity 2^64",
            replacing(
                &text,
                r#""quantity":2"#,
                r#""quantity":18446744073709551616"#,
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        // `-0` is 0, a valid price (JSON Schema's `integer` says so too); `-1.0` is -1.
        Bad::raw(
            "price -1.0",
            replacing(
                &text,
                r#""unit_price_cents":14900"#,
                r#""unit_price_cents":-1.0"#,
            ),
            S::UNPROCESSABLE_ENTITY,
        ),
        Bad::invalid(
            "fractional quantity",
            with(valid.clone(), "/lines/0/quantity", json!(1.5)),
            "lines[0].quantity",
        ),
        // `2e0` is 2 (JSON Schema's `integer` counts it so); `25e-1` is 2.5.
        Bad::raw(
            "fractional quantity in exponent form",
            replacing(&text, r#""quantity":2"#, r#""quantity":25e-1"#),
            S::UNPROCESSABLE_ENTITY,
        ),
        Bad::invalid(
            "price below i64",
            with(
                valid.clone(),
                "/lines/1/unit_price_cents",
                json!(-9_223_372_036_854_775_809.0),
            ),
            "lines[1].unit_price_cents",
        ),
        Bad::invalid(
            "overflowing amounts",
            with(
                with(valid.clone(), "/lines/0/unit_price_cents", json!(i64::MAX)),
                "/lines/0/quantity",
                json!(u64::MAX),
            ),
            "lines[0].unit_price_cents",
        ),
        // The price and quantity ranges make every product and every total of
        // 100 lines fit an i64; amounts that would overflow are out of range.
        Bad::invalid(
            "quantity × price beyond i64",
            with(
                with(
                    valid.clone(),
                    "/lines/0/unit_price_cents",
                    json!(i64::MAX / 5_000),
                ),
                "/lines/0/quantity",
                json!(10_000),
            ),
            "lines[0].unit_price_cents",
        ),
        Bad::invalid(
            "total of 100 lines beyond i64",
            with(
                valid.clone(),
                "/lines",
                lines(json!(1), json!(i64::MAX / 50)),
            ),
            "lines[99].unit_price_cents",
        ),
        Bad::invalid(
            "100 lines at i64::MIN",
            with(valid.clone(), "/lines", lines(json!(1), json!(i64::MIN))),
            "lines[0].unit_price_cents",
        ),
        // ---- deep nesting: 400, not a stack overflow -------------------------
        Bad::raw("10 000 opening brackets", "[".repeat(DEEP), S::BAD_REQUEST),
        Bad::raw(
            "10 000 nested arrays",
            nested_arrays.clone(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "10 000 nested objects",
            nested_objects.clone(),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "10 000 nested arrays as a name",
            replacing(&text, r#""Ada Lovelace""#, &nested_arrays),
            S::BAD_REQUEST,
        ),
        cancel(
            "10 000 nested objects as a cancel body",
            unknown,
            nested_objects,
            S::BAD_REQUEST,
        ),
        // ---- duplicate keys: ambiguous, so refused ----------------------------
        Bad::raw(
            "duplicate currency",
            replacing(
                &text,
                r#""currency":"EUR""#,
                r#""currency":"EUR","currency":"USD""#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "duplicate currency, once spelled with an escape",
            replacing(
                &text,
                r#""currency":"EUR""#,
                r#""currency":"EUR","\u0063urrency":"USD""#,
            ),
            S::BAD_REQUEST,
        ),
        Bad::raw(
            "duplicate quantity",
            replacing(&text, r#""quantity":2"#, r#""quantity":2,"quantity":3"#),
            S::BAD_REQUEST,
        ),
        // ---- size -----------------------------------------------------------
        Bad::post(
            "body over 64 KiB",
            with(
                valid.clone(),
                "/customer/name",
                json!("x".repeat(70 * 1024)),
            ),
            S::PAYLOAD_TOO_LARGE,
        ),
        Bad::raw("10 MB body", ten_megabytes, S::PAYLOAD_TOO_LARGE),
        // ---- media type -----------------------------------------------------
        Bad {
            content_type: Some("text/plain"),
            ..Bad::post("text/plain body", valid.clone(), S::UNSUPPORTED_MEDIA_TYPE)
        },
        Bad {
            content_type: None,
            ..Bad::post("no content type", valid.clone(), S::UNSUPPORTED_MEDIA_TYPE)
        },
        Bad {
            content_type: Some("application/json; charset=iso-8859-1"),
            ..Bad::post("latin-1 JSON", valid.clone(), S::UNSUPPORTED_MEDIA_TYPE)
        },
        with_content_type("XML", b"application/xml"),
        with_content_type("a form", b"application/x-www-form-urlencoded"),
        with_content_type("multipart", b"multipart/form-data; boundary=x"),
        with_content_type("UTF-16 JSON", b"application/json; charset=utf-16"),
        with_content_type("JSON Patch", b"application/json-patch+json"),
        with_content_type("empty content type", b""),
        with_content_type("non-ASCII content type", "application/jsön".as_bytes()),
        cancel(
            "cancel with a text body",
            unknown,
            "changed my mind",
            S::UNSUPPORTED_MEDIA_TYPE,
        )
        .with_content_type("text/plain"),
        // ---- Idempotency-Key ------------------------------------------------
        with_key("empty Idempotency-Key", b""),
        with_key("Idempotency-Key too long", &[b'k'; 256]),
        with_key("Idempotency-Key with a space", b"two words"),
        with_key("non-ASCII Idempotency-Key", "schlüssel".as_bytes()),
        with_key("Idempotency-Key with a tab", b"key\tone"),
        Bad {
            headers: vec![
                ("idempotency-key", b"key-1".to_vec()),
                ("idempotency-key", b"key-2".to_vec()),
            ],
            ..Bad::post("two Idempotency-Keys", valid.clone(), S::BAD_REQUEST)
        },
        // ---- paths ----------------------------------------------------------
        get("order id not a UUID", "/orders/42", S::BAD_REQUEST),
        get(
            "UUID with trailing garbage",
            &format!("/orders/{unknown}x"),
            S::BAD_REQUEST,
        ),
        get("percent-encoded NUL as id", "/orders/%00", S::BAD_REQUEST),
        get("invalid UTF-8 as id", "/orders/%FF%FE", S::BAD_REQUEST),
        get("SQL as id", "/orders/1'%20OR%20'1'%3D'1", S::BAD_REQUEST),
        get(
            "path traversal as id",
            "/orders/..%2F..%2Fetc%2Fpasswd",
            S::BAD_REQUEST,
        ),
        get(
            "4 000 characters as id",
            &format!("/orders/{}", "9".repeat(4_000)),
            S::BAD_REQUEST,
        ),
        get("unknown order", &format!("/orders/{unknown}"), S::NOT_FOUND),
        Bad::request(
            "cancel unknown order",
            Method::POST,
            format!("/orders/{unknown}/cancel"),
            S::NOT_FOUND,
        )
        .with_content_type("application/json"),
        Bad::request(
            "cancel id not a UUID",
            Method::POST,
            "/orders/nope/cancel".into(),
            S::BAD_REQUEST,
        )
        .with_content_type("application/json"),
        // ---- what another site's page can send: no JSON, or a foreign origin --
        Bad::request(
            "empty cancel without a content type",
            Method::POST,
            format!("/orders/{unknown}/cancel"),
            S::UNSUPPORTED_MEDIA_TYPE,
        ),
        Bad::request(
            "empty cancel as text/plain (an HTML form's enctype)",
            Method::POST,
            format!("/orders/{unknown}/cancel"),
            S::UNSUPPORTED_MEDIA_TYPE,
        )
        .with_content_type("text/plain"),
        Bad::request(
            "empty cancel form-encoded",
            Method::POST,
            format!("/orders/{unknown}/cancel"),
            S::UNSUPPORTED_MEDIA_TYPE,
        )
        .with_content_type("application/x-www-form-urlencoded"),
        Bad::request(
            "empty cancel as multipart/form-data",
            Method::POST,
            format!("/orders/{unknown}/cancel"),
            S::UNSUPPORTED_MEDIA_TYPE,
        )
        .with_content_type("multipart/form-data; boundary=x"),
        cancel(
            "a cancel reason form-encoded",
            unknown,
            "reason=x",
            S::UNSUPPORTED_MEDIA_TYPE,
        )
        .with_content_type("application/x-www-form-urlencoded"),
        Bad {
            headers: vec![("sec-fetch-site", b"cross-site".to_vec())],
            ..cancel(
                "a JSON cancel from another site",
                unknown,
                "{}",
                S::FORBIDDEN,
            )
        },
        Bad {
            headers: vec![("sec-fetch-site", b"same-site".to_vec())],
            ..Bad::post("an order from a sibling site", valid.clone(), S::FORBIDDEN)
        },
        Bad {
            headers: vec![("origin", b"http://evil.example".to_vec())],
            ..cancel(
                "a JSON cancel with a foreign Origin",
                unknown,
                "{}",
                S::FORBIDDEN,
            )
        },
        Bad {
            headers: vec![("origin", b"null".to_vec())],
            ..Bad::post("an order with Origin null", valid.clone(), S::FORBIDDEN)
        },
        // ---- DNS rebinding: a foreign name for this very address ---------------
        Bad {
            headers: vec![("host", format!("evil.example:{port}").into_bytes())],
            ..get(
                "the order list under a foreign Host",
                "/orders",
                S::MISDIRECTED_REQUEST,
            )
        },
        Bad {
            headers: vec![
                ("host", format!("evil.example:{port}").into_bytes()),
                ("origin", format!("http://evil.example:{port}").into_bytes()),
            ],
            ..cancel(
                "a cancel whose Origin matches its foreign Host",
                unknown,
                "{}",
                S::MISDIRECTED_REQUEST,
            )
        },
        Bad {
            headers: vec![(
                "host",
                format!("127.0.0.1:{port}.evil.example").into_bytes(),
            )],
            ..Bad::post(
                "an order under a host that only starts like ours",
                valid.clone(),
                S::MISDIRECTED_REQUEST,
            )
        },
        get("no such route", "/invoices", S::NOT_FOUND),
        get(
            "no such sub-resource",
            &format!("/orders/{unknown}/ship"),
            S::NOT_FOUND,
        ),
        get("trailing slash", "/orders/", S::NOT_FOUND),
        get("upper-case path", "/ORDERS", S::NOT_FOUND),
        // ---- methods ----------------------------------------------------------
        Bad::request(
            "DELETE /orders",
            Method::DELETE,
            "/orders".into(),
            S::METHOD_NOT_ALLOWED,
        ),
        Bad::request(
            "PUT an order",
            Method::PUT,
            format!("/orders/{unknown}"),
            S::METHOD_NOT_ALLOWED,
        ),
        get(
            "GET cancel",
            &format!("/orders/{unknown}/cancel"),
            S::METHOD_NOT_ALLOWED,
        ),
        Bad {
            method: Method::PATCH,
            ..Bad::post("PATCH /orders", valid.clone(), S::METHOD_NOT_ALLOWED)
        },
        Bad::request(
            "OPTIONS /orders",
            Method::OPTIONS,
            "/orders".into(),
            S::METHOD_NOT_ALLOWED,
        ),
        Bad {
            method: Method::from_bytes(b"BREW").expect("a token"),
            ..Bad::post("made-up method", valid.clone(), S::METHOD_NOT_ALLOWED)
        },
        // ---- queries ------------------------------------------------------------
        get("limit 0", "/orders?limit=0", S::BAD_REQUEST),
        get("limit not a number", "/orders?limit=abc", S::BAD_REQUEST),
        get("limit negative", "/orders?limit=-1", S::BAD_REQUEST),
        get("limit too large", "/orders?limit=501", S::BAD_REQUEST),
        get(
            "limit beyond u64",
            "/orders?limit=99999999999999999999",
            S::BAD_REQUEST,
        ),
        get("limit twice", "/orders?limit=1&limit=2", S::BAD_REQUEST),
        get("limit with NUL", "/orders?limit=1%00", S::BAD_REQUEST),
        get("limit not UTF-8", "/orders?limit=%FF", S::BAD_REQUEST),
        get("cursor x", "/orders?cursor=x", S::BAD_REQUEST),
        get("cursor not a cursor", "/orders?cursor=nope", S::BAD_REQUEST),
        get(
            "cursor a UUID with NUL",
            &format!("/orders?cursor={unknown}%00"),
            S::BAD_REQUEST,
        ),
    ]
}

impl Bad {
    fn with_content_type(self, content_type: &'static str) -> Self {
        Bad {
            content_type: Some(content_type),
            ..self
        }
    }
}

#[tokio::test]
async fn hostile_requests_get_problem_details_and_write_nothing() {
    let api = OrdersApi::start().await;
    let cases = corpus(api.addr.port());
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    assert_all_refused(&api, cases).await;
    assert_eq!(
        api.counts().await,
        [0, 0, 0, 0],
        "rows in orders, order_lines, outbox, idempotency_keys after the corpus"
    );
    // Still serving: the corpus broke nothing.
    let placed = api.place(&order()).await;
    assert_eq!(placed["status"], "placed");
    api.stop().await;
}

// ---- slow and abandoned clients ------------------------------------------------

/// The request timeout of the services in the slow-client tests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A deadline for an answer that should come at once: generous, so that a
/// busy machine does not fail the test, but far from "held forever".
const PROMPTLY: Duration = Duration::from_secs(5);
/// Slack on top of a server timeout before the test calls it missed.
const GRACE: Duration = Duration::from_secs(5);

/// Test defaults with a short request timeout and a small concurrency limit.
fn short_limits(max_concurrent_requests: usize) -> impl FnOnce(&mut order_service::Config) {
    move |config| {
        config.http.request_timeout = REQUEST_TIMEOUT;
        config.http.max_concurrent_requests = max_concurrent_requests;
    }
}

/// A raw connection to the service.
async fn connect(api: &OrdersApi) -> TcpStream {
    timeout(PROMPTLY, TcpStream::connect(api.addr))
        .await
        .expect("connected promptly")
        .expect("the service accepts connections")
}

/// The head of a `POST /orders` that announces `content_length` bytes of JSON.
fn post_head(api: &OrdersApi, content_length: usize, extra: &str) -> String {
    format!(
        "POST /orders HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n{extra}\r\n",
        api.addr
    )
}

/// What came back on a raw connection.
#[derive(Debug)]
enum Answer {
    /// The server closed the connection without a response.
    Closed,
    /// A complete response.
    Response {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
    },
}

impl Answer {
    /// Checks that this is a 408 problem with a detail, or a close.
    fn assert_timed_out(&self, what: &str) {
        match self {
            Answer::Closed => {}
            Answer::Response {
                status,
                content_type,
                body,
            } => {
                let body = String::from_utf8_lossy(body);
                assert_eq!(*status, 408, "{what}: {body}");
                assert!(
                    content_type
                        .as_deref()
                        .is_some_and(|c| c.starts_with("application/problem+json")),
                    "{what}: not problem+json: {content_type:?}"
                );
                let problem: Value = serde_json::from_str(&body).expect("problem JSON");
                assert!(
                    problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
                    "{what}: no detail: {body}"
                );
            }
        }
    }
}

fn is_closed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// A complete response at the start of `received`, if there is one.
fn parse_response(received: &[u8], at_eof: bool) -> Option<Answer> {
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut content_type = None;
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value),
            "content-length" => content_length = value.parse::<usize>().ok(),
            _ => {}
        }
    }
    let body = &received[head_end + 4..];
    let complete = match content_length {
        Some(length) => body.len() >= length,
        None => at_eof,
    };
    complete.then(|| Answer::Response {
        status,
        content_type,
        body: body.to_vec(),
    })
}

/// Reads one response from `stream`, or the server closing it.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        if let Some(answer) = parse_response(&received, false) {
            return answer;
        }
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e) if is_closed(&e) => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    if received.is_empty() {
        return Answer::Closed;
    }
    parse_response(&received, true).unwrap_or_else(|| {
        panic!(
            "connection closed mid-response: {}",
            String::from_utf8_lossy(&received)
        )
    })
}

/// Reads until the server closes `stream`, ignoring anything it says first.
async fn until_closed(stream: &mut TcpStream) {
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_closed(&e) => return,
            Err(e) => panic!("reading until closed: {e}"),
        }
    }
}

/// Whether the server still holds `stream` open without having written to it.
fn still_open(stream: &TcpStream) -> bool {
    let mut buffer = [0_u8; 1];
    matches!(stream.try_read(&mut buffer), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// `GET path` on a fresh connection, answered 200 within `deadline`.
async fn answered(api: &OrdersApi, path: &str, deadline: Duration, what: &str) {
    let response = timeout(deadline, api.client.get(api.url(path)).send())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {deadline:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(response.status(), StatusCode::OK, "{what}");
}

#[tokio::test]
async fn a_request_stalled_mid_body_is_answered_408_while_others_are_served() {
    let api = OrdersApi::start_with(short_limits(4)).await;
    let mut stalled = connect(&api).await;
    // Taken before the head is sent: the server's timeout starts when the
    // head arrives, so it can only start after this instant.
    let stalled_at = Instant::now();
    stalled
        .write_all(post_head(&api, 1000, "").as_bytes())
        .await
        .unwrap();
    stalled.write_all(&[b' '; 500]).await.unwrap();

    answered(
        &api,
        "/orders?limit=1",
        PROMPTLY,
        "a request while another stalls",
    )
    .await;
    let served_at = Instant::now();

    let answer = timeout(REQUEST_TIMEOUT + GRACE, read_answer(&mut stalled))
        .await
        .expect("the stalled request is answered after the request timeout, not held");
    let answered_at = Instant::now();
    answer.assert_timed_out("half a body, then nothing");
    assert!(
        answered_at - stalled_at >= REQUEST_TIMEOUT,
        "answered after {:?}: before the request timeout, so not by it",
        answered_at - stalled_at
    );
    assert!(
        served_at < answered_at,
        "the other request was served while this one was still waiting"
    );
    // The unread rest of the body makes the connection unusable: it is closed.
    timeout(GRACE, until_closed(&mut stalled))
        .await
        .expect("the connection is closed after the 408");
    assert_eq!(api.counts().await, [0, 0, 0, 0]);
    api.stop().await;
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_and_block_no_one() {
    const CONNECTIONS: usize = 50;
    let api = OrdersApi::start_with(short_limits(4)).await;
    let mut stalled = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        // Taken before connecting: the server's header timer starts when it
        // accepts, which may be before `connect` returns here.
        let opened_at = Instant::now();
        let mut stream = connect(&api).await;
        let sent: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /ord",
            _ => b"GET /orders HTTP/1.1\r\nHost: localhost\r\n",
        };
        stream.write_all(sent).await.unwrap();
        stalled.push((i, opened_at, stream));
    }

    answered(
        &api,
        "/orders?limit=1",
        PROMPTLY,
        "a request beside 50 stalled connections",
    )
    .await;
    let held = stalled.iter().filter(|(_, _, s)| still_open(s)).count();
    assert_eq!(
        held, CONNECTIONS,
        "the stalled connections were accepted and are held (so far)"
    );

    let mut closing = JoinSet::new();
    for (i, opened_at, mut stream) in stalled {
        closing.spawn(async move {
            let deadline = opened_at + HEADER_READ_TIMEOUT + GRACE;
            timeout_at(deadline, until_closed(&mut stream))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "connection {i} is still open {:?} after it stalled",
                        HEADER_READ_TIMEOUT + GRACE
                    )
                });
            (i, opened_at.elapsed())
        });
    }
    for (i, open_for) in closing.join_all().await {
        assert!(
            open_for >= HEADER_READ_TIMEOUT,
            "connection {i} was closed after {open_for:?}, before the header read timeout"
        );
    }
    answered(&api, "/orders?limit=1", PROMPTLY, "a request afterwards").await;
    api.stop().await;
}

/// How long a request waits for a slot in the load-shedding test.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_full_server_sheds_excess_requests_with_503_and_stays_live() {
    const LIMIT: usize = 2;
    // The slow requests hold their slots for the whole test (the request
    // timeout is a minute); excess requests wait QUEUE_TIMEOUT for one.
    let api = OrdersApi::start_with(|config| {
        config.http.max_concurrent_requests = LIMIT;
        config.http.queue_timeout = QUEUE_TIMEOUT;
    })
    .await;
    let mut slow = Vec::with_capacity(LIMIT);
    for _ in 0..LIMIT {
        let mut stream = connect(&api).await;
        stream
            .write_all(post_head(&api, 1000, "").as_bytes())
            .await
            .unwrap();
        stream.write_all(b"{\"customer\"").await.unwrap();
        slow.push(stream);
    }

    // Once the slow requests hold every slot, an excess request is shed:
    // answered 503 with Retry-After once it waited QUEUE_TIMEOUT, not queued
    // until a slot frees up (which would be a minute from now).
    let deadline = Instant::now() + Duration::from_secs(30);
    let shed = loop {
        let sent_at = Instant::now();
        let response = timeout(
            QUEUE_TIMEOUT + GRACE,
            api.client.get(api.url("/orders?limit=1")).send(),
        )
        .await
        .expect("an excess request is answered within the queue timeout, not held")
        .expect("an answer");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break (sent_at.elapsed(), response);
        }
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "before the slots are full"
        );
        assert!(
            Instant::now() < deadline,
            "the slow requests never filled the {LIMIT} slots"
        );
    };
    let (waited, response) = shed;
    assert!(
        waited >= QUEUE_TIMEOUT,
        "shed after {waited:?}: before it waited for a slot"
    );
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    assert!(
        response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
    );
    let problem: Value = response.json().await.expect("a problem body");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("try again")),
        "{problem}"
    );

    // The liveness probe needs no slot: it answers while all are taken.
    answered(
        &api,
        "/health/live",
        PROMPTLY,
        "liveness while every slot is taken",
    )
    .await;

    // The slow clients give up: their slots free up and requests are served again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = api
            .client
            .get(api.url("/orders?limit=1"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the slots were never given back");
    }
    assert_eq!(api.counts().await, [0, 0, 0, 0]);
    api.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_does_not_wait_for_stalled_ones() {
    // The default test limits: the request in flight has a minute to finish.
    let api = OrdersApi::start().await;
    let body = order().to_string().into_bytes();
    let (first_half, second_half) = body.split_at(body.len() / 2);

    // In flight: the handler is reading the body. `Expect: 100-continue` makes
    // the server say so: it sends `100 Continue` when the handler asks for the body.
    let mut in_flight = connect(&api).await;
    in_flight
        .write_all(post_head(&api, body.len(), "Expect: 100-continue\r\n").as_bytes())
        .await
        .unwrap();
    let mut continue_line = [0_u8; 25];
    timeout(PROMPTLY, in_flight.read_exact(&mut continue_line))
        .await
        .expect("100 Continue promptly")
        .unwrap();
    assert!(
        continue_line.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&continue_line)
    );
    in_flight.write_all(first_half).await.unwrap();
    // Stalled: a request head that never ends, and a connection that never speaks.
    let mut half_head = connect(&api).await;
    half_head
        .write_all(b"GET /orders HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut idle = connect(&api).await;
    answered(&api, "/health/live", PROMPTLY, "the service is up").await;

    let stopping_at = Instant::now();
    api.begin_stop();
    timeout(PROMPTLY, until_closed(&mut idle))
        .await
        .expect("an idle connection is closed at shutdown");
    in_flight.write_all(second_half).await.unwrap();
    let answer = timeout(PROMPTLY, read_answer(&mut in_flight))
        .await
        .expect("the request in flight is answered during shutdown");
    match answer {
        Answer::Response { status: 201, .. } => {}
        other => panic!("the request in flight was cut off: {other:?}"),
    }
    timeout(HEADER_READ_TIMEOUT + GRACE, until_closed(&mut half_head))
        .await
        .expect("a half-sent request head does not hold the shutdown");
    assert_eq!(
        api.counts().await,
        [1, 2, 1, 0],
        "the order in flight was placed"
    );
    let deadline = stopping_at + HEADER_READ_TIMEOUT + GRACE;
    timeout_at(deadline, api.stop())
        .await
        .expect("the service stops once in-flight requests are done");
}

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
