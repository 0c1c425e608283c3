//! UDP sockets for the RADIUS engine: one `SO_REUSEPORT` socket per worker so
//! the kernel spreads clients across workers without a shared queue, with
//! receive buffers large enough that bursts wait in the kernel, not on the
//! floor.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

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
        crate::stamp::enable(s.as_raw_fd());
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

/// One `recvmsg` without waiting: the datagram into `buf`, its source, and
/// the kernel's receive time when the socket has `SO_TIMESTAMPNS`.
pub fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<std::time::SystemTime>)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: an initialised buffer viewed as possibly-uninitialised bytes;
    // recvmsg only writes bytes into it.
    let spare = unsafe { &mut *(std::ptr::from_mut(buf) as *mut [std::mem::MaybeUninit<u8>]) };
    let (n, stamp) = crate::stamp::recv(fd, spare, Some(&mut from))?;
    let src = inet_source(&from).ok_or_else(|| io::Error::other("not an inet source"))?;
    Ok((n, src, stamp))
}

fn inet_source(from: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(from.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((from as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((from as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
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
