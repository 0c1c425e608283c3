//! TACACS+ requests to answers: the authentication conversation (ASCII
//! login with prompts, PAP, CHAP, MS-CHAPv1/v2, enable), authorization from
//! the policy table with per-role command rules, and accounting. The engine
//! hands in de-obfuscated bodies and writes what this puts in `out`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest, Sha256};

use tracing::{debug, info};

use super::codec::*;
use super::metrics::TacacsMetrics;
use crate::accounting::{AccountingSink, Attributes, DedupKey, Protocol, Record, Status};
use crate::authn::{AuthnError, Credentials, Login, chap, mschap};
use crate::client::Client;
use crate::clock::Clock;
use crate::config::Config;
use crate::policy::{Action as CmdAction, ClientCtx, CommandVerdict, Grant, MAX_WORDS};

/// Sessions of one connection still in an authentication conversation.
/// Bounded: a client cannot open unlimited half-finished logins.
const MAX_OPEN_SESSIONS: usize = 64;
/// ASCII prompts answered before a login is given up.
const MAX_ASCII_ROUNDS: u8 = 6;
/// What the terminal reads when authorization is refused for who the
/// person is (unknown, disabled, no role), whatever the reason.
const NOT_AUTHORIZED: &str = "Authorization failed";

#[derive(Debug)]
enum Waiting {
    User { start: StartInfo },
    Pass { start: StartInfo, user: String },
}

#[derive(Debug, Clone, Copy)]
struct StartInfo {
    service: AuthenService,
    priv_lvl: u8,
    rounds: u8,
}

#[derive(Debug)]
struct Session {
    /// The sequence number the client's next packet must carry.
    next_seq: u8,
    waiting: Waiting,
}

/// What one connection remembers between packets.
#[derive(Debug)]
pub struct Conn {
    peer: SocketAddr,
    sessions: HashMap<u32, Session>,
}

impl Conn {
    pub fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            sessions: HashMap::new(),
        }
    }

    /// Whether an authentication conversation is open (more CONTINUEs due).
    pub fn in_login(&self) -> bool {
        !self.sessions.is_empty()
    }
}

/// After a reply: whether the session it belonged to is over.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds a reply; the session is finished.
    Done,
    /// `out` holds a reply; the session continues (more CONTINUEs expected).
    More,
    /// Nothing to send; close the connection (counted under this reason).
    Close(CloseReason),
}

/// Why the service gives up on a connection instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A body that does not decode. After de-obfuscation that almost always
    /// means the client and we hold different keys.
    Body(DecodeError),
    /// A packet out of its session's sequence (RFC 8907 §4.1).
    BadSequence,
    /// A reply field too long for its length field.
    EncodeFailed,
    /// argon2 pool and queue full: shed.
    Argon2Overloaded,
}

impl CloseReason {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Body(e) => e.label(),
            Self::BadSequence => "bad_sequence",
            Self::EncodeFailed => "encode_failed",
            Self::Argon2Overloaded => "argon2_overloaded",
        }
    }
}

