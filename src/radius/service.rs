//! One RADIUS request in, one decision and one reply out: client lookup,
//! BlastRADIUS checks, the authentication method, the policy table, and the
//! client's vendor profile. No sockets here; the engine feeds bytes and sends
//! what comes back. Work that must wait for argon2 is handed back as a
//! [`Deferred`] so the engine can run it off its receive loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::codec::{
    self, Code, CryptoError, DecodeError, EncodeError, MAX_SALT_ENCRYPTED_LEN, Packet, ReplyWriter,
    Secret, attr,
};
use super::metrics::{MethodLabels, RadiusMetrics, RequestLabels};
use crate::accounting::{AccountingSink, Pending, StoreError};
use crate::authn::mschap::{self, MsChapError, MsChapV2Success, mschapv1_verify, mschapv2_verify};
use crate::authn::{AuthnError, Credentials, Login, chap};
use crate::client::Client;
use crate::clock::{Clock, Random};
use crate::config::Config;
use crate::metrics::Name;
use crate::policy::{ClientCtx, RoleId};

/// Why a packet is dropped unanswered (RADIUS answers bad packets with
/// silence). Each has a metric label from a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Decode(DecodeError),
    Crypto(CryptoError),
    Encode(EncodeError),
    MsChap(MsChapError),
    /// The source address is no configured RADIUS client.
    UnknownClient,
    /// A code this port does not serve (a reply, or accounting on the
    /// authentication port).
    UnexpectedCode,
    /// No accounting store: an unstored record is never acknowledged.
    AccountingUnavailable,
    AccountingQueueFull,
    AccountingStoreFailed,
    /// argon2 pool and queue full: shed, the client retransmits.
    Argon2Overloaded,
}

impl DropReason {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Decode(e) => e.label(),
            Self::Crypto(e) => e.label(),
            Self::Encode(e) => e.label(),
            Self::MsChap(e) => e.label(),
            Self::UnknownClient => "unknown_client",
            Self::UnexpectedCode => "unexpected_code",
            Self::AccountingUnavailable => "accounting_unavailable",
            Self::AccountingQueueFull => "accounting_queue_full",
            Self::AccountingStoreFailed => "accounting_store_failed",
            Self::Argon2Overloaded => "argon2_overloaded",
        }
    }
}

/// What the engine should do with a packet.
pub enum Step {
    /// A reply of this many bytes is in the output buffer.
    Reply(usize),
    /// Drop silently, counted under this reason.
    Drop(DropReason),
    /// A password that needs argon2: run [`Service::finish`] off the loop.
    Verify(Box<Deferred>),
    /// An accounting record on its way to the store: send `reply` once
    /// `pending` resolves Ok, and drop the request otherwise.
    Store(Box<Storing>),
}

/// An Accounting-Response that may be sent only once its record is durable.
pub struct Storing {
    pub pending: Pending,
    pub reply: Vec<u8>,
    pub client: Arc<str>,
    pub received: Instant,
}

/// A PAP request waiting for argon2. Owns copies of what the reply needs,
/// so it can outlive the receive buffer.
pub struct Deferred {
    config: Arc<Config>,
    client: usize,
    request: Vec<u8>,
    user: Box<str>,
    password: Vec<u8>,
    pub received: Instant,
}

impl Drop for Deferred {
    fn drop(&mut self) {
        // Best-effort scrub of the cleartext password.
        self.password.iter_mut().for_each(|b| *b = 0);
    }
}

enum Verdict {
    Accept {
        role: RoleId,
        mschap: Option<MsChapV2Success>,
    },
    Reject,
}

/// What answering RADIUS takes; the configuration comes with each request.
#[derive(Debug)]
pub struct Service {
    credentials: Credentials,
    /// Without one, accounting requests are dropped unanswered (never
    /// acknowledged unstored).
    accounting: Option<Arc<dyn AccountingSink>>,
    metrics: RadiusMetrics,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
}

