//! RADIUS load: PAP Access-Requests with Message-Authenticator, built and
//! checked with portcullis's own codec on the client side. Every reply's
//! Response Authenticator and Message-Authenticator is verified; only a
//! verified Access-Accept counts as success.
//!
//! One thread drives everything: connected non-blocking UDP sockets (at most
//! 256 requests in flight on each, one per Identifier), `ppoll` for
//! readiness and timers, and a periodic scan of in-flight requests for
//! retransmission (same bytes, so a server answers from its duplicate cache)
//! and, after the last try, giving up (counted as lost).
//!
//! Closed loop (default): `--outstanding` requests always in flight; each
//! answer immediately starts the next request on the same socket. Open loop
//! (`--rate R`): a request is scheduled every 1/R s and its latency is taken
//! from its scheduled time, so a stalled server cannot hide its stall
//! (coordinated omission); `--outstanding` then only caps what is in flight.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use portcullis::radius::codec::{Code, Secret, decode, encode_access_request, verify_reply};
use portcullis::radius::udp::kernel_drops;
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};

use crate::report::{Counters, Report, RunInfo, cpu_time};

/// Identifiers per socket (RFC 2865 §3: one octet).
const IDS: usize = 256;
/// Room for one request: header, Message-Authenticator, User-Name (≤ 253)
/// and a hidden User-Password (≤ 128) fit in 512 bytes.
const REQUEST_BUF: usize = 512;
/// How often in-flight requests are checked for timeouts.
const SCAN_EVERY: Duration = Duration::from_millis(5);
/// An open-loop send this late counts as `behind`.
const BEHIND: Duration = Duration::from_millis(1);
/// Datagrams per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 32;
/// Largest RADIUS packet (RFC 2865 §3).
const MAX_REPLY: usize = 4096;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:1812")]
    server: SocketAddr,
    /// Shared secret.
    #[arg(long, default_value = "testing123")]
    secret: String,
    /// User-Name of every request (warm path: the server's credential cache
    /// answers after the first request).
    #[arg(long, default_value = "alice")]
    user: String,
    /// Password of `--user`.
    #[arg(long, default_value = "alice-pass-1")]
    password: String,
    /// Cold path: cycle through N distinct users `user00001`.. with
    /// passwords `pw-00001`.. (see the hidden `radius-users` subcommand).
    #[arg(long)]
    users: Option<u32>,
    /// Requests in flight (closed loop), or the cap on them (open loop).
    #[arg(long, default_value_t = 32)]
    outstanding: usize,
    /// UDP sockets to spread requests over (default: enough for at most 64
    /// requests each, and at least 4 so a multi-socket server sees several
    /// flows).
    #[arg(long)]
    sockets: Option<usize>,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop: target requests per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Milliseconds to wait for a reply before retransmitting.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions before a request is given up and counted lost.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Requests sent one at a time before measuring (fills a server's
    /// credential cache); each must be answered with an Access-Accept.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Accept replies without a Message-Authenticator (one present is
    /// still verified). For servers that predate the BlastRADIUS fixes,
    /// such as FreeRADIUS 3.2.1, which sign only the Response Authenticator.
    #[arg(long)]
    reply_ma_optional: bool,
    /// Never sleep in `ppoll`: spin on the sockets. Saves the wake-up cost
    /// per batch at the price of a full core.
    #[arg(long)]
    busy_poll: bool,
    /// Stop after this many requests; the window then ends with the last
    /// answer if that comes before `--duration` (e.g. `--users N
    /// --max-requests N` asks every user exactly once).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Accounting instead: one Accounting-Request (Start) per request, each
    /// a session of its own (`Acct-Session-Id` unique to this run), for
    /// durable-accounting throughput. Point `--server` at the accounting port.
    #[arg(long)]
    acct: bool,
}

#[derive(clap::Args)]
pub(crate) struct UsersArgs {
    /// How many users: `user00001`..
    #[arg(long)]
    count: u32,
    /// Give every user this password and ONE shared hash (cheap, for memory
    /// measurements); default: each user's own `pw-NNNNN`, hashed separately.
    #[arg(long)]
    shared_password: Option<String>,
    /// Groups of every user (TOML array items).
    #[arg(long, default_value = "netadmins")]
    group: Vec<String>,
}

