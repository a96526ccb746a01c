//! TEST CODE: a fault-injecting TCP proxy between a Kafka client and a broker.
//!
//! Scenario 6 needs a broker that stores a record and an acknowledgement
//! that never arrives. [`AckDroppingProxy`] sits between the client and one
//! listener of the lab's broker. It forwards every request unchanged and
//! reads the Kafka framing just enough (a 4-byte size, then the request
//! header's `api_key`) to know which response answers a Produce request
//! (responses come back in request order on a connection). When armed, it
//! swallows every n-th Produce response (the broker has already appended
//! the records) and closes both connections, the way a network failure after
//! the write would. The client sees its request fail and retries it.
//!
//! Kafka tells clients where brokers are in its metadata, so a proxy in
//! front of the bootstrap address alone would be bypassed after the first
//! request. The lab's broker therefore has a second listener whose
//! *advertised* address is this proxy: a client that bootstraps through the
//! proxy is told to reach the broker through the proxy for everything.
//! Nothing outside the lab uses this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{LabError, Step};

/// The Produce request's `api_key` in the Kafka protocol.
const PRODUCE: i16 = 0;

/// Largest frame the proxy accepts (the broker's default request limit is 100 MiB).
const MAX_FRAME: usize = 100 * 1024 * 1024;

/// Which Produce responses to swallow.
#[derive(Debug, Default)]
struct Policy {
    /// Swallow every n-th Produce response; 0 forwards all.
    every: AtomicU64,
    /// Swallow at most this many.
    max: AtomicU64,
    /// Produce responses seen since armed.
    seen: AtomicU64,
    /// Produce responses swallowed since armed.
    dropped: AtomicU64,
}

impl Policy {
    fn swallow_this_one(&self) -> bool {
        let every = self.every.load(Ordering::SeqCst);
        if every == 0 {
            return false;
        }
        let seen = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if !seen.is_multiple_of(every) {
            return false;
        }
        let max = self.max.load(Ordering::SeqCst);
        self.dropped
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| {
                (d < max).then_some(d + 1)
            })
            .is_ok()
    }
}

/// TEST CODE: forwards Kafka connections to a broker and, when armed, drops
/// Produce acknowledgements after the broker stored the records.
#[derive(Debug)]
pub(crate) struct AckDroppingProxy {
    port: u16,
    policy: Arc<Policy>,
    accept: JoinHandle<()>,
}

impl AckDroppingProxy {
    /// Listens on `listener` and forwards every connection to `broker`,
    /// passing everything until [`Self::drop_every`] arms it.
    pub(crate) fn start(listener: TcpListener, broker: SocketAddr) -> Result<Self, LabError> {
        let port = listener
            .local_addr()
            .step("reading the proxy's address")?
            .port();
        let policy = Arc::new(Policy::default());
        let accept = tokio::spawn(accept(listener, broker, policy.clone()));
        Ok(AckDroppingProxy {
            port,
            policy,
            accept,
        })
    }

    /// The port clients connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Swallows every `nth` Produce response from now on, at most `max`
    /// times (counts start again at 0).
    pub(crate) fn drop_every(&self, nth: u64, max: u64) {
        self.policy.seen.store(0, Ordering::SeqCst);
        self.policy.dropped.store(0, Ordering::SeqCst);
        self.policy.max.store(max, Ordering::SeqCst);
        self.policy.every.store(nth, Ordering::SeqCst);
    }

    /// Forwards everything again.
    pub(crate) fn pass_all(&self) {
        self.policy.every.store(0, Ordering::SeqCst);
    }

    /// Produce responses swallowed since the proxy was last armed.
    pub(crate) fn dropped(&self) -> u64 {
        self.policy.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for AckDroppingProxy {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection.
        self.accept.abort();
    }
}

async fn accept(listener: TcpListener, broker: SocketAddr, policy: Arc<Policy>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(forward(client, broker, policy.clone()));
                }
                Err(e) => eprintln!("lab: the fault-injecting proxy could not accept: {e}"),
            },
            // Reap finished connections; their errors are the faults we made.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection until either side closes it or a Produce
/// response is swallowed (then both sides are closed).
async fn forward(client: TcpStream, broker: SocketAddr, policy: Arc<Policy>) {
    let Ok(upstream) = TcpStream::connect(broker).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = upstream.into_split();
    // The api_key of each request forwarded, in order: the broker answers in order.
    let (sent, mut answered) = mpsc::unbounded_channel::<i16>();
    let requests = async {
        while let Some(frame) = read_frame(&mut client_read).await? {
            let api_key = frame
                .get(4..6)
                .map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
            if sent.send(api_key).is_err() {
                break;
            }
            broker_write.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let responses = async {
        while let Some(frame) = read_frame(&mut broker_read).await? {
            let api_key = answered.recv().await.unwrap_or(-1);
            if api_key == PRODUCE && policy.swallow_this_one() {
                // The broker has appended the records; the client never hears so.
                break;
            }
            client_write.write_all(&frame).await?;
        }
        Ok::<(), std::io::Error>(())
    };
    // Whichever side ends first ends the connection: both sockets drop here.
    tokio::select! {
        _ = requests => {}
        _ = responses => {}
    }
}

/// One size-prefixed Kafka frame (the prefix included); `None` at a clean end.
async fn read_frame(reader: &mut OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad frame size"))?;
    let mut frame = vec![0u8; 4 + length];
    frame[..4].copy_from_slice(&size);
    reader.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nth_produce_response_is_swallowed_up_to_the_limit() {
        let policy = Policy::default();
        assert!(!policy.swallow_this_one(), "unarmed forwards everything");
        policy.every.store(3, Ordering::SeqCst);
        policy.max.store(2, Ordering::SeqCst);
        policy.seen.store(0, Ordering::SeqCst);
        let swallowed: Vec<bool> = (0..12).map(|_| policy.swallow_this_one()).collect();
        let at: Vec<usize> = swallowed
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.then_some(i + 1))
            .collect();
        assert_eq!(at, vec![3, 6]);
        assert_eq!(policy.dropped.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn frames_are_read_with_their_size_prefix() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let writer = tokio::spawn(async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream
                .write_all(&[0, 0, 0, 3, 7, 8, 9])
                .await
                .expect("write");
        });
        let (stream, _) = listener.accept().await.expect("accept");
        let (mut read, _write) = stream.into_split();
        let frame = read_frame(&mut read).await.expect("read");
        assert_eq!(frame, Some(vec![0, 0, 0, 3, 7, 8, 9]));
        writer.await.expect("writer");
        assert_eq!(read_frame(&mut read).await.expect("end"), None);
    }
}