impl Service {
    pub fn new(
        credentials: Credentials,
        accounting: Option<Arc<dyn AccountingSink>>,
        metrics: RadiusMetrics,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Self {
        Self {
            credentials,
            accounting,
            metrics,
            clock,
            random,
        }
    }

    pub fn metrics(&self) -> &RadiusMetrics {
        &self.metrics
    }

    /// Decodes and authenticates the envelope of any request: codec, known
    /// client, and the per-code authenticator rules (RFC 2865/2866/3579/5997).
    fn open<'p, 'c>(
        &self,
        config: &'c Config,
        src: SocketAddr,
        req: &'p [u8],
        require_ma: bool,
    ) -> Result<(Packet<'p>, usize, &'c Client, &'c Secret), DropReason> {
        let pkt = codec::decode(req).map_err(DropReason::Decode)?;
        let ci = config
            .clients
            .lookup_index(src.ip())
            .ok_or(DropReason::UnknownClient)?;
        let client = config.clients.get(ci).ok_or(DropReason::UnknownClient)?;
        let secret = client.radius.as_ref().ok_or(DropReason::UnknownClient)?;
        // BlastRADIUS (CVE-2024-3596): a valid Message-Authenticator is what
        // stops a forged Access-Accept, so requests without one are dropped
        // unless this client is explicitly legacy.
        if let Err(e) = codec::verify_request(
            &pkt,
            secret,
            require_ma && client.require_message_authenticator,
        ) {
            return Err(DropReason::Crypto(e));
        }
        Ok((pkt, ci, client, secret))
    }

    /// Handles a packet that arrived on the authentication port.
    pub fn handle_auth(
        &self,
        config: &Arc<Config>,
        src: SocketAddr,
        req: &[u8],
        out: &mut [u8],
        received: Instant,
    ) -> Step {
        let (pkt, ci, client, secret) = match self.open(config, src, req, true) {
            Ok(x) => x,
            Err(reason) => return Step::Drop(reason),
        };
        match pkt.code() {
            Code::ACCESS_REQUEST => {}
            Code::STATUS_SERVER => {
                // RFC 5997 §3: answered with an Access-Accept, no attributes of note.
                self.count(client, "status_server", "accept");
                return self.reply(
                    config,
                    client,
                    secret,
                    &pkt,
                    Verdict::Reject,
                    Code::ACCESS_ACCEPT,
                    out,
                );
            }
            _ => return Step::Drop(DropReason::UnexpectedCode),
        }
        let Some(user) = pkt
            .attr(attr::USER_NAME)
            .and_then(|u| std::str::from_utf8(u).ok())
        else {
            self.count(client, "access_request", "reject");
            return self.reply(
                config,
                client,
                secret,
                &pkt,
                Verdict::Reject,
                Code::ACCESS_REJECT,
                out,
            );
        };
        let verdict = if let Some(hidden) = pkt.attr(attr::USER_PASSWORD) {
            let mut buf = [0u8; codec::MAX_PASSWORD_LEN];
            match codec::unhide_password(hidden, secret, pkt.authenticator(), &mut buf) {
                Err(e) => return Step::Drop(DropReason::Crypto(e)),
                Ok(password) => match self.credentials.cached_login(
                    &config.users,
                    &config.directories,
                    &config.policy,
                    user,
                    password,
                ) {
                    Some(login) => self.grant(config, client, &login, None, "pap"),
                    // Unknown and disabled users too: the credential check
                    // refuses them after the same argon2 as a wrong password.
                    None => {
                        return Step::Verify(Box::new(Deferred {
                            config: config.clone(),
                            client: ci,
                            request: req.to_vec(),
                            user: user.into(),
                            password: password.to_vec(),
                            received,
                        }));
                    }
                },
            }
        } else if pkt.attr(attr::CHAP_PASSWORD).is_some() {
            // Malformed requests are dropped before the user is looked at,
            // so whether a name opted in to CHAP cannot be probed with them.
            let c = match codec::chap_password(&pkt) {
                Ok(c) => c,
                Err(e) => return Step::Drop(DropReason::Crypto(e)),
            };
            match self
                .credentials
                .cleartext(&config.users, &config.directories, user)
            {
                Err(e) => self.refuse("chap", user, client, e),
                Ok((u, clear))
                    if chap::verify(c.ident, c.response, c.challenge, clear.expose()) =>
                {
                    self.grant(config, client, &Login::Local(u), None, "chap")
                }
                Ok(_) => self.refuse("chap", user, client, AuthnError::BadPassword),
            }
        } else if let (Some(challenge), Some(response)) = (
            pkt.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE),
            pkt.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP2_RESPONSE),
        ) {
            if let Err(e) = mschap::mschapv2_check_form(challenge, response) {
                return Step::Drop(DropReason::MsChap(e));
            }
            match self
                .credentials
                .cleartext(&config.users, &config.directories, user)
            {
                Err(e) => self.refuse("mschapv2", user, client, e),
                Ok((u, clear)) => {
                    match mschapv2_verify(user.as_bytes(), clear.expose(), challenge, response) {
                        Ok(Some(ok)) => {
                            self.grant(config, client, &Login::Local(u), Some(ok), "mschapv2")
                        }
                        Ok(None) => self.refuse("mschapv2", user, client, AuthnError::BadPassword),
                        Err(e) => return Step::Drop(DropReason::MsChap(e)),
                    }
                }
            }
        } else if let (Some(challenge), Some(response)) = (
            pkt.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_CHALLENGE),
            pkt.vsa(attr::VENDOR_MICROSOFT, attr::ms::CHAP_RESPONSE),
        ) {
            // MS-CHAPv1 (RFC 2433, RFC 2548 §2.1.3) for local users who
            // opted in; the NT-Response only (an LM-only response is
            // dropped as malformed).
            if let Err(e) = mschap::mschapv1_check_form(challenge, response) {
                return Step::Drop(DropReason::MsChap(e));
            }
            match self
                .credentials
                .cleartext(&config.users, &config.directories, user)
            {
                Err(e) => self.refuse("mschap", user, client, e),
                Ok((u, clear)) => match mschapv1_verify(clear.expose(), challenge, response) {
                    Ok(true) => self.grant(config, client, &Login::Local(u), None, "mschap"),
                    Ok(false) => self.refuse("mschap", user, client, AuthnError::BadPassword),
                    Err(e) => return Step::Drop(DropReason::MsChap(e)),
                },
            }
        } else {
            self.metrics
                .auth
                .get_or_create(&MethodLabels {
                    method: "none",
                    result: "no_supported_method",
                })
                .inc();
            Verdict::Reject
        };
        self.answer(config, client, secret, &pkt, verdict, out)
    }

    /// Finishes a deferred PAP request: argon2 on the blocking pool, then
    /// the reply. `None` means drop (shed under overload).
    pub async fn finish(&self, d: &Deferred, out: &mut [u8]) -> Option<usize> {
        let config = &d.config;
        let client = config.clients.get(d.client)?;
        let secret = client.radius.as_ref()?;
        let pkt = codec::decode(&d.request).ok()?;
        let verdict = match self
            .credentials
            .login(
                &config.users,
                &config.directories,
                &config.policy,
                &d.user,
                &d.password,
            )
            .await
        {
            Ok(login) => self.grant(config, client, &login, None, "pap"),
            Err(AuthnError::Overloaded) => {
                self.metrics.drop(DropReason::Argon2Overloaded);
                return None;
            }
            Err(e) => self.refuse("pap", &d.user, client, e),
        };
        match self.answer(config, client, secret, &pkt, verdict, out) {
            Step::Reply(n) => Some(n),
            Step::Drop(reason) => {
                // As the engine counts drops decided on the receive loop.
                self.metrics.drop(reason);
                None
            }
            Step::Verify(_) | Step::Store(_) => None,
        }
    }

    fn grant(
        &self,
        config: &Config,
        client: &Client,
        login: &Login<'_>,
        mschap: Option<MsChapV2Success>,
        method: &'static str,
    ) -> Verdict {
        let identity = login.identity();
        let user = identity.user;
        match config
            .policy
            .decide(&identity, &ClientCtx { name: &client.name })
        {
            Ok(g) => {
                self.metrics
                    .auth
                    .get_or_create(&MethodLabels {
                        method,
                        result: "accept",
                    })
                    .inc();
                debug!(user, client = %client.name, role = %g.role.name, method, source = identity.source.as_str(), "radius accept");
                Verdict::Accept {
                    role: g.role_id,
                    mschap,
                }
            }
            Err(r) => {
                self.metrics
                    .auth
                    .get_or_create(&MethodLabels {
                        method,
                        result: r.label(),
                    })
                    .inc();
                info!(user, client = %client.name, reason = %r, method, "radius reject");
                Verdict::Reject
            }
        }
    }

    fn refuse(&self, method: &'static str, user: &str, client: &Client, e: AuthnError) -> Verdict {
        self.metrics
            .auth
            .get_or_create(&MethodLabels {
                method,
                result: e.label(),
            })
            .inc();
        info!(user, client = %client.name, reason = %e, method, "radius reject");
        Verdict::Reject
    }

    fn answer(
        &self,
        config: &Config,
        client: &Client,
        secret: &Secret,
        pkt: &Packet<'_>,
        verdict: Verdict,
        out: &mut [u8],
    ) -> Step {
        let (code, result) = match verdict {
            Verdict::Accept { .. } => (Code::ACCESS_ACCEPT, "accept"),
            Verdict::Reject => (Code::ACCESS_REJECT, "reject"),
        };
        self.count(client, "access_request", result);
        self.reply(config, client, secret, pkt, verdict, code, out)
    }

    /// Writes the reply: Message-Authenticator first (BlastRADIUS), then the
    /// role's pre-rendered attributes, method extras, and Proxy-State echoes.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &self,
        config: &Config,
        client: &Client,
        secret: &Secret,
        pkt: &Packet<'_>,
        verdict: Verdict,
        code: Code,
        out: &mut [u8],
    ) -> Step {
        let written = (|| {
            let mut w = ReplyWriter::new_with_message_authenticator(out, code, pkt.identifier())?;
            if let Verdict::Accept { role, mschap } = verdict {
                w.put_raw(config.renderings.radius(client.profile, role))?;
                if let Some(ok) = mschap {
                    w.put_vsa(
                        attr::VENDOR_MICROSOFT,
                        attr::ms::CHAP2_SUCCESS,
                        &ok.success_value(),
                    )?;
                    let keys = ok.mppe_keys();
                    let salt = self.random.u16();
                    let mut buf = [0u8; MAX_SALT_ENCRYPTED_LEN];
                    let send = codec::salt_encrypt(
                        &keys.send,
                        salt,
                        secret,
                        pkt.authenticator(),
                        &mut buf,
                    )?;
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::MPPE_SEND_KEY, send)?;
                    // Each key needs its own salt (RFC 2548 §2.4.2).
                    let recv = codec::salt_encrypt(
                        &keys.recv,
                        salt.wrapping_add(1),
                        secret,
                        pkt.authenticator(),
                        &mut buf,
                    )?;
                    w.put_vsa(attr::VENDOR_MICROSOFT, attr::ms::MPPE_RECV_KEY, recv)?;
                    // Encryption allowed; 40- or 128-bit (RFC 2548 §2.4.4, §2.4.5).
                    w.put_vsa(
                        attr::VENDOR_MICROSOFT,
                        attr::ms::MPPE_ENCRYPTION_POLICY,
                        &1u32.to_be_bytes(),
                    )?;
                    w.put_vsa(
                        attr::VENDOR_MICROSOFT,
                        attr::ms::MPPE_ENCRYPTION_TYPES,
                        &6u32.to_be_bytes(),
                    )?;
                }
            }
            w.copy_proxy_state(pkt)?;
            w.finish(secret, pkt.authenticator())
        })();
        match written {
            Ok(n) => Step::Reply(n),
            Err(e) => Step::Drop(DropReason::Encode(e)),
        }
    }

    fn count(&self, client: &Client, kind: &'static str, result: &'static str) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                client: Name(client.name.clone()),
                r#type: kind,
                result,
            })
            .inc();
    }

    /// Handles a packet that arrived on the accounting port: verified
    /// (RFC 2866 §3), queued for the store, answered once durable.
    pub fn handle_acct(
        &self,
        config: &Arc<Config>,
        src: SocketAddr,
        req: &[u8],
        out: &mut [u8],
        received: Instant,
    ) -> Step {
        // The Request Authenticator of an Accounting-Request is already a
        // keyed digest of the whole packet; BlastRADIUS concerns Access-*.
        let (pkt, _, client, secret) = match self.open(config, src, req, false) {
            Ok(x) => x,
            Err(reason) => return Step::Drop(reason),
        };
        match pkt.code() {
            Code::ACCOUNTING_REQUEST => {}
            Code::STATUS_SERVER => {
                // RFC 5997 §3: on the accounting port the answer is an
                // Accounting-Response. `open` has already insisted on its
                // Message-Authenticator. Without an accounting store there
                // is nothing here to be alive for, so the appliance fails over.
                if self.accounting.is_none() {
                    return Step::Drop(DropReason::AccountingUnavailable);
                }
                self.count(client, "status_server", "accept");
                return self.reply(
                    config,
                    client,
                    secret,
                    &pkt,
                    Verdict::Reject,
                    Code::ACCOUNTING_RESPONSE,
                    out,
                );
            }
            _ => return Step::Drop(DropReason::UnexpectedCode),
        }
        let Some(sink) = self.accounting.as_deref() else {
            self.count(client, "accounting_request", "dropped");
            return Step::Drop(DropReason::AccountingUnavailable);
        };
        let written = (|| {
            let mut w = ReplyWriter::new(out, Code::ACCOUNTING_RESPONSE, pkt.identifier())?;
            w.copy_proxy_state(&pkt)?;
            w.finish(secret, pkt.authenticator())
        })();
        let n = match written {
            Ok(n) => n,
            Err(e) => return Step::Drop(DropReason::Encode(e)),
        };
        let record = super::acct::record(
            &config.dictionary,
            &client.name,
            src.ip(),
            src.port(),
            &pkt,
            self.clock.now(),
        );
        match sink.submit(record) {
            Ok(pending) => Step::Store(Box::new(Storing {
                pending,
                reply: out[..n].to_vec(),
                client: client.name.clone(),
                received,
            })),
            Err(e) => {
                self.count(client, "accounting_request", "dropped");
                Step::Drop(store_drop_reason(&e))
            }
        }
    }

    /// Counts the outcome of a stored (or refused) accounting record.
    pub fn stored(&self, client: &Arc<str>, result: Result<bool, &StoreError>) {
        let result = match result {
            Ok(false) => "stored",
            Ok(true) => "duplicate",
            Err(_) => "dropped",
        };
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                client: Name(client.clone()),
                r#type: "accounting_request",
                result,
            })
            .inc();
    }
}

/// The drop reason counted for a record the store would not take.
pub fn store_drop_reason(e: &StoreError) -> DropReason {
    match e {
        StoreError::QueueFull { .. } => DropReason::AccountingQueueFull,
        _ => DropReason::AccountingStoreFailed,
    }
}

#[cfg(test)]
mod tests;
