//! Kernel receive timestamps (`SO_TIMESTAMPNS`) for both engines' sockets,
//! so a latency metric can start when a request reached the machine, not
//! when a worker got round to it: time queued in the socket counts too.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Asks the kernel to stamp what `fd` receives. Best effort: without it only
/// the in-process latency is measured.
pub fn enable(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a caller's fd, a c_int value and its size; a
    // bad fd only makes it fail.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One non-blocking `recvmsg` into `buf`: the bytes read, the kernel's
/// receive time if the socket has timestamps on (for TCP, that of the
/// newest segment read), and, when `from` is given, the sender's address
/// in it (datagrams).
pub fn recv(
    fd: RawFd,
    buf: &mut [MaybeUninit<u8>],
    from: Option<&mut libc::sockaddr_storage>,
) -> io::Result<(usize, Option<SystemTime>)> {
    // Room for one cmsg carrying a timespec, 8-byte aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(from) = from {
        msg.msg_name = std::ptr::from_mut(from).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    // SAFETY: `msg` describes valid, writable buffers for the whole call;
    // the kernel writes at most `iov_len` bytes, initialising them.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within
    // `msg_controllen`; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                stamp = UNIX_EPOCH.checked_add(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n as usize, stamp))
}

/// Seconds from a kernel receive stamp to now; `None` without a stamp or
/// if the wall clock stepped back past it.
pub fn since(stamp: Option<SystemTime>) -> Option<f64> {
    SystemTime::now()
        .duration_since(stamp?)
        .ok()
        .map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;

    /// The kernel switches receive stamping on for the whole machine a
    /// moment after the first socket asks (a deferred static-key flip), so
    /// the first segments a fresh process reads may carry no stamp: this
    /// exchanges small writes until one does, within a bound, and checks
    /// that stamp against the wall clock around its write.
    #[test]
    fn tcp_reads_carry_the_kernel_receive_time() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        enable(l.as_raw_fd());
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        enable(s.as_raw_fd());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut unstamped = 0u32;
        let (stamp, before, after) = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no receive stamp after {unstamped} unstamped reads"
            );
            let before = SystemTime::now();
            c.write_all(b"hello").unwrap();
            // Blocking socket: MSG_DONTWAIT may still find nothing yet.
            let mut buf = [MaybeUninit::uninit(); 16];
            let (n, stamp) = loop {
                match recv(s.as_raw_fd(), &mut buf, None) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    r => break r.unwrap(),
                }
            };
            assert_eq!(n, 5);
            let after = SystemTime::now();
            match stamp {
                Some(stamp) => break (stamp, before, after),
                None => unstamped += 1,
            }
        };
        // Wall-clock time of this write, not a monotonic or departure clock.
        assert!(
            stamp >= before - Duration::from_millis(100),
            "{stamp:?} < {before:?}"
        );
        assert!(stamp <= after, "{stamp:?} > {after:?}");
        assert!(since(Some(stamp)).unwrap() < 1.0);
    }

    #[test]
    fn without_timestamps_on_there_is_no_stamp_and_datagrams_name_their_sender() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        let mut buf = [MaybeUninit::uninit(); 16];
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let (n, stamp) = loop {
            match recv(a.as_raw_fd(), &mut buf, Some(&mut from)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => break r.unwrap(),
            }
        };
        assert_eq!((n, stamp), (1, None));
        assert_eq!(libc::c_int::from(from.ss_family), libc::AF_INET);
        assert_eq!(since(None), None);
    }
}