/// What answering TACACS+ takes; the configuration comes with each packet.
#[derive(Debug)]
pub struct Service {
    credentials: Credentials,
    /// Without one, accounting is answered ERROR (the appliance keeps it).
    accounting: Option<Arc<dyn AccountingSink>>,
    metrics: TacacsMetrics,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(
        credentials: Credentials,
        accounting: Option<Arc<dyn AccountingSink>>,
        metrics: TacacsMetrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            credentials,
            accounting,
            metrics,
            clock,
        }
    }

    pub fn metrics(&self) -> &TacacsMetrics {
        &self.metrics
    }

    /// Answers one de-obfuscated packet. `reply_flags` carries the
    /// single-connect flag when negotiated.
    #[allow(clippy::too_many_arguments)]
    pub async fn handle(
        &self,
        config: &Config,
        client: &Client,
        key: &[u8],
        conn: &mut Conn,
        h: &Header,
        body: &[u8],
        reply_flags: u8,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let Ok(rh) = h.reply(reply_flags | (h.flags & FLAG_UNENCRYPTED)) else {
            return Outcome::Close(CloseReason::BadSequence);
        };
        match h.packet_type {
            PacketType::Authentication => {
                self.authentication(config, client, key, conn, h, &rh, body, out)
                    .await
            }
            PacketType::Authorization => {
                if h.seq_no != 1 {
                    return Outcome::Close(CloseReason::BadSequence);
                }
                match AuthorRequest::decode(body) {
                    Ok(req) => {
                        self.authorization(config, client, key, &rh, &req, out)
                            .await
                    }
                    Err(e) => Outcome::Close(CloseReason::Body(e)),
                }
            }
            PacketType::Accounting => {
                if h.seq_no != 1 {
                    return Outcome::Close(CloseReason::BadSequence);
                }
                match AcctRequest::decode(body) {
                    Ok(req) => {
                        self.accounting(client, key, conn.peer, &rh, &req, body, out)
                            .await
                    }
                    Err(e) => Outcome::Close(CloseReason::Body(e)),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn authentication(
        &self,
        config: &Config,
        client: &Client,
        key: &[u8],
        conn: &mut Conn,
        h: &Header,
        rh: &Header,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Outcome {
        if h.seq_no == 1 {
            // A new session; a START for one already open is a protocol error.
            if conn.sessions.remove(&h.session_id).is_some() {
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::ERROR,
                    0,
                    b"session already open",
                    out,
                );
            }
            let start = match AuthenStart::decode(body) {
                Ok(s) => s,
                Err(e) => return Outcome::Close(CloseReason::Body(e)),
            };
            return self
                .start(config, client, key, conn, h, rh, &start, out)
                .await;
        }
        let Some(session) = conn.sessions.remove(&h.session_id) else {
            return self.authen_reply(
                client,
                key,
                rh,
                AuthenStatus::ERROR,
                0,
                b"no such session",
                out,
            );
        };
        if session.next_seq != h.seq_no {
            return Outcome::Close(CloseReason::BadSequence);
        }
        let cont = match AuthenContinue::decode(body) {
            Ok(c) => c,
            Err(e) => return Outcome::Close(CloseReason::Body(e)),
        };
        if cont.aborted() {
            self.metrics
                .request(&client.name, "authentication", "abort");
            return self.authen_reply(client, key, rh, AuthenStatus::FAIL, 0, b"aborted", out);
        }
        match session.waiting {
            Waiting::User { mut start } => {
                let user = String::from_utf8_lossy(cont.user_msg).trim().to_string();
                start.rounds += 1;
                if user.is_empty() {
                    if start.rounds >= MAX_ASCII_ROUNDS {
                        return self.authen_reply(
                            client,
                            key,
                            rh,
                            AuthenStatus::FAIL,
                            0,
                            b"no user name",
                            out,
                        );
                    }
                    let prompt = config.tacacs.username_prompt.as_bytes().to_vec();
                    return self.ask(
                        conn,
                        client,
                        key,
                        h,
                        rh,
                        Waiting::User { start },
                        &prompt,
                        0,
                        out,
                    );
                }
                let prompt = config.tacacs.password_prompt.as_bytes().to_vec();
                self.ask(
                    conn,
                    client,
                    key,
                    h,
                    rh,
                    Waiting::Pass { start, user },
                    &prompt,
                    REPLY_FLAG_NOECHO,
                    out,
                )
            }
            Waiting::Pass { start, user } => {
                let result = self.check_password(config, &user, cont.user_msg).await;
                self.finish_login(
                    config,
                    client,
                    key,
                    rh,
                    &user,
                    start.service,
                    start.priv_lvl,
                    result,
                    "ascii",
                    out,
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        config: &Config,
        client: &Client,
        key: &[u8],
        conn: &mut Conn,
        h: &Header,
        rh: &Header,
        s: &AuthenStart<'_>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        match s.action {
            Action::LOGIN => {}
            Action::CHPASS => {
                self.metrics
                    .request(&client.name, "authentication", "chpass_refused");
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::FAIL,
                    0,
                    b"Password changes are not supported here; ask your administrator.",
                    out,
                );
            }
            _ => {
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::FAIL,
                    0,
                    b"unsupported action",
                    out,
                );
            }
        }
        let user = String::from_utf8_lossy(s.user).into_owned();
        let start = StartInfo {
            service: s.authen_service,
            priv_lvl: s.priv_lvl,
            rounds: 0,
        };
        let (result, method) = match s.authen_type {
            AuthenType::ASCII => {
                return if user.is_empty() {
                    let mut prompt = Vec::new();
                    if let Some(b) = &config.tacacs.banner {
                        prompt.extend_from_slice(b.as_bytes());
                        prompt.extend_from_slice(b"\n");
                    }
                    prompt.extend_from_slice(config.tacacs.username_prompt.as_bytes());
                    self.ask(
                        conn,
                        client,
                        key,
                        h,
                        rh,
                        Waiting::User { start },
                        &prompt,
                        0,
                        out,
                    )
                } else {
                    let prompt = config.tacacs.password_prompt.as_bytes().to_vec();
                    self.ask(
                        conn,
                        client,
                        key,
                        h,
                        rh,
                        Waiting::Pass { start, user },
                        &prompt,
                        REPLY_FLAG_NOECHO,
                        out,
                    )
                };
            }
            AuthenType::PAP => {
                let result = self.check_password(config, &user, s.data).await;
                (result, "pap")
            }
            AuthenType::CHAP => {
                // data = PPP id (1) || challenge || response (16), §5.4.2.3.
                let clear = self.cleartext(config, &user);
                let result = match (clear, s.data.len()) {
                    (Err(e), _) => Err(e),
                    (Ok(_), n) if n < 1 + 16 + 1 => Err(AuthnError::BadPassword),
                    (Ok((u, clear)), n) => {
                        let (challenge, response) = s.data[1..].split_at(n - 1 - 16);
                        let response = response.try_into().expect("length checked");
                        if chap::verify(s.data[0], response, challenge, clear.expose()) {
                            Ok(Login::Local(u))
                        } else {
                            Err(AuthnError::BadPassword)
                        }
                    }
                };
                (result, "chap")
            }
            AuthenType::MSCHAP => {
                // data = id (1) || challenge (8) || response (49: LM 24, NT 24, flags), §5.4.2.4.
                let clear = self.cleartext(config, &user);
                let result = match clear {
                    Err(e) => Err(e),
                    Ok((u, clear)) if s.data.len() == 1 + 8 + 49 => {
                        let challenge: &[u8; 8] = s.data[1..9].try_into().expect("length checked");
                        let nt: &[u8; 24] =
                            s.data[9 + 24..9 + 48].try_into().expect("length checked");
                        let nt_hash = mschap::nt_password_hash(clear.expose());
                        if mschap::mschapv1_verify_nt_response(challenge, &nt_hash, nt) {
                            Ok(Login::Local(u))
                        } else {
                            Err(AuthnError::BadPassword)
                        }
                    }
                    Ok(_) => Err(AuthnError::BadPassword),
                };
                (result, "mschap")
            }
            AuthenType::MSCHAPV2 => {
                // data = id (1) || challenge (16) || response (49: peer challenge 16,
                // reserved 8, NT 24, flags), §5.4.2.5.
                let clear = self.cleartext(config, &user);
                let result = match clear {
                    Err(e) => Err(e),
                    Ok((u, clear)) if s.data.len() == 1 + 16 + 49 => {
                        let mut response = [0u8; 50];
                        response[0] = s.data[0];
                        response[2..50].copy_from_slice(&s.data[17..17 + 48]);
                        match mschap::mschapv2_verify(
                            s.user,
                            clear.expose(),
                            &s.data[1..17],
                            &response,
                        ) {
                            Ok(Some(_)) => Ok(Login::Local(u)),
                            _ => Err(AuthnError::BadPassword),
                        }
                    }
                    Ok(_) => Err(AuthnError::BadPassword),
                };
                (result, "mschapv2")
            }
            _ => {
                self.metrics
                    .request(&client.name, "authentication", "unsupported_type");
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::FAIL,
                    0,
                    b"unsupported authentication type",
                    out,
                );
            }
        };
        self.finish_login(
            config,
            client,
            key,
            rh,
            &user,
            s.authen_service,
            s.priv_lvl,
            result,
            method,
            out,
        )
    }

    /// The stored cleartext-equivalent CHAP and MS-CHAP need (local users
    /// who opted in; refused with the reason for directory users).
    fn cleartext<'c>(
        &self,
        config: &'c Config,
        user: &str,
    ) -> Result<(&'c crate::authn::LocalUser, &'c crate::secret::Secret), AuthnError> {
        self.credentials
            .cleartext(&config.users, &config.directories, user)
    }

    async fn check_password<'c>(
        &self,
        config: &'c Config,
        user: &str,
        password: &[u8],
    ) -> Result<Login<'c>, AuthnError> {
        self.credentials
            .login(
                &config.users,
                &config.directories,
                &config.policy,
                user,
                password,
            )
            .await
    }

    /// Ends a login: policy decides, and an enable request passes only when
    /// the role reaches the requested privilege level.
    #[allow(clippy::too_many_arguments)]
    fn finish_login(
        &self,
        config: &Config,
        client: &Client,
        key: &[u8],
        rh: &Header,
        user: &str,
        service: AuthenService,
        priv_lvl: u8,
        result: Result<Login<'_>, AuthnError>,
        method: &'static str,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let u = match result {
            Ok(u) => u,
            Err(AuthnError::Overloaded) => return Outcome::Close(CloseReason::Argon2Overloaded),
            Err(e) => {
                info!(user, client = %client.name, reason = %e, method, "tacacs+ login refused");
                self.metrics
                    .request(&client.name, "authentication", e.label());
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::FAIL,
                    0,
                    b"Authentication failed",
                    out,
                );
            }
        };
        let grant = match config
            .policy
            .decide(&u.identity(), &ClientCtx { name: &client.name })
        {
            Ok(g) => g,
            Err(r) => {
                info!(user, client = %client.name, reason = %r, method, source = %u.source(), "tacacs+ login refused");
                self.metrics
                    .request(&client.name, "authentication", r.label());
                return self.authen_reply(
                    client,
                    key,
                    rh,
                    AuthenStatus::FAIL,
                    0,
                    b"Authentication failed",
                    out,
                );
            }
        };
        if service == AuthenService::ENABLE && grant.role.priv_lvl < priv_lvl {
            info!(user, client = %client.name, requested = priv_lvl, role = %grant.role.name, "tacacs+ enable refused");
            self.metrics
                .request(&client.name, "authentication", "enable_refused");
            return self.authen_reply(
                client,
                key,
                rh,
                AuthenStatus::FAIL,
                0,
                b"Your role does not reach that privilege level",
                out,
            );
        }
        debug!(user, client = %client.name, role = %grant.role.name, method, "tacacs+ login");
        self.metrics.request(&client.name, "authentication", "pass");
        self.authen_reply(client, key, rh, AuthenStatus::PASS, 0, b"", out)
    }

    #[allow(clippy::too_many_arguments)]
    fn ask(
        &self,
        conn: &mut Conn,
        client: &Client,
        key: &[u8],
        h: &Header,
        rh: &Header,
        waiting: Waiting,
        prompt: &[u8],
        flags: u8,
        out: &mut Vec<u8>,
    ) -> Outcome {
        if conn.sessions.len() >= MAX_OPEN_SESSIONS || h.seq_no >= 253 {
            return self.authen_reply(
                client,
                key,
                rh,
                AuthenStatus::ERROR,
                0,
                b"too many open sessions",
                out,
            );
        }
        let status = match waiting {
            Waiting::User { .. } => AuthenStatus::GETUSER,
            Waiting::Pass { .. } => AuthenStatus::GETPASS,
        };
        conn.sessions.insert(
            h.session_id,
            Session {
                next_seq: rh.seq_no + 1,
                waiting,
            },
        );
        match self.authen_reply(client, key, rh, status, flags, prompt, out) {
            Outcome::Done => Outcome::More,
            other => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn authen_reply(
        &self,
        _client: &Client,
        key: &[u8],
        rh: &Header,
        status: AuthenStatus,
        flags: u8,
        msg: &[u8],
        out: &mut Vec<u8>,
    ) -> Outcome {
        let r = encode_packet(rh, key, out, |b| {
            AuthenReply {
                status,
                flags,
                server_msg: &msg[..msg.len().min(u16::MAX as usize)],
                data: b"",
            }
            .encode(b)
        });
        sent(r)
    }

    async fn authorization(
        &self,
        config: &Config,
        client: &Client,
        key: &[u8],
        rh: &Header,
        req: &AuthorRequest<'_>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let user = String::from_utf8_lossy(req.user);
        let mut service: &[u8] = b"";
        let mut cmd: Option<&[u8]> = None;
        let mut words: [&str; MAX_WORDS] = [""; MAX_WORDS];
        let mut n = 1; // words[0] is the command itself
        let mut too_long = false;
        for a in req.args.iter() {
            let Some((name, value, _)) = split_arg(a) else {
                continue;
            };
            match name {
                b"service" => service = value,
                b"cmd" => cmd = Some(value),
                b"cmd-arg" if value != b"<cr>" && n < MAX_WORDS => {
                    words[n] = std::str::from_utf8(value).unwrap_or("\u{fffd}");
                    n += 1;
                }
                b"cmd-arg" if value != b"<cr>" => too_long = true,
                _ => {}
            }
        }
        let known = self
            .credentials
            .known(&config.users, &config.directories, &config.policy, &user)
            .await;
        // Whether the name is unknown, disabled or has no role is the
        // operator's business, not the terminal's: one message for all three
        // (as authentication says "Authentication failed"), the reason logged
        // and counted.
        let refused = |label: &'static str, reason: &dyn std::fmt::Display| {
            info!(user = %user, client = %client.name, reason = %reason, "tacacs+ authorization refused");
            label
        };
        let grant: Grant<'_> = match known {
            Err(e) => {
                let label = refused(e.label(), &e);
                return self.author_fail(client, key, rh, label, NOT_AUTHORIZED, out);
            }
            Ok(u) => match config
                .policy
                .decide(&u.identity(), &ClientCtx { name: &client.name })
            {
                Ok(g) => g,
                Err(r) => {
                    let label = refused(r.label(), &r);
                    return self.author_fail(client, key, rh, label, NOT_AUTHORIZED, out);
                }
            },
        };
        if service != b"shell" {
            let s = String::from_utf8_lossy(service);
            return self.author_fail(
                client,
                key,
                rh,
                "service_not_granted",
                &format!("service `{s}` is not granted to role {}", grant.role.name),
                out,
            );
        }
        let status_args = match cmd {
            // A shell start (no command, or an empty one): the role's AV pairs.
            None | Some(b"") => {
                let args = config.renderings.tacacs(client.profile, grant.role_id);
                self.metrics
                    .request(&client.name, "authorization", "pass_add");
                debug!(user = %user, client = %client.name, role = %grant.role.name, "tacacs+ shell authorized");
                encode_packet(rh, key, out, |b| {
                    AuthorResponse::encode(AuthorStatus::PASS_ADD, args, b"", b"", b)
                })
            }
            Some(c) => {
                words[0] = std::str::from_utf8(c).unwrap_or("\u{fffd}");
                let v = if too_long {
                    CommandVerdict::TOO_LONG
                } else {
                    grant.role.commands.check(&words[..n])
                };
                let line = words[..n].join(" ");
                if v.action == CmdAction::Permit {
                    self.metrics
                        .request(&client.name, "authorization", "command_permit");
                    debug!(user = %user, command = %line, role = %grant.role.name, "tacacs+ command permitted");
                    let none: [&str; 0] = [];
                    encode_packet(rh, key, out, |b| {
                        AuthorResponse::encode(AuthorStatus::PASS_ADD, &none, b"", b"", b)
                    })
                } else {
                    info!(user = %user, client = %client.name, command = %line, role = %grant.role.name, "tacacs+ command denied");
                    return self.author_fail(
                        client,
                        key,
                        rh,
                        "command_deny",
                        &format!("command `{line}` denied for role {}: {v}", grant.role.name),
                        out,
                    );
                }
            }
        };
        sent(status_args)
    }

    fn author_fail(
        &self,
        client: &Client,
        key: &[u8],
        rh: &Header,
        label: &'static str,
        msg: &str,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.metrics.request(&client.name, "authorization", label);
        let none: [&str; 0] = [];
        sent(encode_packet(rh, key, out, |b| {
            AuthorResponse::encode(AuthorStatus::FAIL, &none, msg.as_bytes(), b"", b)
        }))
    }

    /// Stores the record, then answers SUCCESS; a record the store cannot
    /// take gets ERROR, which tells the appliance to keep it and retry.
    #[allow(clippy::too_many_arguments)]
    async fn accounting(
        &self,
        client: &Client,
        key: &[u8],
        peer: SocketAddr,
        rh: &Header,
        req: &AcctRequest<'_>,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Outcome {
        let kind = match req.flags & (ACCT_FLAG_START | ACCT_FLAG_STOP | ACCT_FLAG_WATCHDOG) {
            ACCT_FLAG_START => "start",
            ACCT_FLAG_STOP => "stop",
            ACCT_FLAG_WATCHDOG => "watchdog",
            f if f == ACCT_FLAG_START | ACCT_FLAG_WATCHDOG => "watchdog",
            _ => {
                self.metrics
                    .request(&client.name, "accounting", "bad_flags");
                return acct_reply(rh, key, AcctStatus::ERROR, b"invalid accounting flags", out);
            }
        };
        let Some(sink) = self.accounting.as_deref() else {
            self.metrics
                .request(&client.name, "accounting", "unavailable");
            return acct_reply(rh, key, AcctStatus::ERROR, b"accounting unavailable", out);
        };
        let record = acct_record(client, peer, req, body, self.clock.now());
        debug!(
            client = %client.name,
            user = %record.user,
            session = %record.session_id,
            kind,
            "tacacs+ accounting record"
        );
        let stored = match sink.submit(record) {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(d) => {
                let result = if d.duplicate { "duplicate" } else { kind };
                self.metrics.request(&client.name, "accounting", result);
                acct_reply(rh, key, AcctStatus::SUCCESS, b"", out)
            }
            Err(e) => {
                self.metrics.request(&client.name, "accounting", "dropped");
                info!(client = %client.name, error = %e, "tacacs+ accounting record not stored");
                acct_reply(
                    rh,
                    key,
                    AcctStatus::ERROR,
                    b"accounting store busy; retry",
                    out,
                )
            }
        }
    }
}

