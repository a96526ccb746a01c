//! The request corpus: every request built to break the order API's parser,
//! number types, header checks or router is refused with a problem, writing nothing.

use reqwest::{Method, StatusCode};
use uuid::Uuid;

use super::bodies::body_corpus;
use super::cancel;
use crate::order_api_client::{Bad, OrdersApi, assert_all_refused, order};

/// The corpus: every request here must be refused with the status given;
/// `port` is the service's, for the requests that name a foreign host at it.
fn corpus(port: u16) -> Vec<Bad> {
    use StatusCode as S;
    let valid = order();
    let unknown = Uuid::now_v7();
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

    let mut cases = body_corpus();
    cases.extend(vec![
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
    ]);
    cases
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