fn user_name(i: u32) -> String {
    format!("user{i:05}")
}

fn user_password(i: u32) -> String {
    format!("pw-{i:05}")
}

/// Prints `[[user]]` blocks to append to a configuration.
pub(crate) fn print_users(a: &UsersArgs) -> anyhow::Result<()> {
    let groups = a
        .group
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let hashes: Vec<String> = match &a.shared_password {
        Some(pw) => {
            vec![
                portcullis::authn::hash_password(pw.as_bytes())
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ]
        }
        None => hash_all(a.count)?,
    };
    let out = io::stdout();
    let mut out = io::BufWriter::new(out.lock());
    for i in 1..=a.count {
        let hash = &hashes[if hashes.len() == 1 {
            0
        } else {
            (i - 1) as usize
        }];
        writeln!(
            out,
            "[[user]]\nname = \"{}\"\npassword_hash = \"{hash}\"\ngroups = [{groups}]\n",
            user_name(i)
        )?;
    }
    out.flush()?;
    Ok(())
}

/// argon2 hashes of `pw-00001`.. on every core.
fn hash_all(count: u32) -> anyhow::Result<Vec<String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let per = count.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let lo = t * per + 1;
                    let hi = ((t + 1) * per).min(count);
                    (lo..=hi)
                        .map(|i| portcullis::authn::hash_password(user_password(i).as_bytes()))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count as usize);
        for h in handles {
            let part = h
                .join()
                .map_err(|_| anyhow::anyhow!("hashing thread panicked"))?
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            all.extend(part);
        }
        Ok(all)
    })
}

struct Slot {
    in_flight: bool,
    authenticator: [u8; 16],
    /// Authenticator of the last request this Identifier carried that is
    /// finished (answered or given up): a reply verifying against it is a
    /// late or duplicate answer, not a bad one.
    previous: Option<[u8; 16]>,
    /// First send (closed loop) or scheduled time (open loop).
    started: Instant,
    deadline: Instant,
    tries: u32,
    len: usize,
    packet: [u8; REQUEST_BUF],
}

struct Sock {
    socket: UdpSocket,
    local_port: u16,
    slots: Vec<Slot>,
    /// Identifiers not in flight, least recently used first.
    free: VecDeque<u8>,
    in_flight: usize,
    cap: usize,
    /// Identifiers encoded but not sent yet (sent together by `flush`).
    pending: Vec<u8>,
}

struct Generator<'a> {
    args: &'a Args,
    secret: Secret,
    socks: Vec<Sock>,
    timeout: Duration,
    next_user: u32,
    /// Accounting: sessions started, and this run's random session prefix.
    next_session: u64,
    run_tag: u32,
    /// Requests started after this instant are not started (window end).
    end: Option<Instant>,
    c: Counters,
    rr: usize,
    next_scan: Instant,
    require_ma: bool,
    /// Receive buffers for `recvmmsg`.
    rbufs: Vec<[u8; MAX_REPLY]>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.outstanding >= 1, "--outstanding must be at least 1");
    ensure!(args.duration > 0.0, "--duration must be positive");
    if let Some(r) = args.rate {
        ensure!(r > 0.0, "--rate must be positive");
    }
    if args.users == Some(0) {
        bail!("--users must be at least 1");
    }
    let sockets = args
        .sockets
        .unwrap_or_else(|| args.outstanding.div_ceil(64).max(args.outstanding.min(4)));
    ensure!(sockets >= 1, "--sockets must be at least 1");
    ensure!(
        args.outstanding.div_ceil(sockets) <= IDS,
        "--outstanding {} over {sockets} sockets is more than {IDS} per socket; add --sockets",
        args.outstanding
    );
    let mut g = Generator::new(args, sockets)?;

    // Warm-up: one request at a time, each must be accepted.
    for i in 0..args.warmup {
        let now = Instant::now();
        g.start(0, now);
        g.flush();
        while g.in_flight() > 0 {
            g.wait(None)?;
        }
        if g.c.ok != 1 {
            bail!(
                "warm-up request {} to {} got no Access-Accept (rejected {}, lost {}, bad {}): check the server, --secret, --user and --password",
                i + 1,
                args.server,
                g.c.rejected,
                g.c.lost,
                g.c.bad
            );
        }
        g.c = Counters::default();
    }

    let server_drops_before = kernel_drops(args.server.port());
    let client_drops_before = g.client_drops();
    let cpu_before = cpu_time();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    g.end = Some(end);
    match args.rate {
        None => g.closed_loop(start)?,
        Some(rate) => g.open_loop(start, rate)?,
    }
    // Drain: no new requests; the in-flight ones finish or are given up.
    while g.in_flight() > 0 {
        g.wait(None)?;
    }
    let busy = Instant::now() - start;
    let generator_cpu = cpu_time().saturating_sub(cpu_before).as_secs_f64() / busy.as_secs_f64();
    let end = g.end.unwrap_or(end);
    let server_drops = match (server_drops_before, kernel_drops(args.server.port())) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let client_drops = match (client_drops_before, g.client_drops()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let info = RunInfo {
        protocol: "radius",
        server: args.server.to_string(),
        target_rate: args.rate,
        outstanding: args.outstanding,
        sockets,
        users: args.users.unwrap_or(1),
        window: end - start,
        server_kernel_drops: server_drops,
        client_kernel_drops: client_drops,
        reply_ma_required: !args.reply_ma_optional,
    };
    let mut report = Report::new(info, g.c);
    report.generator_cpu = Some(generator_cpu);
    report.print();
    Ok(())
}

