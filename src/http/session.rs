//! Browser sessions and the cookies that carry them: HMAC-signed values
//! under a per-process key, the server-side session table, and the cookies
//! that bind a started login to the browser that started it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::state::Web;

pub(super) const SESSION_COOKIE: &str = "portcullis_session";
/// Binds a started OIDC login to the browser that started it, so a code
/// and state sent to someone else's browser cannot log them in (login CSRF).
pub(super) const LOGIN_COOKIE: &str = "portcullis_login";
/// Marks a logout under way while SAML consoles are told of it: holds the
/// chain's state (`idp::saml::logout::Chain`: the session it ends, so only
/// this browser's own logout continues, and the LogoutRequest awaited).
pub(super) const LOGOUT_COOKIE: &str = "portcullis_logout";
/// The same for a SAML login: the AuthnRequest ID this browser started.
pub(super) const SAML_COOKIE: &str = "portcullis_saml";
const MAX_SESSIONS: usize = 100_000;
/// Sessions one person may hold at once; a new login ends their oldest.
const MAX_SESSIONS_PER_USER: usize = 16;

/// Who a session belongs to. The role is decided anew on every request,
/// so a mapping change applies to open sessions at once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SessionUser {
    Local { name: String },
    External { provider: String, subject: String },
}

#[derive(Debug)]
pub(super) struct Session {
    pub(super) user: SessionUser,
    started: Instant,
    pub(super) last_seen: Instant,
    expires: Instant,
    /// For a SAML login: what a LogoutRequest to the IdP must name.
    pub(super) saml: Option<SamlSession>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct SamlSession {
    pub(super) provider: String,
    pub(super) name_id: String,
    pub(super) name_id_format: Option<String>,
    pub(super) session_index: Option<String>,
}

impl Session {
    fn live(&self, now: Instant, idle: Duration) -> bool {
        self.expires > now && now.duration_since(self.last_seen) < idle
    }
}

/// The table of open sessions, by id.
pub(super) type SessionTable = HashMap<String, Session>;

impl Web {
    pub(super) fn sign(&self, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.key()).expect("any key length");
        mac.update(value.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(value.len() + 65);
        out.push_str(value);
        out.push('.');
        for b in tag {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The value of a cookie we signed, if its signature holds.
    pub(super) fn verified<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, _) = signed.rsplit_once('.')?;
        let expect = self.sign(value);
        // Constant time: the tag is a secret-derived value an attacker probes.
        let same: bool = subtle::ConstantTimeEq::ct_eq(expect.as_bytes(), signed.as_bytes()).into();
        same.then_some(value)
    }

    pub(super) fn cookie(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let raw = cookie(headers, name)?;
        self.verified(raw).map(str::to_string)
    }

    pub(super) fn set_cookie(&self, name: &str, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.config.load().web.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        let v = format!(
            "{name}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.sign(value),
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).expect("cookie is ASCII")
    }

    /// A cookie that must come back on the IdP's cross-site POST to the ACS.
    /// Over https that takes `SameSite=None; Secure`. Over plain http
    /// `None` would be refused, so no SameSite is set (browsers that default
    /// to Lax still send it on a top-level POST within two minutes).
    pub(super) fn set_cross_site_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Duration,
    ) -> HeaderValue {
        let attrs = if self.config.load().web.secure_cookies {
            "; SameSite=None; Secure"
        } else {
            ""
        };
        let v = format!(
            "{name}={}; Path=/; HttpOnly; Max-Age={}{attrs}",
            self.sign(value),
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).expect("cookie is ASCII")
    }

