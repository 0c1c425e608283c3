//! The thin I/O layer: one tokio task per `SO_REUSEPORT` socket receives a
//! datagram into a fixed buffer, asks the service, and sends the reply from
//! another fixed buffer. Requests that need argon2 continue in their own task
//! so one slow password never stalls the socket. Knows nothing about roles.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::dedup::{DedupKey, DedupTable, Seen};
use super::service::{Service, Step, store_drop_reason};
use super::udp::recv_stamped;
use crate::config::ConfigHandle;

/// RFC 2865 §3: a RADIUS packet is at most 4096 bytes.
const MAX_PACKET: usize = 4096;
/// Duplicate-table slots per worker.
const DEDUP_SLOTS: usize = 4096;
/// Deferred replies waiting to be recorded in the duplicate table; beyond
/// this, a finished reply just is not cached (it was still sent).
const DONE_QUEUE: usize = 4096;

/// A deferred request finished: its reply for the duplicate table, or
/// `None` when it went unanswered.
type Done = (DedupKey, Option<Vec<u8>>);

/// Which port a worker serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Auth,
    Acct,
}

/// Runs one worker until `stop`, then waits for its deferred requests.
pub async fn run_worker(
    socket: std::net::UdpSocket,
    port: Port,
    service: Arc<Service>,
    config: ConfigHandle,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let socket = Arc::new(UdpSocket::from_std(socket)?);
    let window = config.load().radius.duplicate_window;
    let mut dedup = DedupTable::new(DEDUP_SLOTS, window);
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(DONE_QUEUE);
    let tracker = TaskTracker::new();
    let mut inbuf = [0u8; MAX_PACKET];
    let mut outbuf = [0u8; MAX_PACKET];
    loop {
        let (n, src, stamp) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some((key, reply)) = done_rx.recv() => {
                match reply {
                    Some(reply) => dedup.complete(&key, &reply, Instant::now()),
                    // Not answered: a retransmission must be processed anew.
                    None => dedup.forget(&key),
                }
                continue;
            }
            r = socket.async_io(Interest::READABLE, || recv_stamped(socket.as_raw_fd(), &mut inbuf)) => match r {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux;
                    // they say nothing about this socket's health.
                    warn!(error = %e, "radius recv");
                    continue;
                }
            },
        };
        let received = Instant::now();
        handle(
            &service,
            &config,
            port,
            &socket,
            &mut dedup,
            &done_tx,
            &tracker,
            &inbuf[..n],
            src,
            &mut outbuf,
            received,
            stamp,
        )
        .await;
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    service: &Arc<Service>,
    config: &ConfigHandle,
    port: Port,
    socket: &Arc<UdpSocket>,
    dedup: &mut DedupTable,
    done_tx: &mpsc::Sender<Done>,
    tracker: &TaskTracker,
    req: &[u8],
    src: SocketAddr,
    out: &mut [u8; MAX_PACKET],
    received: Instant,
    stamp: Option<SystemTime>,
) {
    let metrics = service.metrics();
    // Identifier and authenticator sit at fixed offsets; a packet too short
    // for them is rejected by the codec below.
    let key = (req.len() >= 20).then(|| {
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&req[4..20]);
        DedupKey {
            src,
            id: req[1],
            authenticator,
        }
    });
    if let Some(key) = &key {
        match dedup.check(key, received) {
            Seen::New => {}
            Seen::InProgress => {
                metrics.duplicates.inc();
                return;
            }
            Seen::Replay(bytes) => {
                metrics.duplicates.inc();
                let _ = socket.send_to(bytes, src).await;
                return;
            }
        }
    }
    let config = config.load_full();
    let step = match port {
        Port::Auth => service.handle_auth(&config, src, req, out, received),
        Port::Acct => service.handle_acct(&config, src, req, out, received),
    };
    match step {
        Step::Reply(n) => {
            if let Some(key) = &key {
                dedup.complete(key, &out[..n], Instant::now());
            }
            // Timed up to the send, not after it: whoever has read the
            // reply then also sees it counted.
            metrics.latency.observe(received.elapsed().as_secs_f64());
            if let Some(t) = crate::stamp::since(stamp) {
                metrics.kernel_latency.observe(t);
            }
            send(socket, &out[..n], src).await;
        }
        Step::Drop(reason) => {
            if let Some(key) = &key {
                dedup.forget(key);
            }
            metrics.drop(reason);
        }
        Step::Verify(deferred) => {
            let service = service.clone();
            let socket = socket.clone();
            let done_tx = done_tx.clone();
            tracker.spawn(async move {
                let mut out = [0u8; MAX_PACKET];
                let n = service.finish(&deferred, &mut out).await;
                let reply = n.map(|n| &out[..n]);
                if reply.is_some() {
                    let elapsed = deferred.received.elapsed().as_secs_f64();
                    service.metrics().latency.observe(elapsed);
                }
                conclude(&socket, &done_tx, key, src, reply).await;
            });
        }
        Step::Store(storing) => {
            let service = service.clone();
            let socket = socket.clone();
            let done_tx = done_tx.clone();
            // Tracked, so shutdown waits for records already queued to be
            // committed and answered rather than abandoning them.
            tracker.spawn(async move {
                let result = storing.pending.await;
                service.stored(&storing.client, result.as_ref().map(|d| d.duplicate));
                match result {
                    Ok(_) => {
                        let elapsed = storing.received.elapsed().as_secs_f64();
                        service.metrics().latency.observe(elapsed);
                        conclude(&socket, &done_tx, key, src, Some(&storing.reply)).await;
                    }
                    Err(e) => {
                        service.metrics().drop(store_drop_reason(&e));
                        conclude(&socket, &done_tx, key, src, None).await;
                    }
                }
            });
        }
    }
}

/// Ends a request that finished off the receive loop: its outcome goes to
/// the duplicate table *before* the reply leaves. The worker takes those
/// messages ahead of datagrams, so a client that retransmits the moment it
/// sees the reply finds the reply cached, not "in progress" (dropped).
async fn conclude(
    socket: &UdpSocket,
    done_tx: &mpsc::Sender<Done>,
    key: Option<DedupKey>,
    src: SocketAddr,
    reply: Option<&[u8]>,
) {
    if let Some(key) = key {
        let _ = done_tx.try_send((key, reply.map(<[u8]>::to_vec)));
    }
    if let Some(reply) = reply {
        send(socket, reply, src).await;
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, dst).await {
        warn!(error = %e, %dst, "radius send");
    }
}
