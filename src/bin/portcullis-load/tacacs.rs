//! TACACS+ logins: each is a PAP authentication then a shell authorization,
//! as a router does when someone logs in. Several logins in parallel,
//! either in single-connection mode (each slot keeps one TCP connection and
//! runs its sessions on it one after another) or with a new connection per
//! session (two connections per login). Every reply is checked: header
//! (session, sequence number, type), de-obfuscated body, status, and the
//! authorization's AV pairs against `--expect-arg`.
//!
//! One thread drives everything without an async runtime: non-blocking
//! sockets, edge-triggered epoll, one `send` per request and usually one
//! `read` per reply. The requests of a pool of logins (distinct session ids)
//! are encoded and obfuscated once, before the run, with the pads of their
//! replies, and reused in turn, so the generator's work per login is the
//! system calls and checking the two replies. A session id comes back only
//! after the whole pool has been used.
//!
//! Closed loop (default): `--connections` logins always in flight; each
//! finished login immediately starts the next in its slot. Open loop
//! (`--rate R`): a login is scheduled every 1/R s and its latency is taken
//! from its scheduled time, so a stalled server cannot hide its stall
//! (coordinated omission); `--connections` then caps the logins in flight.
//! The latency of a login is from its start (or scheduled time) to the
//! authorization reply: both exchanges, and both connects per session.
//!
//! Before the measured window: `--warmup` logins one at a time (each must
//! pass), then in single-connection mode one login on every connection (so
//! all `--connections` are open, as an appliance's would be), then
//! `--warmup-secs` of the run's own load, discarded. `--trace FILE` writes
//! every login's timeline, to tell a late generator from a slow server.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use portcullis::tacacs::codec::{
    Action, AuthenReply, AuthenService, AuthenStart, AuthenStatus, AuthenType, AuthorRequest,
    AuthorResponse, AuthorStatus, FLAG_SINGLE_CONNECT, HEADER_LEN, Header, PacketType,
    encode_packet, obfuscate,
};
use socket2::SockAddr;

use crate::report::{Counters, Report, RunInfo, cpu_time};

/// Logins whose requests are encoded before the run.
const POOL: usize = 8192;
/// Largest reply body accepted (replies to these requests are small).
const MAX_BODY: u32 = 4096;
const BUF: usize = HEADER_LEN + MAX_BODY as usize;
/// epoll events per wait.
const EVENTS: usize = 256;
/// How often in-flight logins are checked for timeouts (and failed slots
/// restarted).
const SCAN_EVERY: Duration = Duration::from_millis(10);
/// An open-loop login that starts this late counts as `behind`.
const BEHIND: Duration = Duration::from_millis(1);

