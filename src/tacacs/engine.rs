//! TCP for TACACS+: an accept loop with global and per-client connection
//! limits, and a task per connection that frames packets, applies idle and
//! read timeouts (so a silent or slow peer cannot hold a slot), de-obfuscates
//! with the client's key and writes replies. Knows nothing about roles.

use std::io;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::codec::{DecodeError, FLAG_SINGLE_CONNECT, HEADER_LEN, Header, obfuscate};
use super::service::{CloseReason, Conn, Outcome, Service};
use super::slots::{Full, Limits, Slot, Slots};
use crate::config::ConfigHandle;

/// Why a connection was refused or closed, counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    AcceptFailed,
    /// The peer is no client with a TACACS+ key (at accept, or after a
    /// reload removed it).
    UnknownClient,
    ConnectionLimit,
    ClientConnectionLimit,
    AddressConnectionLimit,
    /// An idle connection closed to admit a newer one at a limit.
    Evicted,
    /// A header that does not frame a packet.
    Frame(DecodeError),
    IdleTimeout,
    ReadTimeout,
    /// End of stream inside a packet.
    TruncatedPacket,
    ReadError,
    WriteError,
    /// An unencrypted packet from a client not allowed to send them.
    UnencryptedRefused,
    /// A body whose field lengths do not add up after de-obfuscation:
    /// almost always the client and we hold different keys.
    BadKeyOrBody,
    Service(CloseReason),
}

impl Closed {
    pub fn label(&self) -> &'static str {
        match self {
            Self::AcceptFailed => "accept_failed",
            Self::UnknownClient => "unknown_client",
            Self::ConnectionLimit => "connection_limit",
            Self::ClientConnectionLimit => "client_connection_limit",
            Self::AddressConnectionLimit => "address_connection_limit",
            Self::Evicted => "evicted",
            Self::Frame(e) => e.label(),
            Self::IdleTimeout => "idle_timeout",
            Self::ReadTimeout => "read_timeout",
            Self::TruncatedPacket => "truncated_packet",
            Self::ReadError => "read_error",
            Self::WriteError => "write_error",
            Self::UnencryptedRefused => "unencrypted_refused",
            Self::BadKeyOrBody => "bad_key_or_body",
            Self::Service(r) => r.label(),
        }
    }
}

/// Bodies larger than this are refused before they are buffered.
const MAX_BODY: u32 = 64 * 1024;
/// Free room kept in a connection's buffer for the next read.
const READ_ROOM: usize = 4096;