impl<'a> Generator<'a> {
    fn new(args: &'a Args, sockets: usize) -> anyhow::Result<Self> {
        let bind: IpAddr = match args.server.ip() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let now = Instant::now();
        let mut socks = Vec::with_capacity(sockets);
        for i in 0..sockets {
            let s = Socket::new(
                Domain::for_address(args.server),
                Type::DGRAM,
                Some(Protocol::UDP),
            )?;
            // Room for every reply of a burst: 256 replies of a few hundred
            // bytes each, with kernel overhead, exceed the default buffer.
            let _ = s.set_recv_buffer_size(4 << 20);
            s.bind(&SocketAddr::new(bind, 0).into())?;
            s.connect(&args.server.into())
                .with_context(|| format!("connect to {}", args.server))?;
            s.set_nonblocking(true)?;
            let socket: UdpSocket = s.into();
            let local_port = socket.local_addr()?.port();
            let cap = args.outstanding / sockets + usize::from(i < args.outstanding % sockets);
            let slots = (0..IDS)
                .map(|_| Slot {
                    in_flight: false,
                    authenticator: [0; 16],
                    previous: None,
                    started: now,
                    deadline: now,
                    tries: 0,
                    len: 0,
                    packet: [0; REQUEST_BUF],
                })
                .collect();
            // Start Identifiers at a random point so back-to-back runs do
            // not reuse the previous run's (source port, Identifier) pairs
            // in the same order.
            let first: u8 = rand::random();
            let free = (0..IDS).map(|k| first.wrapping_add(k as u8)).collect();
            socks.push(Sock {
                socket,
                local_port,
                slots,
                free,
                in_flight: 0,
                cap,
                pending: Vec::with_capacity(IDS),
            });
        }
        Ok(Self {
            args,
            secret: Secret::new(args.secret.as_bytes()),
            socks,
            timeout: Duration::from_millis(args.timeout_ms),
            next_user: 0,
            next_session: 0,
            run_tag: rand::random(),
            end: None,
            c: Counters::default(),
            rr: 0,
            next_scan: now + SCAN_EVERY,
            require_ma: !args.reply_ma_optional,
            rbufs: vec![[0u8; MAX_REPLY]; BATCH],
        })
    }

    fn in_flight(&self) -> usize {
        self.socks.iter().map(|s| s.in_flight).sum()
    }

    fn client_drops(&self) -> Option<u64> {
        self.socks
            .iter()
            .map(|s| kernel_drops(s.local_port))
            .sum::<Option<u64>>()
    }

