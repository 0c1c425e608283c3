//! A configured SAML provider at run time: the IdP's details (metadata
//! fetched and cached), starting a login, and completing one: the pure
//! verification plus the state it cannot hold, outstanding AuthnRequests
//! (InResponseTo) and assertion IDs already used (replay).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use subtle::ConstantTimeEq as _;
use tracing::warn;

use super::metadata::{IdpInfo, MetadataError, parse_idp};
use super::refusal::{Reason, Refusal, refuse};
use super::request::{AuthnRequest, LogoutRequest, new_id, redirect_url};
use super::response::{Expect, Verified, verify};
use super::settings::{IdpSource, SamlSettings};
use super::xml::{MAX_XML, b64};
use crate::store::DbError;
use crate::store::PgStore;
use crate::store::ephemeral::{Kind, PendingStore, ReplayCache};

/// SAML responses verified at once, process-wide; more wait their turn, so
/// hostile posts cannot take every blocking thread or core.
const MAX_VERIFYING: usize = 2;
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_VERIFYING);

/// A failed metadata fetch is not retried sooner than this.
const REFETCH_BACKOFF: Duration = Duration::from_secs(30);

/// Why the IdP's metadata could not be fetched from its URL.
#[derive(Debug, thiserror::Error)]
pub enum MetadataFetchError {
    /// Sending the request or reading the body failed.
    #[error("GET {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: metadata larger than {MAX_XML} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: not UTF-8")]
    NotUtf8 {
        url: String,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("metadata from {url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: MetadataError,
    },
}

/// Why the IdP's details are not available (only with a metadata URL; a
/// configured IdP always is).
#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    /// The fetch failed and there is no earlier copy to fall back on.
    #[error(transparent)]
    Fetch(#[from] MetadataFetchError),
    /// The last attempt failed moments ago and there is no earlier copy.
    #[error("metadata unavailable (retrying shortly)")]
    Backoff,
    /// The started login could not be kept in the shared store.
    #[error(transparent)]
    Store(#[from] DbError),
}

/// Login state shared by every provider and kept across reloads: in this
/// process, or in the shared store so that any node can complete a login
/// any node started and a replay is refused everywhere.
#[derive(Debug)]
pub struct LoginState {
    /// AuthnRequest ID -> provider.
    pending: PendingStore<String>,
    /// (provider, assertion ID) -> until when it could be replayed.
    seen: ReplayCache,
}

impl Default for LoginState {
    fn default() -> Self {
        Self {
            pending: PendingStore::in_memory(Kind::SamlRequest),
            seen: ReplayCache::in_memory(),
        }
    }
}

impl LoginState {
    pub fn shared(store: PgStore) -> Self {
        Self {
            pending: PendingStore::shared(Kind::SamlRequest, store.clone()),
            seen: ReplayCache::shared(store),
        }
    }

    #[cfg(test)]
    pub(crate) async fn add_pending_for_test(&self, id: &str, provider: &str) {
        self.pending
            .put(
                id,
                IpAddr::from([127, 0, 0, 1]),
                provider.to_string(),
                Duration::from_secs(600),
            )
            .await
            .unwrap();
    }
}

fn store_refusal(e: DbError) -> Refusal {
    Refusal::new(Reason::Store, e.to_string())
}

pub struct SamlProvider {
    settings: SamlSettings,
    cached: Mutex<Option<(Arc<IdpInfo>, Instant)>>,
    last_attempt: Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl SamlProvider {
    pub fn new(settings: SamlSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            settings,
            cached: Mutex::new(None),
            last_attempt: Mutex::new(None),
            http,
        })
    }

    pub fn settings(&self) -> &SamlSettings {
        &self.settings
    }

    /// The key our redirect-binding requests are signed with, if any.
    fn request_key(&self) -> Option<&super::SpKey> {
        let s = &self.settings;
        if s.sign_requests {
            s.sp_key.as_deref()
        } else {
            None
        }
    }

    /// The IdP's details: configured, or from (cached) metadata.
    pub async fn idp(&self) -> Result<Arc<IdpInfo>, IdpError> {
        let (url, entity_id, refresh) = match &self.settings.idp {
            IdpSource::Static(i) => return Ok(i.clone()),
            IdpSource::MetadataUrl {
                url,
                entity_id,
                refresh,
            } => (url, entity_id, refresh),
        };
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((info, at)) = &cached
            && at.elapsed() < *refresh
        {
            return Ok(info.clone());
        }
        {
            let mut last = self
                .last_attempt
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < REFETCH_BACKOFF) {
                return cached.map(|c| c.0).ok_or(IdpError::Backoff);
            }
            *last = Some(Instant::now());
        }
        match fetch_metadata(&self.http, url, entity_id.as_deref()).await {
            Ok(info) => {
                let info = Arc::new(info);
                *self.cached.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((info.clone(), Instant::now()));
                Ok(info)
            }
            Err(e) => {
                warn!(provider = %self.settings.name, error = %e, "saml metadata fetch failed");
                // A stale copy beats no login at all.
                cached.map(|c| c.0).ok_or(IdpError::Fetch(e))
            }
        }
    }

    /// A redirect to the IdP carrying a new AuthnRequest, and its ID.
    pub async fn begin(
        &self,
        state: &LoginState,
        source: IpAddr,
    ) -> Result<(String, String), IdpError> {
        let idp = self.idp().await?;
        let s = &self.settings;
        let id = new_id();
        let xml = AuthnRequest {
            id: &id,
            sp_entity_id: &s.sp_entity_id,
            acs_url: &s.acs_url,
            destination: &idp.sso_url,
            name_id_format: &s.name_id_format,
            now: SystemTime::now(),
        }
        .xml();
        let key = self.request_key();
        let url = redirect_url(&idp.sso_url, &xml, None, key);
        state
            .pending
            .put(&id, source, s.name.clone(), s.login_timeout)
            .await?;
        Ok((url, id))
    }

