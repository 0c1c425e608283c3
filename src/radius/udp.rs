//! UDP sockets for the RADIUS engine: one `SO_REUSEPORT` socket per worker so
//! the kernel spreads clients across workers without a shared queue, with
//! receive buffers large enough that bursts wait in the kernel, not on the
//! floor.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `workers` sockets to `addr` with `SO_REUSEPORT`. With port 0 the
/// first socket picks the port and the rest join it.
pub fn bind_reuseport(
    addr: SocketAddr,
    workers: usize,
    recv_buffer: usize,
) -> io::Result<Vec<UdpSocket>> {
    let mut out = Vec::with_capacity(workers);
    let mut addr = addr;
    for _ in 0..workers.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            // Accept IPv4-mapped sources too when bound to [::]; clients match
            // them against IPv4 networks.
            let _ = s.set_only_v6(false);
        }
        set_buffer(&s, recv_buffer, true);
        set_buffer(&s, recv_buffer / 2, false);
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        if addr.port() == 0 {
            addr = s
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("not an inet socket"))?;
        }
        out.push(s.into());
    }
    Ok(out)
}

/// Sets a socket buffer size. As root, the `*FORCE` variant lifts the
/// `net.core.[rw]mem_max` ceiling that would otherwise silently cap it.
fn set_buffer(s: &Socket, bytes: usize, recv: bool) {
    use std::os::fd::AsRawFd;
    let (force, plain) = if recv {
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)
    } else {
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)
    };
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [force, plain] {
        // SAFETY: setsockopt with a valid fd, a c_int value and its size.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Bytes the kernel dropped on a socket because its receive buffer was full
/// (`SO_MEMINFO` would do; `/proc/net/udp` drops column is what operators
/// know, so that is what the load test reads).
pub fn kernel_drops(port: u16) -> Option<u64> {
    let mut total = None;
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(local) = cols.get(1) else { continue };
            let Some(p) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if p == port {
                let drops: u64 = cols.last().and_then(|d| d.parse().ok()).unwrap_or(0);
                *total.get_or_insert(0) += drops;
            }
        }
    }
    total
}