fn acct_reply(
    rh: &Header,
    key: &[u8],
    status: AcctStatus,
    msg: &[u8],
    out: &mut Vec<u8>,
) -> Outcome {
    sent(encode_packet(rh, key, out, |b| {
        AcctReply {
            status,
            server_msg: msg,
            data: b"",
        }
        .encode(b)
    }))
}

/// The record of a TACACS+ accounting REQUEST. AV pairs become attributes
/// (`name=value` and optional `name*value` alike; a repeated name becomes an
/// array); the fixed fields are kept under their RFC 8907 names.
fn acct_record(
    client: &Client,
    peer: SocketAddr,
    req: &AcctRequest<'_>,
    body: &[u8],
    received_at: SystemTime,
) -> Record {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut attributes = Attributes::new();
    attributes.insert("port".into(), Value::String(text(req.port)));
    attributes.insert("rem_addr".into(), Value::String(text(req.rem_addr)));
    attributes.insert("priv_lvl".into(), Value::from(req.priv_lvl));
    attributes.insert("authen_method".into(), Value::from(req.authen_method));
    attributes.insert("authen_type".into(), Value::from(req.authen_type.0));
    attributes.insert("authen_service".into(), Value::from(req.authen_service.0));
    attributes.insert("flags".into(), Value::from(req.flags));
    let mut task_id = None;
    for a in req.args.iter() {
        let a = text(a);
        let (name, value) = match a.find(['=', '*']) {
            Some(i) => (a[..i].to_string(), a[i + 1..].to_string()),
            None => (a.clone(), String::new()),
        };
        if name == "task_id" {
            task_id = Some(value.clone());
        }
        match attributes.get_mut(&name) {
            None => {
                attributes.insert(name, Value::String(value));
            }
            Some(Value::Array(v)) => v.push(Value::String(value)),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, Value::String(value)]);
            }
        }
    }
    Record {
        protocol: Protocol::Tacacs,
        client: client.name.to_string(),
        client_addr: peer.ip(),
        src_port: peer.port(),
        user: text(req.user),
        // task_id ties START, WATCHDOG and STOP of one task together (RFC 8907 §8.3).
        session_id: task_id.unwrap_or_default(),
        status: Status::from_tacacs_flags(req.flags),
        received_at,
        attributes,
        dedup_key: acct_dedup_key(peer, body),
    }
}

/// Over TCP a record is repeated only when the appliance got no reply and
/// sends it again, in a new session on a new connection; what stays the same
/// is the body (user, port, task_id, times). So the key is the appliance's
/// address and the body.
fn acct_dedup_key(peer: SocketAddr, body: &[u8]) -> DedupKey {
    let mut h = Sha256::new();
    h.update(b"portcullis tacacs acct v1\0");
    match peer.ip() {
        std::net::IpAddr::V4(a) => h.update(a.octets()),
        std::net::IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => h.update(a.octets()),
            None => h.update(a.octets()),
        },
    }
    h.update(body);
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    DedupKey(k)
}

/// A reply is ready to send, or the connection closes if it could not be
/// encoded (a field too long for its length byte).
fn sent(encoded: Result<(), EncodeError>) -> Outcome {
    match encoded {
        Ok(()) => Outcome::Done,
        Err(_) => Outcome::Close(CloseReason::EncodeFailed),
    }
}

#[cfg(test)]
mod tests;