    /// Verifies a posted `SAMLResponse` (base64). `bound` is the request ID
    /// this browser started (from its cookie).
    pub async fn complete(
        &self,
        encoded: &str,
        bound: Option<&str>,
        state: &LoginState,
        now: SystemTime,
    ) -> Result<Verified, Refusal> {
        let s = &self.settings;
        if encoded.len() > MAX_XML * 4 / 3 + 1024 {
            return refuse(Reason::Malformed, "SAMLResponse too large");
        }
        let Some(xml) = b64(encoded) else {
            return refuse(Reason::Malformed, "SAMLResponse is not base64");
        };
        let idp = self
            .idp()
            .await
            .map_err(|e| Refusal::new(Reason::Unavailable, e.to_string()))?;
        // Parsing, canonicalising, RSA and decryption are CPU work on
        // attacker-sent bytes: off the async workers, a few at a time.
        let v = {
            let _turn = VERIFYING
                .acquire()
                .await
                .map_err(|_| Refusal::new(Reason::Unavailable, "shutting down"))?;
            let s = s.clone();
            tokio::task::spawn_blocking(move || {
                verify(
                    &xml,
                    &Expect {
                        idp_entity_id: &idp.entity_id,
                        sp_entity_id: &s.sp_entity_id,
                        acs_url: &s.acs_url,
                        certs: &idp.certs,
                        now,
                        skew: s.clock_skew,
                        allow_sha1: s.allow_sha1,
                        allow_idp_initiated: s.allow_idp_initiated,
                        sp_key: s.sp_key.as_deref(),
                        attributes: &s.attributes,
                    },
                )
            })
            .await
            .map_err(|e| Refusal::new(Reason::Unavailable, format!("verification task: {e}")))??
        };
        // Replay first, so a second post of a used response says so.
        let seen = state.seen.is_seen(&s.name, &v.assertion_id, now);
        if seen.await.map_err(store_refusal)? {
            return refuse(
                Reason::Replay,
                format!("assertion {:?} was already used", v.assertion_id),
            );
        }
        if let Some(irt) = &v.in_response_to {
            // Expired requests are not found.
            let taken = state.pending.take(irt).await.map_err(store_refusal)?;
            let Some(provider) = taken else {
                return refuse(
                    Reason::InResponseTo,
                    "not a request we sent (or it expired), or already answered",
                );
            };
            if provider != s.name {
                return refuse(Reason::InResponseTo, "request sent to another provider");
            }
            let same_browser =
                bound.is_some_and(|b| bool::from(b.as_bytes().ct_eq(irt.as_bytes())));
            if !same_browser {
                return refuse(
                    Reason::InResponseTo,
                    "the login was started in another browser",
                );
            }
        }
        let until = v
            .valid_until
            .checked_add(s.clock_skew)
            .unwrap_or(v.valid_until);
        let first = state.seen.first_use(&s.name, &v.assertion_id, until, now);
        if !first.await.map_err(store_refusal)? {
            return refuse(
                Reason::Replay,
                format!("assertion {:?} was already used", v.assertion_id),
            );
        }
        Ok(v)
    }

    /// Where to send the browser after our side of a logout: the IdP's SLO
    /// endpoint with a LogoutRequest, when it has one.
    pub async fn logout_url(
        &self,
        name_id: &str,
        name_id_format: Option<&str>,
        session_index: Option<&str>,
    ) -> Option<String> {
        let idp = self.idp().await.ok()?;
        let slo = idp.slo_url.as_deref()?;
        let s = &self.settings;
        let xml = LogoutRequest {
            id: &new_id(),
            sp_entity_id: &s.sp_entity_id,
            destination: slo,
            name_id,
            name_id_format,
            session_index,
            now: SystemTime::now(),
        }
        .xml();
        let key = self.request_key();
        Some(redirect_url(slo, &xml, None, key))
    }
}

pub async fn fetch_metadata(
    http: &reqwest::Client,
    url: &str,
    entity_id: Option<&str>,
) -> Result<IdpInfo, MetadataFetchError> {
    let url_s = || url.to_string();
    let http_err = |source| MetadataFetchError::Http {
        url: url_s(),
        source,
    };
    let r = http.get(url).send().await.map_err(http_err)?;
    if !r.status().is_success() {
        return Err(MetadataFetchError::Status {
            url: url_s(),
            status: r.status(),
        });
    }
    let body = r.bytes().await.map_err(http_err)?;
    if body.len() > MAX_XML {
        return Err(MetadataFetchError::TooLarge { url: url_s() });
    }
    let text = std::str::from_utf8(&body).map_err(|source| MetadataFetchError::NotUtf8 {
        url: url_s(),
        source,
    })?;
    parse_idp(text, entity_id).map_err(|source| MetadataFetchError::Parse {
        url: url_s(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts() {
        let url = "https://idp.example.com/md".to_string();
        assert_eq!(
            MetadataFetchError::TooLarge { url: url.clone() }.to_string(),
            format!("GET {url}: metadata larger than {MAX_XML} bytes")
        );
        let e = IdpError::from(MetadataFetchError::Parse {
            url: url.clone(),
            source: MetadataError::NoCert,
        });
        assert_eq!(
            e.to_string(),
            format!("metadata from {url}: the IdP publishes no signing certificate")
        );
        assert_eq!(
            IdpError::Backoff.to_string(),
            "metadata unavailable (retrying shortly)"
        );
    }
}
