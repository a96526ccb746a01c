//! Clients that stall mid-body or never finish their head are answered 408 or
//! closed in bounded time, and block no one.

use platform_web::http::HEADER_READ_TIMEOUT;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

use super::{
    GRACE, PROMPTLY, REQUEST_TIMEOUT, answered, connect, post_head, read_answer, short_limits,
    still_open, until_closed,
};
use crate::order_api_client::OrdersApi;

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