#[derive(clap::Args)]
pub(crate) struct Args {
    #[arg(long, default_value = "127.0.0.1:4949")]
    server: SocketAddr,
    #[arg(long, default_value = "tacacs123")]
    key: String,
    #[arg(long, default_value = "alice")]
    user: String,
    #[arg(long, default_value = "alice-pass-1")]
    password: String,
    /// Logins in flight at once (closed loop), or the cap on them (open
    /// loop). In single-connection mode, one connection each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open a new TCP connection for every session instead of
    /// single-connection mode.
    #[arg(long)]
    per_session: bool,
    /// Open loop: target logins per second.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many logins in all (0: no limit); the window then
    /// ends with the last answer if that comes before `--duration`.
    #[arg(long, default_value_t = 0)]
    max_logins: u64,
    /// Logins done one at a time before measuring (fills a server's
    /// credential cache); each must pass.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Seconds of load at the run's own settings before measuring, whose
    /// results are discarded: on a VM the first tens of milliseconds after
    /// an idle spell run millisecond-slow on both sides (the host brings
    /// the vCPUs back up to speed), which would otherwise be most of an
    /// open-loop run's p99.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// An AV pair the authorization reply must carry, e.g. `priv-lvl=15`
    /// (repeatable); a reply without it counts as bad.
    #[arg(long)]
    expect_arg: Vec<String>,
    /// Milliseconds without a reply before a login is given up (lost).
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Write one CSV line per passed login to this file (microseconds from
    /// the start of the run: origin, actual start, authentication reply,
    /// authorization reply), and the generator's own stalls (`stall,at,us`),
    /// to tell a late generator from a slow server.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

/// Reply bodies up to this long are revealed with a pad made before the
/// run; longer ones are de-obfuscated as they come.
const AUTHEN_PAD: usize = 32;
const AUTHOR_PAD: usize = 128;

/// The two requests of one login, ready to send, and the pads of their
/// replies (sequence number 2, same session and version).
struct Login {
    authen_sid: u32,
    author_sid: u32,
    authen: Vec<u8>,
    author: Vec<u8>,
    authen_pad: [u8; AUTHEN_PAD],
    author_pad: [u8; AUTHOR_PAD],
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    /// Waiting for the authentication REPLY.
    Authen,
    /// Waiting for the authorization RESPONSE.
    Author,
}

struct Slot {
    fd: Option<OwnedFd>,
    /// Bumped per connection, so an event of a closed one is ignored.
    generation: u32,
    /// Connect not known to be complete; the request is not sent yet.
    connecting: bool,
    phase: Phase,
    login: usize,
    /// Latency origin: start (closed loop) or scheduled time (open loop).
    origin: Instant,
    deadline: Instant,
    /// Closed loop: restart at the next scan, not at once (after a failure).
    parked: bool,
    /// When the login actually started, and when its authentication reply came.
    begun: Instant,
    authen_at: Instant,
    fill: usize,
    buf: Box<[u8]>,
}

/// Why a login ended without an `ok`.
enum Failure {
    /// A reply that did not check out.
    Bad(&'static str),
    /// Socket errors, a server that closed the connection.
    Io,
}

enum Reply {
    /// Not all of it yet.
    Partial,
    Pass,
    Fail,
}

struct Gen<'a> {
    args: &'a Args,
    addr: SockAddr,
    epoll: OwnedFd,
    pool: Vec<Login>,
    next_login: usize,
    slots: Vec<Slot>,
    /// Free slots (open loop).
    idle: Vec<usize>,
    in_flight: usize,
    c: Counters,
    /// No login starts at or after this; `ok` inside it counts for the rate.
    end: Instant,
    /// Logins started in this phase, for `--max-logins`.
    started: u64,
    limit: u64,
    expect: Vec<Vec<u8>>,
    timeout: Duration,
    open_loop: bool,
    connects: u64,
    /// The first bad reply is described on stderr.
    told_bad: bool,
    /// `--trace`: the run's origin and what was seen.
    trace: Option<Trace>,
}

#[derive(Default)]
struct Trace {
    start: Option<Instant>,
    logins: Vec<[Instant; 4]>,
    /// (when, how long): the generator woke this much later than it asked.
    stalls: Vec<(Instant, Duration)>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(args.duration > 0.0, "--duration must be positive");
    if let Some(r) = args.rate {
        ensure!(r > 0.0, "--rate must be positive");
    }
    let mut g = Gen::new(args)?;

    // Warm-up: one login at a time on the first slot, each must pass.
    for i in 0..args.warmup {
        g.phase_limits(1, Instant::now() + Duration::from_secs(60));
        g.begin(0, Instant::now());
        g.drain()?;
        if g.c.ok != 1 {
            bail!(
                "warm-up login {} to {} did not pass (rejected {}, bad {}, lost {}, errors {}): check the server, --key, --user, --password and --expect-arg",
                i + 1,
                args.server,
                g.c.rejected,
                g.c.bad,
                g.c.lost,
                g.c.errors
            );
        }
        g.c = Counters::default();
    }
    if !args.per_session {
        // Single-connection mode is about connections that stay open, as an
        // appliance keeps its connection to its AAA server: open them all,
        // each with one login, before measuring. Otherwise the first
        // milliseconds of an open-loop run are a burst of connects (every
        // slot connects on first use) that dominate its tail.
        g.phase_limits(
            args.connections as u64,
            Instant::now() + Duration::from_secs(60),
        );
        for si in 0..args.connections {
            g.begin(si, Instant::now());
        }
        g.drain()?;
        if g.c.ok != args.connections as u64 {
            bail!(
                "opening {} connections to {}: {} logins passed (rejected {}, bad {}, lost {}, errors {}); the server's connection limits may be lower",
                args.connections,
                args.server,
                g.c.ok,
                g.c.rejected,
                g.c.bad,
                g.c.lost,
                g.c.errors
            );
        }
        g.c = Counters::default();
    }
    if args.warmup_secs > 0.0 {
        g.phase(Instant::now(), args.warmup_secs, 0)?;
        g.c = Counters::default();
    }
    g.connects = 0;

    let cpu_before = cpu_time();
    let start = Instant::now();
    if let Some(t) = g.trace.as_mut() {
        t.start = Some(start);
        t.logins.clear();
        t.stalls.clear();
    }
    let window_end = g.phase(start, args.duration, args.max_logins)?;
    let busy = Instant::now() - start;
    let generator_cpu = cpu_time().saturating_sub(cpu_before).as_secs_f64() / busy.as_secs_f64();
    let info = RunInfo {
        protocol: if args.per_session {
            "tacacs+ (connection per session)"
        } else {
            "tacacs+ (single-connect)"
        },
        server: args.server.to_string(),
        target_rate: args.rate,
        outstanding: args.connections,
        sockets: args.connections,
        users: 1,
        window: window_end - start,
        server_kernel_drops: None,
        client_kernel_drops: None,
        // A RADIUS notion; TACACS+ replies are checked by header and body.
        reply_ma_required: false,
    };
    let connects = g.connects;
    let mut report = Report::new(info, g.c);
    report.generator_cpu = Some(generator_cpu);
    report.connects = Some(connects);
    report.print();
    if let (Some(path), Some(t)) = (&args.trace, &g.trace) {
        write_trace(path, t).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn write_trace(path: &std::path::Path, t: &Trace) -> io::Result<()> {
    use std::io::Write;
    let Some(start) = t.start else {
        return Ok(());
    };
    let us = |i: Instant| i.saturating_duration_since(start).as_secs_f64() * 1e6;
    let mut w = io::BufWriter::new(std::fs::File::create(path)?);
    // CLOCK_MONOTONIC now, and how long ago the run started: lines up with
    // `perf --clockid monotonic` and the like.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now_ns = ts.tv_sec as f64 * 1e9 + ts.tv_nsec as f64;
    let start_ns = now_ns - start.elapsed().as_secs_f64() * 1e9;
    writeln!(w, "start_monotonic_ns,{start_ns:.0}")?;
    for l in &t.logins {
        writeln!(
            w,
            "login,{:.1},{:.1},{:.1},{:.1}",
            us(l[0]),
            us(l[1]),
            us(l[2]),
            us(l[3])
        )?;
    }
    for (at, d) in &t.stalls {
        writeln!(w, "stall,{:.1},{:.1}", us(*at), d.as_secs_f64() * 1e6)?;
    }
    w.flush()
}

impl<'a> Gen<'a> {
    fn new(args: &'a Args) -> anyhow::Result<Self> {
        let key = args.key.as_bytes();
        let flags = if args.per_session {
            0
        } else {
            FLAG_SINGLE_CONNECT
        };
        // xorshift32 has period 2^32 - 1: consecutive ids are distinct.
        let mut sid: u32 = rand::random::<u32>() | 1;
        let mut next_sid = || {
            sid ^= sid << 13;
            sid ^= sid >> 17;
            sid ^= sid << 5;
            sid
        };
        let pool_size = POOL.max(4 * args.connections);
        let mut pool = Vec::with_capacity(pool_size);
        let shell: [&[u8]; 2] = [b"service=shell", b"cmd="];
        for _ in 0..pool_size {
            let (authen_sid, author_sid) = (next_sid(), next_sid());
            // PAP START: minor version 1 (RFC 8907 §5.4.2).
            let h = Header {
                version: 0xC1,
                packet_type: PacketType::Authentication,
                seq_no: 1,
                flags,
                session_id: authen_sid,
                length: 0,
            };
            let start = AuthenStart {
                action: Action::LOGIN,
                priv_lvl: 1,
                authen_type: AuthenType::PAP,
                authen_service: AuthenService::LOGIN,
                user: args.user.as_bytes(),
                port: b"tty0",
                rem_addr: b"192.0.2.1",
                data: args.password.as_bytes(),
            };
            let mut authen = Vec::new();
            encode_packet(&h, key, &mut authen, |b| start.encode(b))
                .context("--user or --password too long")?;
            let mut authen_pad = [0u8; AUTHEN_PAD];
            obfuscate(&mut authen_pad, &Header { seq_no: 2, ..h }, key);
            let h = Header {
                version: 0xC0,
                packet_type: PacketType::Authorization,
                session_id: author_sid,
                ..h
            };
            let req = AuthorRequest {
                authen_method: 6, // TACACSPLUS
                priv_lvl: 1,
                authen_type: AuthenType::PAP,
                authen_service: AuthenService::LOGIN,
                user: args.user.as_bytes(),
                port: b"tty0",
                rem_addr: b"192.0.2.1",
                args: portcullis::tacacs::codec::Args::EMPTY,
            };
            let mut author = Vec::new();
            encode_packet(&h, key, &mut author, |b| req.encode(&shell, b))
                .context("--user too long")?;
            let mut author_pad = [0u8; AUTHOR_PAD];
            obfuscate(&mut author_pad, &Header { seq_no: 2, ..h }, key);
            pool.push(Login {
                authen_sid,
                author_sid,
                authen,
                author,
                authen_pad,
                author_pad,
            });
        }
        // SAFETY: plain system call; the result is checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: `ep` is a fresh descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let now = Instant::now();
        let slots = (0..args.connections)
            .map(|_| Slot {
                fd: None,
                generation: 0,
                connecting: false,
                phase: Phase::Idle,
                login: 0,
                origin: now,
                deadline: now,
                parked: false,
                begun: now,
                authen_at: now,
                fill: 0,
                buf: vec![0u8; BUF].into_boxed_slice(),
            })
            .collect();
        Ok(Self {
            args,
            addr: SockAddr::from(args.server),
            epoll,
            pool,
            next_login: 0,
            slots,
            idle: (0..args.connections).rev().collect(),
            in_flight: 0,
            c: Counters::default(),
            end: now,
            started: 0,
            limit: 0,
            expect: args
                .expect_arg
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect(),
            timeout: Duration::from_millis(args.timeout_ms),
            open_loop: args.rate.is_some(),
            connects: 0,
            told_bad: false,
            trace: args.trace.as_ref().map(|_| Trace::default()),
        })
    }

    /// Runs the load for `secs` from `start` (or until `limit` logins),
    /// then lets the logins in flight finish; returns when starting stopped.
    fn phase(&mut self, start: Instant, secs: f64, limit: u64) -> anyhow::Result<Instant> {
        self.phase_limits(limit, start + Duration::from_secs_f64(secs));
        // Every slot is free between phases.
        self.idle = (0..self.args.connections).rev().collect();
        match self.args.rate {
            None => self.closed_loop(start)?,
            Some(rate) => self.open_loop(start, rate)?,
        }
        let window_end = self.end;
        self.drain()?;
        Ok(window_end)
    }

    /// Nothing new starts; the logins in flight finish or time out.
    fn drain(&mut self) -> anyhow::Result<()> {
        while self.in_flight > 0 {
            self.wait(Some(Instant::now() + SCAN_EVERY))?;
            self.scan(Instant::now());
        }
        Ok(())
    }

    fn phase_limits(&mut self, limit: u64, end: Instant) {
        self.limit = limit;
        self.started = 0;
        self.end = end;
    }

    fn may_start(&self, now: Instant) -> bool {
        now < self.end && (self.limit == 0 || self.started < self.limit)
    }

    /// The head of both loops: false once the run is over (time up, or the
    /// login limit reached and answered); otherwise runs the periodic scan
    /// when it is due.
    fn tick(&mut self, now: Instant, next_scan: &mut Instant) -> bool {
        if now >= self.end {
            return false;
        }
        if self.limit != 0 && self.started >= self.limit && self.in_flight == 0 {
            self.end = now;
            return false;
        }
        if now >= *next_scan {
            self.scan(now);
            *next_scan = now + SCAN_EVERY;
        }
        true
    }

    fn closed_loop(&mut self, start: Instant) -> anyhow::Result<()> {
        self.idle.clear();
        for si in 0..self.slots.len() {
            if self.may_start(start) {
                self.begin(si, start);
            } else {
                self.idle.push(si);
            }
        }
        let mut next_scan = start + SCAN_EVERY;
        loop {
            let now = Instant::now();
            if !self.tick(now, &mut next_scan) {
                return Ok(());
            }
            self.wait(Some(next_scan.min(self.end)))?;
        }
    }

    fn open_loop(&mut self, start: Instant, rate: f64) -> anyhow::Result<()> {
        // Wake-ups on time: the default timer slack is 50 µs.
        // SAFETY: prctl with integer arguments; failure only costs precision.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut next = start;
        let mut next_scan = start + SCAN_EVERY;
        loop {
            let now = Instant::now();
            if !self.tick(now, &mut next_scan) {
                return Ok(());
            }
            let mut blocked = false;
            while next <= now && self.may_start(next) {
                let Some(si) = self.idle.pop() else {
                    blocked = true;
                    break;
                };
                self.begin(si, next);
                next += interval;
            }
            let until = if blocked { next_scan } else { next };
            self.wait(Some(until.min(next_scan).min(self.end)))?;
        }
    }

    /// Starts a login in slot `si` with latency origin `origin`.
    fn begin(&mut self, si: usize, origin: Instant) {
        let login = self.next_login;
        self.next_login = (self.next_login + 1) % self.pool.len();
        self.started += 1;
        self.c.sent += 1;
        self.in_flight += 1;
        let now = Instant::now();
        if self.open_loop && origin + BEHIND < now {
            self.c.behind += 1;
        }
        let s = &mut self.slots[si];
        s.login = login;
        s.origin = origin;
        s.deadline = now + self.timeout;
        s.parked = false;
        s.begun = now;
        s.phase = Phase::Authen;
        if let Err(f) = self.send(si) {
            self.finish(si, Err(f));
        }
    }

    /// Sends the request of the slot's phase, connecting first if needed.
    fn send(&mut self, si: usize) -> Result<(), Failure> {
        if self.slots[si].fd.is_none() {
            self.connect(si)?;
        }
        let s = &mut self.slots[si];
        let login = &self.pool[s.login];
        let pkt = match s.phase {
            Phase::Authen => &login.authen,
            Phase::Author => &login.author,
            Phase::Idle => return Ok(()),
        };
        let fd = s.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        s.fill = 0;
        // SAFETY: `pkt` is valid for `pkt.len()` bytes for the call.
        let n = unsafe { libc::send(fd, pkt.as_ptr().cast(), pkt.len(), libc::MSG_NOSIGNAL) };
        if n == pkt.len() as isize {
            s.connecting = false;
            return Ok(());
        }
        if n < 0 && s.connecting && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
            // Not connected yet: EPOLLOUT sends it.
            return Ok(());
        }
        // A short write of under 100 bytes on a fresh or idle connection
        // does not happen; treat it like an error.
        Err(Failure::Io)
    }

    fn connect(&mut self, si: usize) -> Result<(), Failure> {
        let family = match self.args.server {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        };
        // SAFETY: plain system call; the result is checked.
        let raw = unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(Failure::Io);
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if !self.args.per_session {
            // Several requests per connection: never wait for Nagle. (Per
            // session there is one request per connection: no effect.)
            let one: libc::c_int = 1;
            // SAFETY: `one` is a c_int valid for the call.
            unsafe {
                libc::setsockopt(
                    raw,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&raw const one).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        // SAFETY: `addr` is a valid socket address of `len()` bytes.
        let rc = unsafe { libc::connect(raw, self.addr.as_ptr().cast(), self.addr.len()) };
        if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(Failure::Io);
        }
        let s = &mut self.slots[si];
        s.generation = s.generation.wrapping_add(1);
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: ((si as u64) << 32) | u64::from(s.generation),
        };
        // SAFETY: both descriptors are open; `ev` is valid for the call.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, raw, &mut ev) } < 0
        {
            return Err(Failure::Io);
        }
        s.fd = Some(fd);
        s.connecting = true;
        self.connects += 1;
        Ok(())
    }

    /// Waits for events until `until` and handles them.
    fn wait(&mut self, until: Option<Instant>) -> anyhow::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        let ts = until.map(|u| {
            let d = u.saturating_duration_since(Instant::now());
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        let asked = until.map(|u| u.max(Instant::now()));
        // SAFETY: `events` has room for EVENTS entries; `tsp` is null or
        // points at a live timespec.
        let n = unsafe {
            libc::epoll_pwait2(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                EVENTS as libc::c_int,
                tsp,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e).context("epoll_pwait2");
        }
        if let (Some(t), Some(asked)) = (self.trace.as_mut(), asked) {
            let woke = Instant::now();
            // Woken by events before the deadline is not a stall; past it, by more than this, is.
            if woke > asked + Duration::from_micros(200) {
                t.stalls.push((woke, woke - asked));
            }
        }
        for ev in &events[..n as usize] {
            let si = (ev.u64 >> 32) as usize;
            let generation = ev.u64 as u32;
            let Some(s) = self.slots.get(si) else {
                continue;
            };
            if s.generation != generation || s.fd.is_none() || s.phase == Phase::Idle {
                continue;
            }
            self.event(si, ev.events);
        }
        Ok(())
    }

    fn event(&mut self, si: usize, events: u32) {
        if self.slots[si].connecting {
            if events & libc::EPOLLOUT as u32 != 0 {
                self.slots[si].connecting = false;
                if let Err(f) = self.send(si) {
                    self.finish(si, Err(f));
                    return;
                }
            } else if events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                self.finish(si, Err(Failure::Io));
                return;
            }
        }
        if events & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0
        {
            return;
        }
        match self.read_reply(si) {
            Ok(Reply::Partial) => {}
            Ok(Reply::Fail) => self.finish(si, Ok(false)),
            Ok(Reply::Pass) => match self.slots[si].phase {
                Phase::Authen => {
                    let s = &mut self.slots[si];
                    s.phase = Phase::Author;
                    s.authen_at = Instant::now();
                    if self.args.per_session {
                        // The authentication session is over: its connection too.
                        s.fd = None;
                    }
                    if let Err(f) = self.send(si) {
                        self.finish(si, Err(f));
                    }
                }
                _ => self.finish(si, Ok(true)),
            },
            Err(f) => self.finish(si, Err(f)),
        }
    }

    /// Reads what is there and checks a complete reply.
    fn read_reply(&mut self, si: usize) -> Result<Reply, Failure> {
        let s = &mut self.slots[si];
        let fd = s.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        loop {
            let room = &mut s.buf[s.fill..];
            if room.is_empty() {
                return Err(Failure::Bad("reply longer than expected"));
            }
            // SAFETY: `room` is writable for `room.len()` bytes.
            let n = unsafe { libc::read(fd, room.as_mut_ptr().cast(), room.len()) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                    break;
                }
                return Err(Failure::Io);
            }
            if n == 0 {
                // Closed before (all of) the reply.
                return Err(Failure::Io);
            }
            let full = n as usize == room.len();
            s.fill += n as usize;
            // Edge-triggered: a read that did not fill the room took all
            // there was.
            if !full {
                break;
            }
        }
        let buf = &mut s.buf[..s.fill];
        let h = match Header::check(buf, MAX_BODY) {
            Ok(None) => return Ok(Reply::Partial),
            Ok(Some((h, total))) if total == buf.len() => h,
            Ok(Some(_)) => return Err(Failure::Bad("bytes after the reply")),
            Err(_) => return Err(Failure::Bad("reply header does not parse")),
        };
        let login = &self.pool[s.login];
        let (sid, ty, version, pad) = match s.phase {
            Phase::Authen => (
                login.authen_sid,
                PacketType::Authentication,
                0xC1,
                &login.authen_pad[..],
            ),
            _ => (
                login.author_sid,
                PacketType::Authorization,
                0xC0,
                &login.author_pad[..],
            ),
        };
        if h.session_id != sid || h.seq_no != 2 || h.packet_type != ty {
            return Err(Failure::Bad(
                "reply of another session, sequence number or type",
            ));
        }
        if h.unencrypted() {
            return Err(Failure::Bad("reply sent unencrypted"));
        }
        let body = &mut buf[HEADER_LEN..];
        if h.version == version && body.len() <= pad.len() {
            for (b, p) in body.iter_mut().zip(pad) {
                *b ^= p;
            }
        } else {
            obfuscate(body, &h, self.args.key.as_bytes());
        }
        match s.phase {
            Phase::Authen => {
                let r = AuthenReply::decode(body)
                    .map_err(|_| Failure::Bad("authentication reply does not decode"))?;
                match r.status {
                    AuthenStatus::PASS => Ok(Reply::Pass),
                    AuthenStatus::FAIL => Ok(Reply::Fail),
                    _ => Err(Failure::Bad("authentication reply neither PASS nor FAIL")),
                }
            }
            _ => {
                let r = AuthorResponse::decode(body)
                    .map_err(|_| Failure::Bad("authorization response does not decode"))?;
                match r.status {
                    AuthorStatus::PASS_ADD | AuthorStatus::PASS_REPL => {
                        for want in &self.expect {
                            if !r.args.iter().any(|a| a == want.as_slice()) {
                                return Err(Failure::Bad(
                                    "authorization response lacks an --expect-arg",
                                ));
                            }
                        }
                        Ok(Reply::Pass)
                    }
                    AuthorStatus::FAIL => Ok(Reply::Fail),
                    _ => Err(Failure::Bad("authorization response neither PASS nor FAIL")),
                }
            }
        }
    }

    /// Ends the login in slot `si`: `Ok(true)` passed, `Ok(false)` refused.
    fn finish(&mut self, si: usize, result: Result<bool, Failure>) {
        let now = Instant::now();
        let s = &mut self.slots[si];
        let mut retry_later = false;
        match result {
            Ok(true) => {
                self.c.ok += 1;
                if now < self.end {
                    self.c.ok_in_window += 1;
                }
                self.c.record(now - s.origin);
                if let Some(t) = self.trace.as_mut() {
                    t.logins.push([s.origin, s.begun, s.authen_at, now]);
                }
            }
            Ok(false) => self.c.rejected += 1,
            Err(Failure::Bad(why)) => {
                self.c.bad += 1;
                if !self.told_bad {
                    self.told_bad = true;
                    eprintln!("bad reply ({:?} phase): {why}", s.phase);
                }
                s.fd = None;
                retry_later = true;
            }
            Err(Failure::Io) => {
                self.c.errors += 1;
                s.fd = None;
                retry_later = true;
            }
        }
        if self.args.per_session {
            s.fd = None;
        }
        s.phase = Phase::Idle;
        s.connecting = false;
        self.in_flight -= 1;
        if self.open_loop {
            self.idle.push(si);
        } else if retry_later {
            // Restarted by the next scan, so a dead server is not spun on.
            s.parked = true;
        } else if self.may_start(now) {
            self.begin(si, now);
        } else {
            self.idle.push(si);
        }
    }

    /// Gives up logins past their deadline; restarts parked slots.
    fn scan(&mut self, now: Instant) {
        for si in 0..self.slots.len() {
            let s = &mut self.slots[si];
            if s.phase != Phase::Idle && s.deadline <= now {
                self.c.lost += 1;
                s.fd = None;
                s.phase = Phase::Idle;
                s.connecting = false;
                s.parked = !self.open_loop;
                self.in_flight -= 1;
                if self.open_loop {
                    self.idle.push(si);
                }
            }
            let s = &mut self.slots[si];
            if s.parked && s.phase == Phase::Idle {
                s.parked = false;
                if self.may_start(now) {
                    self.begin(si, now);
                } else {
                    self.idle.push(si);
                }
            }
        }
    }
}