/// Accepts until `stop`, then waits for open connections to finish the
/// request they are in.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    config: ConfigHandle,
    stop: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Slots::default());
    let tracker = TaskTracker::new();
    // Our own readiness handling (AsyncFd) for the listener and its
    // connections: reads go through recvmsg for the kernel's receive
    // stamp, and a short read must clear readiness as tokio's own read does,
    // or every request costs one more system call.
    // SAFETY: the std listener owns its descriptor, which stays open and
    // the same for as long as the AsyncFd that owns the listener.
    let listener = unsafe { AsyncFd::register(listener.into_std()?) }?;
    // Accepted sockets inherit the option; asking on the listener also
    // switches the kernel's stamping on before the first client connects.
    crate::stamp::enable(listener.as_raw_fd());
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = accept(&listener) => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: log and keep accepting.
                    warn!(error = %e, "tacacs+ accept");
                    service.metrics().error(Closed::AcceptFailed);
                    continue;
                }
            },
        };
        let metrics = service.metrics();
        let current = config.load();
        let Some(client) = current
            .clients
            .lookup(peer.ip())
            .filter(|c| c.tacacs_key.is_some())
        else {
            debug!(%peer, "tacacs+ connection from unknown client");
            metrics.error(Closed::UnknownClient);
            continue;
        };
        let t = &current.tacacs;
        let limits = Limits {
            total: t.max_connections,
            per_client: t.max_connections_per_client,
            per_address: t.max_connections_per_address,
        };
        let slot = match slots.admit(&client.name, peer.ip(), limits) {
            Ok((slot, _)) => slot,
            Err(full) => {
                metrics.error(match full {
                    Full::Total => Closed::ConnectionLimit,
                    Full::Client => Closed::ClientConnectionLimit,
                    Full::Address => Closed::AddressConnectionLimit,
                });
                continue;
            }
        };
        drop(current);
        metrics.connections.inc();
        metrics.connections_open.inc();
        let service = service.clone();
        let config = config.clone();
        let slots = slots.clone();
        let stop = stop.clone();
        tracker.spawn(async move {
            match Stream::new(stream) {
                Ok(mut stream) => {
                    let reason =
                        connection(&mut stream, peer, &service, &config, &slot, &stop).await;
                    // Counted before the socket closes, so whoever sees the
                    // close also sees the count.
                    if let Some(reason) = reason {
                        service.metrics().error(reason);
                    }
                    drop(stream);
                }
                Err(_) => service.metrics().error(Closed::AcceptFailed),
            }
            service.metrics().connections_open.dec();
            slots.release(&slot);
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Serves one connection; returns why it was closed when that is worth
/// counting.
async fn connection(
    stream: &mut Stream,
    peer: SocketAddr,
    service: &Service,
    config: &ConfigHandle,
    slot: &Slot,
    stop: &CancellationToken,
) -> Option<Closed> {
    let mut buf = BytesMut::with_capacity(READ_ROOM);
    // When the newest bytes in `buf` reached the machine.
    let mut arrived: Option<SystemTime> = None;
    let mut out = Vec::with_capacity(1024);
    let mut conn = Conn::new(peer);
    let mut single_connect: Option<bool> = None;
    loop {
        // A packet's whole arrival is bounded from its first byte, however
        // slowly the rest trickles in.
        let mut first_byte = (!buf.is_empty()).then(Instant::now);
        // Read until one whole packet is buffered.
        let (header, total) = loop {
            match Header::check(&buf, MAX_BODY) {
                Ok(Some(x)) => break x,
                Ok(None) => {}
                Err(e) => return Some(Closed::Frame(e)),
            }
            let limit = {
                let current = config.load();
                match first_byte {
                    None => current.tacacs.idle_timeout,
                    Some(t) => current.tacacs.read_timeout.saturating_sub(t.elapsed()),
                }
            };
            if buf.is_empty() && !conn.in_login() {
                slot.idle();
            }
            let read = tokio::select! {
                _ = stop.cancelled() => return None,
                _ = slot.evicted().cancelled() => return Some(Closed::Evicted),
                r = timeout(limit, stream.read_stamped(&mut buf)) => r,
            };
            slot.busy();
            if first_byte.is_none() && !buf.is_empty() {
                first_byte = Some(Instant::now());
            }
            match read {
                Ok(Ok((0, _))) => {
                    return if buf.is_empty() {
                        None
                    } else {
                        Some(Closed::TruncatedPacket)
                    };
                }
                // Unstamped reads (the kernel switches stamping on a moment
                // after a process first asks) are timed from now instead.
                Ok(Ok((_, stamp))) => arrived = Some(stamp.unwrap_or_else(SystemTime::now)),
                Ok(Err(_)) => return Some(Closed::ReadError),
                Err(_) if buf.is_empty() => return Some(Closed::IdleTimeout),
                Err(_) => return Some(Closed::ReadTimeout),
            }
        };
        let started = Instant::now();
        let mut packet = buf.split_to(total);
        // The client and its key are looked up per packet, so a reload that
        // changes a key applies to open connections at their next packet.
        let config = config.load_full();
        let Some(client) = config.clients.lookup(peer.ip()) else {
            return Some(Closed::UnknownClient);
        };
        let Some(key) = client.tacacs_key.as_ref() else {
            return Some(Closed::UnknownClient);
        };
        if header.unencrypted() && !client.allow_unencrypted_tacacs {
            warn!(%peer, client = %client.name, "tacacs+ unencrypted packet refused");
            return Some(Closed::UnencryptedRefused);
        }
        let body = &mut packet[HEADER_LEN..];
        if !header.unencrypted() {
            obfuscate(body, &header, key.expose());
        }
        // Single-connection mode is offered by the client's first packet and
        // echoed by us; it then holds for the connection (RFC 8907 §4.3).
        let sc = *single_connect.get_or_insert_with(|| header.single_connect());
        let reply_flags = if sc { FLAG_SINGLE_CONNECT } else { 0 };
        let outcome = service
            .handle(
                &config,
                client,
                key.expose(),
                &mut conn,
                &header,
                body,
                reply_flags,
                &mut out,
            )
            .await;
        match outcome {
            Outcome::Close(CloseReason::Body(
                DecodeError::LengthMismatch | DecodeError::ShortBody,
            )) => {
                warn!(%peer, client = %client.name, "tacacs+ packet undecodable: wrong key?");
                return Some(Closed::BadKeyOrBody);
            }
            Outcome::Close(reason) => return Some(Closed::Service(reason)),
            Outcome::Done | Outcome::More => {
                // Timed up to the write, not after it: whoever has read the
                // reply then also sees it counted.
                let metrics = service.metrics();
                metrics.latency.observe(started.elapsed().as_secs_f64());
                if let Some(s) = crate::stamp::since(arrived) {
                    metrics.kernel_to_reply.observe(s);
                }
                if stream.write_all(&out).await.is_err() {
                    return Some(Closed::WriteError);
                }
                if outcome == Outcome::Done && !sc {
                    // Without single-connect the connection serves one session.
                    stream.shutdown();
                    return None;
                }
            }
        }
    }
}

/// Waits for and takes one connection, non-blocking and close-on-exec.
async fn accept(
    listener: &AsyncFd<std::net::TcpListener>,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        let r = ready.try_io(|l| {
            // SAFETY: try_init hands accept4 room for any socket address and
            // its length; a descriptor accept4 returns is fresh and ours.
            unsafe {
                socket2::SockAddr::try_init(|addr, len| {
                    let fd = libc::accept4(
                        l.as_raw_fd(),
                        addr.cast(),
                        len,
                        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(std::net::TcpStream::from_raw_fd(fd))
                })
            }
        });
        match r {
            Ok(Ok((stream, addr))) => match addr.as_socket() {
                Some(peer) => return Ok((stream, peer)),
                // Not an inet peer: nothing a client could be. Keep accepting.
                None => drop(stream),
            },
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// One connection's socket under our own readiness handling.
struct Stream(AsyncFd<std::net::TcpStream>);

impl Stream {
    fn new(s: std::net::TcpStream) -> io::Result<Self> {
        let _ = s.set_nodelay(true);
        crate::stamp::enable(s.as_raw_fd());
        // SAFETY: the std stream owns its descriptor, which stays open and
        // the same for as long as the AsyncFd that owns the stream.
        Ok(Self(unsafe { AsyncFd::register(s) }?))
    }

    /// Reads what the socket has into `buf`'s free room: the byte count (0
    /// at end of stream) and the kernel's receive time of the newest of them.
    async fn read_stamped(&self, buf: &mut BytesMut) -> io::Result<(usize, Option<SystemTime>)> {
        if buf.capacity() - buf.len() < READ_ROOM / 4 {
            buf.reserve(READ_ROOM);
        }
        loop {
            let mut ready = self.0.readable().await?;
            let room = buf.spare_capacity_mut();
            let want = room.len();
            match ready.try_io(|s| crate::stamp::recv(s.as_raw_fd(), room, None)) {
                Ok(Ok((n, stamp))) => {
                    if n > 0 && n < want {
                        // Edge-triggered: a short read took everything there was.
                        ready.clear_ready();
                    }
                    // SAFETY: recvmsg initialised the first `n` bytes of the spare room.
                    unsafe { buf.set_len(buf.len() + n) };
                    return Ok((n, stamp));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            // Usually the reply fits the send buffer at once: try first.
            match self.0.get_ref().write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut ready = self.0.writable().await?;
                    ready.clear_ready();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn shutdown(&self) {
        let _ = self.0.get_ref().shutdown(std::net::Shutdown::Write);
    }
}
