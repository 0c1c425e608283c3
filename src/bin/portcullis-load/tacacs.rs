//! TACACS+ logins: each is a PAP authentication then a shell authorization,
//! as a router does when someone logs in. Several connections in parallel,
//! either in single-connection mode (sessions reuse one TCP connection) or
//! with a new connection per session. Every reply is checked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis::tacacs::codec::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::{Counters, Report, RunInfo};

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
    /// Logins in flight at once (one connection each).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open a new TCP connection for every session instead of
    /// single-connection mode.
    #[arg(long)]
    per_session: bool,
    /// Stop each worker after this many logins (0: no limit).
    #[arg(long, default_value_t = 0)]
    max_logins: u64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
        let mut tasks = Vec::new();
        for w in 0..args.connections {
            let a = Worker {
                server: args.server,
                key: args.key.clone().into_bytes(),
                user: args.user.clone().into_bytes(),
                password: args.password.clone().into_bytes(),
                per_session: args.per_session,
                session: (w as u32).wrapping_mul(0x9E37_79B9) | 1,
            };
            let max = args.max_logins;
            tasks.push(tokio::spawn(a.run(deadline, max)));
        }
        let mut c = Counters::default();
        for t in tasks {
            let w = t.await?;
            c.sent += w.sent;
            c.ok += w.ok;
            c.ok_in_window += w.ok;
            c.rejected += w.rejected;
            c.bad += w.bad;
            c.errors += w.errors;
            for l in w.latencies {
                c.record(l);
            }
        }
        let report = Report::new(
            RunInfo {
                protocol: if args.per_session {
                    "tacacs+ (connection per session)"
                } else {
                    "tacacs+ (single-connect)"
                },
                server: args.server.to_string(),
                target_rate: None,
                outstanding: args.connections,
                sockets: args.connections,
                users: 1,
                window: Duration::from_secs_f64(args.duration),
                server_kernel_drops: None,
                client_kernel_drops: None,
                // A RADIUS notion; TACACS+ replies are checked by their header and body.
                reply_ma_required: false,
            },
            c,
        );
        report.print();
        anyhow::Ok(())
    })
}

struct Worker {
    server: SocketAddr,
    key: Vec<u8>,
    user: Vec<u8>,
    password: Vec<u8>,
    per_session: bool,
    session: u32,
}

#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    rejected: u64,
    bad: u64,
    errors: u64,
    latencies: Vec<Duration>,
}

impl Worker {
    async fn run(mut self, deadline: Instant, max: u64) -> Tally {
        let mut t = Tally::default();
        let mut conn: Option<TcpStream> = None;
        let mut out = Vec::with_capacity(256);
        let mut inbuf = Vec::with_capacity(1024);
        while Instant::now() < deadline && (max == 0 || t.sent < max) {
            t.sent += 1;
            let start = Instant::now();
            match self.login(&mut conn, &mut out, &mut inbuf).await {
                Ok(true) => {
                    t.ok += 1;
                    t.latencies.push(start.elapsed());
                }
                Ok(false) => t.rejected += 1,
                Err(Failure::Bad) => {
                    t.bad += 1;
                    conn = None;
                }
                Err(Failure::Io) => {
                    t.errors += 1;
                    conn = None;
                }
            }
        }
        t
    }

    fn next_session(&mut self) -> u32 {
        // xorshift: distinct, cheap session ids per worker.
        self.session ^= self.session << 13;
        self.session ^= self.session >> 17;
        self.session ^= self.session << 5;
        self.session
    }

    async fn login(
        &mut self,
        conn: &mut Option<TcpStream>,
        out: &mut Vec<u8>,
        inbuf: &mut Vec<u8>,
    ) -> Result<bool, Failure> {
        let flags = if self.per_session {
            0
        } else {
            FLAG_SINGLE_CONNECT
        };
        // Authentication: PAP START (minor version 1 per RFC 8907 §5.4.2).
        let h = Header {
            version: 0xC1,
            packet_type: PacketType::Authentication,
            seq_no: 1,
            flags,
            session_id: self.next_session(),
            length: 0,
        };
        let start = AuthenStart {
            action: Action::LOGIN,
            priv_lvl: 1,
            authen_type: AuthenType::PAP,
            authen_service: AuthenService::LOGIN,
            user: &self.user,
            port: b"tty0",
            rem_addr: b"192.0.2.1",
            data: &self.password,
        };
        encode_packet(&h, &self.key, out, |b| start.encode(b)).map_err(|_| Failure::Bad)?;
        let body = self.exchange(conn, out, inbuf, &h).await?;
        let passed =
            AuthenReply::decode(body).map_err(|_| Failure::Bad)?.status == AuthenStatus::PASS;
        if self.per_session {
            *conn = None;
        }
        if !passed {
            return Ok(false);
        }
        // Authorization: shell start.
        let h = Header {
            version: 0xC0,
            packet_type: PacketType::Authorization,
            seq_no: 1,
            flags,
            session_id: self.next_session(),
            length: 0,
        };
        let req = AuthorRequest {
            authen_method: 6,
            priv_lvl: 1,
            authen_type: AuthenType::PAP,
            authen_service: AuthenService::LOGIN,
            user: &self.user,
            port: b"tty0",
            rem_addr: b"192.0.2.1",
            args: portcullis::tacacs::codec::Args::EMPTY,
        };
        let args: [&[u8]; 2] = [b"service=shell", b"cmd="];
        encode_packet(&h, &self.key, out, |b| req.encode(&args, b)).map_err(|_| Failure::Bad)?;
        let body = self.exchange(conn, out, inbuf, &h).await?;
        let ok = AuthorResponse::decode(body)
            .map_err(|_| Failure::Bad)?
            .status
            == AuthorStatus::PASS_ADD;
        if self.per_session {
            *conn = None;
        }
        Ok(ok)
    }

    /// Sends `out` and reads one reply to `req`, de-obfuscated in `inbuf`;
    /// returns its body.
    async fn exchange<'b>(
        &self,
        conn: &mut Option<TcpStream>,
        out: &[u8],
        inbuf: &'b mut Vec<u8>,
        req: &Header,
    ) -> Result<&'b [u8], Failure> {
        if conn.is_none() {
            let s = TcpStream::connect(self.server)
                .await
                .map_err(|_| Failure::Io)?;
            let _ = s.set_nodelay(true);
            *conn = Some(s);
        }
        let s = conn.as_mut().expect("connected above");
        s.write_all(out).await.map_err(|_| Failure::Io)?;
        inbuf.clear();
        inbuf.resize(HEADER_LEN, 0);
        s.read_exact(&mut inbuf[..HEADER_LEN])
            .await
            .map_err(|_| Failure::Io)?;
        let h = Header::parse(inbuf, 1 << 16).map_err(|_| Failure::Bad)?;
        if h.session_id != req.session_id || h.seq_no != req.seq_no + 1 {
            return Err(Failure::Bad);
        }
        inbuf.resize(HEADER_LEN + h.length as usize, 0);
        s.read_exact(&mut inbuf[HEADER_LEN..])
            .await
            .map_err(|_| Failure::Io)?;
        let body = &mut inbuf[HEADER_LEN..];
        if !h.unencrypted() {
            obfuscate(body, &h, &self.key);
        }
        Ok(&inbuf[HEADER_LEN..])
    }
}

enum Failure {
    Bad,
    Io,
}