    fn all_sent_and_answered(&self) -> bool {
        self.args.max_requests.is_some_and(|m| self.c.sent >= m) && self.in_flight() == 0
    }

    fn window_open(&self, now: Instant) -> bool {
        self.end.is_none_or(|e| now < e)
    }

    /// Encodes a new request on socket `si` and queues it for `flush`;
    /// `started` is when its latency starts. False if the socket has no
    /// free slot.
    fn start(&mut self, si: usize, started: Instant) -> bool {
        let sock = &mut self.socks[si];
        if sock.in_flight >= sock.cap || self.args.max_requests.is_some_and(|m| self.c.sent >= m) {
            return false;
        }
        let Some(id) = sock.free.pop_front() else {
            return false;
        };
        let mut name = [0u8; 64];
        let mut pass = [0u8; 64];
        let (user, password): (&[u8], &[u8]) = match self.args.users {
            None => (self.args.user.as_bytes(), self.args.password.as_bytes()),
            Some(n) => {
                let i = self.next_user % n + 1;
                self.next_user = self.next_user.wrapping_add(1);
                let nl = fmt_into(&mut name, format_args!("user{i:05}"));
                let pl = fmt_into(&mut pass, format_args!("pw-{i:05}"));
                (&name[..nl], &pass[..pl])
            }
        };
        let slot = &mut sock.slots[usize::from(id)];
        rand::rng().fill(&mut slot.authenticator);
        let encoded = if self.args.acct {
            let n = self.next_session;
            self.next_session += 1;
            let mut sid = [0u8; 32];
            let sl = fmt_into(&mut sid, format_args!("{:08x}-{n}", self.run_tag));
            let r = encode_accounting_start(&mut slot.packet, id, user, &sid[..sl], &self.secret);
            // The Request Authenticator is computed over the packet.
            slot.authenticator.copy_from_slice(&slot.packet[4..20]);
            r
        } else {
            encode_access_request(
                &mut slot.packet,
                id,
                &slot.authenticator,
                user,
                password,
                &self.secret,
            )
        };
        let len = match encoded {
            Ok(n) => n,
            Err(e) => {
                // Only an over-long user or password gets here; fatal.
                eprintln!("cannot encode the request: {e}");
                std::process::exit(2);
            }
        };
        slot.len = len;
        slot.in_flight = true;
        slot.tries = 1;
        slot.started = started;
        let now = Instant::now();
        slot.deadline = now + self.timeout;
        sock.in_flight += 1;
        self.c.sent += 1;
        if self.args.rate.is_some() && started + BEHIND < now {
            self.c.behind += 1;
        }
        sock.pending.push(id);
        true
    }

    /// Sends every queued request, a batch per `sendmmsg` call.
    fn flush(&mut self) {
        for sock in &mut self.socks {
            if sock.pending.is_empty() {
                continue;
            }
            for chunk in sock.pending.chunks(BATCH) {
                let packets: [&[u8]; BATCH] = std::array::from_fn(|i| match chunk.get(i) {
                    Some(&id) => {
                        let slot = &sock.slots[usize::from(id)];
                        &slot.packet[..slot.len]
                    }
                    None => &[],
                });
                let sent = send_batch(sock.socket.as_raw_fd(), &packets[..chunk.len()]);
                // Unsent ones are recovered by the retransmission timer.
                self.c.errors += (chunk.len() - sent) as u64;
            }
            sock.pending.clear();
        }
    }

    fn finish(&mut self, si: usize, id: u8) {
        let sock = &mut self.socks[si];
        let slot = &mut sock.slots[usize::from(id)];
        slot.in_flight = false;
        slot.previous = Some(slot.authenticator);
        sock.in_flight -= 1;
        sock.free.push_back(id);
    }

