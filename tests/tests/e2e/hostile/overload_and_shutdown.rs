//! A full server sheds excess requests with 503 and stays live; shutdown finishes
//! requests in flight without waiting for stalled ones.

use std::time::Duration;

use platform_web::http::HEADER_READ_TIMEOUT;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

use super::{Answer, GRACE, PROMPTLY, answered, connect, post_head, read_answer, until_closed};
use crate::order_api_client::{OrdersApi, order};

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