    pub(super) fn clear_cookie(name: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        ))
        .expect("cookie is ASCII")
    }

    #[cfg(test)]
    pub(super) fn start_session(&self, user: SessionUser) -> HeaderValue {
        self.start_session_with(user, None)
    }

    pub(super) fn start_session_with(
        &self,
        user: SessionUser,
        saml: Option<SamlSession>,
    ) -> HeaderValue {
        let (ttl, idle) = {
            let c = self.config.load();
            (c.web.session_ttl, c.web.session_idle_timeout)
        };
        let id = random_id();
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if s.len() >= MAX_SESSIONS {
            s.retain(|_, v| v.live(now, idle));
        }
        // Bounded per person and in all: the oldest of theirs gives way,
        // then, at the global bound, the one unused longest.
        let theirs: Vec<(Instant, String)> = s
            .iter()
            .filter(|(_, v)| v.user == user)
            .map(|(k, v)| (v.started, k.clone()))
            .collect();
        if theirs.len() >= MAX_SESSIONS_PER_USER
            && let Some((_, oldest)) = theirs.into_iter().min()
        {
            s.remove(&oldest);
        }
        if s.len() >= MAX_SESSIONS
            && let Some(k) = s
                .iter()
                .min_by_key(|(_, v)| v.last_seen)
                .map(|(k, _)| k.clone())
        {
            s.remove(&k);
        }
        s.insert(
            id.clone(),
            Session {
                user,
                started: now,
                last_seen: now,
                expires: now + ttl,
                saml,
            },
        );
        self.set_cookie(SESSION_COOKIE, &id, ttl)
    }

    /// The session's user, if the cookie is ours and the session neither
    /// expired nor went unused too long; using it keeps it alive.
    pub fn session(&self, headers: &HeaderMap) -> Option<SessionUser> {
        let id = self.cookie(headers, SESSION_COOKIE)?;
        let idle = self.config.load().web.session_idle_timeout;
        let now = Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match s.get_mut(&id) {
            Some(v) if v.live(now, idle) => {
                v.last_seen = now;
                Some(v.user.clone())
            }
            Some(_) => {
                s.remove(&id);
                None
            }
            None => None,
        }
    }

    pub(super) fn end_session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = self.cookie(headers, SESSION_COOKIE)?;
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
    }
}

pub(super) fn random_id() -> String {
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("system CSPRNG");
    b.iter().fold(String::with_capacity(48), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A session as the shared store keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    user: SessionUser,
    saml: Option<SamlSession>,
}

impl SessionUser {
    /// Groups one person's sessions for the per-person bound.
    fn key(&self) -> String {
        match self {
            Self::Local { name } => format!("local:{name}"),
            Self::External { provider, subject } => format!("external:{provider}:{subject}"),
        }
    }
}

/// Sessions live in the shared store when there is one, else in this
/// process's table. The handlers call these.
impl Web {
    /// Starts a session; with a shared store that does not answer, the
    /// error page to show instead.
    pub(super) async fn open_session(
        &self,
        user: SessionUser,
        saml: Option<SamlSession>,
    ) -> Result<HeaderValue, axum::response::Response> {
        let Some(shared) = &self.shared_sessions else {
            return Ok(self.start_session_with(user, saml));
        };
        let ttl = self.config.load().web.session_ttl;
        let id = random_id();
        let key = user.key();
        let body = serde_json::to_string(&Stored { user, saml }).unwrap_or_default();
        match shared
            .create(&id, &key, &body, ttl, MAX_SESSIONS_PER_USER as i64)
            .await
        {
            Ok(()) => Ok(self.set_cookie(SESSION_COOKIE, &id, ttl)),
            Err(e) => {
                tracing::warn!(error = %e, "web login refused: the session could not be stored");
                Err(store_unavailable())
            }
        }
    }

    /// The session's user, as [`session`](Self::session), from wherever
    /// sessions live. A store that does not answer counts as no session.
    pub(super) async fn current(&self, headers: &HeaderMap) -> Option<SessionUser> {
        let Some(shared) = &self.shared_sessions else {
            return self.session(headers);
        };
        let id = self.cookie(headers, SESSION_COOKIE)?;
        let idle = self.config.load().web.session_idle_timeout;
        match shared.touch(&id, idle).await {
            Ok(found) => found
                .and_then(|j| serde_json::from_str::<Stored>(&j).ok())
                .map(|s| s.user),
            Err(e) => {
                tracing::warn!(error = %e, "session lookup failed");
                None
            }
        }
    }

    /// Ends the session wherever it lives; what it was, if anything.
    pub(super) async fn close_session(&self, headers: &HeaderMap) -> Option<Session> {
        let Some(shared) = &self.shared_sessions else {
            return self.end_session(headers);
        };
        let id = self.cookie(headers, SESSION_COOKIE)?;
        let stored = match shared.remove(&id).await {
            Ok(s) => serde_json::from_str::<Stored>(&s?).ok()?,
            Err(e) => {
                tracing::warn!(error = %e, "logout could not reach the shared store");
                return None;
            }
        };
        let now = Instant::now();
        Some(Session {
            user: stored.user,
            started: now,
            last_seen: now,
            expires: now,
            saml: stored.saml,
        })
    }
}

/// The page a login gets when the shared store does not answer.
pub(super) fn store_unavailable() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        super::pages::page(
            "Login unavailable",
            "<p>Login is unavailable: the session store does not answer. \
             Network devices keep authenticating; try again in a moment.</p>",
        ),
    )
        .into_response()
}