    /// Handles one datagram from socket `si`; true if it finished a request.
    fn on_reply(&mut self, si: usize, bytes: &[u8], now: Instant) -> bool {
        let Ok(pkt) = decode(bytes) else {
            self.c.bad += 1;
            return false;
        };
        let id = pkt.identifier();
        let slot = &self.socks[si].slots[usize::from(id)];
        if slot.in_flight
            && verify_reply(&pkt, &slot.authenticator, &self.secret, self.require_ma).is_ok()
        {
            self.c.record(now - slot.started);
            if pkt.code() == Code::ACCESS_ACCEPT
                || self.args.acct && pkt.code() == Code::ACCOUNTING_RESPONSE
            {
                self.c.ok += 1;
                if self.end.is_some_and(|e| now < e) {
                    self.c.ok_in_window += 1;
                }
            } else {
                self.c.rejected += 1;
            }
            self.finish(si, id);
            return true;
        }
        if slot
            .previous
            .is_some_and(|a| verify_reply(&pkt, &a, &self.secret, self.require_ma).is_ok())
        {
            self.c.late += 1;
        } else {
            self.c.bad += 1;
        }
        false
    }

    /// Retransmits or gives up timed-out requests; pushes the socket of
    /// every request given up onto `freed` (the closed loop refills it).
    fn scan(&mut self, now: Instant, freed: &mut Vec<usize>) {
        for si in 0..self.socks.len() {
            if self.socks[si].in_flight == 0 {
                continue;
            }
            for id in 0..IDS {
                let sock = &mut self.socks[si];
                let slot = &mut sock.slots[id];
                if !slot.in_flight || now < slot.deadline {
                    continue;
                }
                if slot.tries <= self.args.retries {
                    slot.tries += 1;
                    slot.deadline = now + self.timeout;
                    self.c.retransmits += 1;
                    if sock.socket.send(&slot.packet[..slot.len]).is_err() {
                        self.c.errors += 1;
                    }
                } else {
                    self.c.lost += 1;
                    self.finish(si, id as u8);
                    freed.push(si);
                }
            }
        }
    }

    /// Waits for readiness until `until` (or the next timer scan), reads
    /// every ready socket dry, and scans timers when due. Returns the sockets
    /// on which a request finished, once per finished request.
    fn wait_into(&mut self, until: Option<Instant>, done: &mut Vec<usize>) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut wake = self.next_scan;
        if let Some(u) = until {
            wake = wake.min(u);
        }
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let left = if self.args.busy_poll {
            Duration::ZERO
        } else {
            wake.saturating_duration_since(now)
        };
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs that
        // outlives the call; `ts` is a valid timespec; no signal mask.
        let rc = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).context("ppoll");
            }
        }
        let mut bufs = std::mem::take(&mut self.rbufs);
        let mut lens = [0usize; BATCH];
        for (si, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            loop {
                match recv_batch(fd.fd, &mut bufs, &mut lens) {
                    Ok(n) => {
                        let now = Instant::now();
                        for (buf, &len) in bufs.iter().zip(&lens).take(n) {
                            if self.on_reply(si, &buf[..len], now) {
                                done.push(si);
                            }
                        }
                        if n < BATCH {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        // ICMP port unreachable and the like: counted, and
                        // the retransmission timer takes care of the request.
                        self.c.errors += 1;
                    }
                }
            }
        }
        self.rbufs = bufs;
        let now = Instant::now();
        if now >= self.next_scan {
            self.scan(now, done);
            self.next_scan = now + SCAN_EVERY;
        }
        Ok(())
    }

    fn wait(&mut self, until: Option<Instant>) -> anyhow::Result<()> {
        let mut done = Vec::new();
        self.wait_into(until, &mut done)
    }

    fn closed_loop(&mut self, start: Instant) -> anyhow::Result<()> {
        for si in 0..self.socks.len() {
            while self.start(si, start) {}
        }
        self.flush();
        let mut done = Vec::with_capacity(IDS);
        loop {
            let end = self.end.unwrap_or(start);
            done.clear();
            self.wait_into(Some(end), &mut done)?;
            let now = Instant::now();
            if !self.window_open(now) {
                return Ok(());
            }
            if self.all_sent_and_answered() {
                self.end = Some(now);
                return Ok(());
            }
            for &si in &done {
                self.start(si, now);
            }
            self.flush();
        }
    }

    fn open_loop(&mut self, start: Instant, rate: f64) -> anyhow::Result<()> {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = start;
        let mut done = Vec::with_capacity(IDS);
        loop {
            let now = Instant::now();
            if !self.window_open(now) {
                return Ok(());
            }
            if self.all_sent_and_answered() {
                self.end = Some(now);
                return Ok(());
            }
            // Start everything that is due, as long as a slot is free.
            let mut blocked = false;
            while next <= now && self.window_open(next) {
                if !self.start_any(next) {
                    blocked = true;
                    break;
                }
                next += interval;
            }
            self.flush();
            let until = if blocked { self.end } else { Some(next) };
            done.clear();
            self.wait_into(until, &mut done)?;
        }
    }

    /// Starts a request on the next socket with a free slot (round robin).
    fn start_any(&mut self, started: Instant) -> bool {
        let n = self.socks.len();
        for k in 0..n {
            let si = (self.rr + k) % n;
            if self.start(si, started) {
                self.rr = (si + 1) % n;
                return true;
            }
        }
        false
    }
}

