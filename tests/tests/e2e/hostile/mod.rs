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

mod bodies;
mod overload_and_shutdown;
mod pages;
mod requests;
mod stalled_clients;

use std::io::ErrorKind;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use uuid::Uuid;

use crate::order_api_client::{Bad, OrdersApi};

/// `POST /orders/{unknown}/cancel` with `body` declared JSON.
pub(super) fn cancel(
    what: &'static str,
    unknown: Uuid,
    body: impl Into<Vec<u8>>,
    status: StatusCode,
) -> Bad {
    Bad {
        path: format!("/orders/{unknown}/cancel"),
        ..Bad::raw(what, body, status)
    }
}

// ---- slow and abandoned clients ------------------------------------------------

/// The request timeout of the services in the slow-client tests.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// A deadline for an answer that should come at once: generous, so that a
/// busy machine does not fail the test, but far from "held forever".
pub(super) const PROMPTLY: Duration = Duration::from_secs(5);

/// Slack on top of a server timeout before the test calls it missed.
pub(super) const GRACE: Duration = Duration::from_secs(5);

/// Test defaults with a short request timeout and a small concurrency limit.
pub(super) fn short_limits(
    max_concurrent_requests: usize,
) -> impl FnOnce(&mut order_service::Config) {
    move |config| {
        config.http.request_timeout = REQUEST_TIMEOUT;
        config.http.max_concurrent_requests = max_concurrent_requests;
    }
}

/// A raw connection to the service.
pub(super) async fn connect(api: &OrdersApi) -> TcpStream {
    timeout(PROMPTLY, TcpStream::connect(api.addr))
        .await
        .expect("connected promptly")
        .expect("the service accepts connections")
}

/// The head of a `POST /orders` that announces `content_length` bytes of JSON.
pub(super) fn post_head(api: &OrdersApi, content_length: usize, extra: &str) -> String {
    format!(
        "POST /orders HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n{extra}\r\n",
        api.addr
    )
}

/// What came back on a raw connection.
#[derive(Debug)]
pub(super) enum Answer {
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
    pub(super) fn assert_timed_out(&self, what: &str) {
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

pub(super) fn is_closed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// A complete response at the start of `received`, if there is one.
pub(super) fn parse_response(received: &[u8], at_eof: bool) -> Option<Answer> {
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
pub(super) async fn read_answer(stream: &mut TcpStream) -> Answer {
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
pub(super) async fn until_closed(stream: &mut TcpStream) {
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
pub(super) fn still_open(stream: &TcpStream) -> bool {
    let mut buffer = [0_u8; 1];
    matches!(stream.try_read(&mut buffer), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// `GET path` on a fresh connection, answered 200 within `deadline`.
pub(super) async fn answered(api: &OrdersApi, path: &str, deadline: Duration, what: &str) {
    let response = timeout(deadline, api.client.get(api.url(path)).send())
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {deadline:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(response.status(), StatusCode::OK, "{what}");
}