/// `recvmmsg` without waiting into `bufs`; returns how many datagrams came,
/// their lengths in `lens`.
fn recv_batch(
    fd: libc::c_int,
    bufs: &mut [[u8; MAX_REPLY]],
    lens: &mut [usize; BATCH],
) -> io::Result<usize> {
    let n = bufs.len().min(BATCH);
    // SAFETY: iovec and mmsghdr are plain C structs for which all-zero
    // (null pointers, zero lengths) is a valid value.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((v, h), b) in iov.iter_mut().zip(hdrs.iter_mut()).zip(bufs.iter_mut()) {
        v.iov_base = b.as_mut_ptr().cast();
        v.iov_len = b.len();
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs[..n]` point at `n` valid iovecs, each at a distinct
    // writable buffer of `iov_len` bytes, all alive for the call; the socket
    // is connected, so no source address is asked for.
    let rc = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = rc as usize;
    for (l, h) in lens.iter_mut().zip(&hdrs).take(got) {
        *l = h.msg_len as usize;
    }
    Ok(got)
}

/// `sendmmsg` of up to `BATCH` datagrams on a connected socket; returns how
/// many were sent.
fn send_batch(fd: libc::c_int, packets: &[&[u8]]) -> usize {
    let n = packets.len().min(BATCH);
    let mut sent = 0;
    // SAFETY: as in `recv_batch`; all-zero is valid for these C structs.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((v, h), p) in iov.iter_mut().zip(hdrs.iter_mut()).zip(packets) {
        // sendmmsg only reads through iov_base.
        v.iov_base = p.as_ptr().cast_mut().cast();
        v.iov_len = p.len();
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    while sent < n {
        // SAFETY: `hdrs[sent..n]` point at valid iovecs over live packet
        // bytes; the socket is connected, so no destination is given.
        let rc = unsafe {
            libc::sendmmsg(
                fd,
                hdrs[sent..].as_mut_ptr(),
                (n - sent) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if rc <= 0 {
            let e = io::Error::last_os_error();
            if rc < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        sent += rc as usize;
    }
    sent
}

/// Formats into a stack buffer; returns the length written (truncated to fit).
fn fmt_into(buf: &mut [u8], args: std::fmt::Arguments<'_>) -> usize {
    let total = buf.len();
    let mut cur: &mut [u8] = buf;
    let _ = cur.write_fmt(args);
    total - cur.len()
}

/// An Accounting-Request Start for session `session_id` of `user` from NAS
/// 192.0.2.1, signed (RFC 2866 §3: the authenticator is computed).
fn encode_accounting_start(
    buf: &mut [u8],
    id: u8,
    user: &[u8],
    session_id: &[u8],
    secret: &Secret,
) -> Result<usize, portcullis::radius::codec::EncodeError> {
    use portcullis::radius::codec::{RequestWriter, attr};
    let mut w = RequestWriter::new(buf, Code::ACCOUNTING_REQUEST, id, &[0; 16])?;
    w.put_u32(attr::ACCT_STATUS_TYPE, 1)?;
    w.put(attr::USER_NAME, user)?;
    w.put(attr::ACCT_SESSION_ID, session_id)?;
    w.put(attr::NAS_IP_ADDRESS, &[192, 0, 2, 1])?;
    w.finish(secret)
}
