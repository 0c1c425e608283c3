//! portcullis as the provider for appliance web consoles: an OAuth 2.0 /
//! OpenID Connect server and a JWT issuer whose tokens carry the username,
//! roles and access group the one table gives the person. The HTTP routes
//! are in `http::console`; the rules, keys and state are here.

pub mod keys;
pub mod oauth;
pub mod pg;
pub mod saml;
pub mod settings;
pub mod store;

pub use keys::{KeyError, KeyRing, StoredKey};
pub use pg::PgIdpStore;
pub use settings::{ConsoleSettings, IdpSettings, JwtAlg, KeyAlg, LoginMethod, Mode};
pub use store::{IdpStore, SqliteIdpStore, StoreError, Subject};

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use tracing::{info, warn};

use crate::config::Config;
use saml::SamlKeyError;

type Labels = Vec<(String, String)>;

/// `portcullis_console_refusals_total{console,reason}` and
/// `portcullis_console_tokens_total{console,grant}`. `console` is a
/// configured name or `unknown`; `reason` and `grant` are closed sets.
#[derive(Debug, Default, Clone)]
pub struct IdpMetrics {
    refusals: Family<Labels, Counter>,
    tokens: Family<Labels, Counter>,
    pub saml: saml::SamlMetrics,
}

impl IdpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "console_refusals",
            "Console logins and token requests refused, by console and reason",
            m.refusals.clone(),
        );
        registry.register(
            "console_tokens",
            "Tokens issued to consoles, by console and grant",
            m.tokens.clone(),
        );
        m.saml.register(registry);
        m
    }

    pub fn refused(&self, console: Option<&str>, reason: oauth::Reason) {
        self.refusals
            .get_or_create(&vec![
                ("console".into(), console.unwrap_or("unknown").into()),
                ("reason".into(), reason.label().into()),
            ])
            .inc();
    }

    /// `grant`: `authorization_code`, `refresh_token` or `jwt`.
    pub fn issued(&self, console: &str, grant: &'static str) {
        self.tokens
            .get_or_create(&vec![
                ("console".into(), console.into()),
                ("grant".into(), grant.into()),
            ])
            .inc();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("idp task failed: {0}")]
    Task(String),
}

/// How often a node re-reads its signing keys from the store, so a key
/// rotated by `portcullis console rotate-key` (on any node) signs
/// everywhere within this time, reload or not.
pub const KEY_POLL: Duration = Duration::from_secs(30);

/// The provider's state handle: the store, and the OAuth key ring and SAML
/// keys in force. Both are re-read from the store on reload (SIGHUP) and
/// every [`KEY_POLL`], so a rotation takes effect on every node by itself.
#[derive(Debug)]
pub struct Provider {
    store: Arc<dyn IdpStore>,
    ring: Polled<KeyRing>,
    saml: Polled<saml::SamlKeys>,
    /// Whether this node's key files of an earlier version were looked at
    /// (once, at the first load).
    legacy_seen: std::sync::atomic::AtomicBool,
    pub metrics: IdpMetrics,
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How often expired codes, refresh families and access tokens are removed.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Removes the console provider's expired state every `every`, on the
/// blocking pool (the store's calls block). Without it the tables only grow:
/// every code flow leaves a code, a family and tokens behind.
pub fn spawn_pruner(store: Arc<dyn IdpStore>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.prune(now())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "console provider prune failed"),
                Err(e) => tracing::warn!(error = %e, "console provider prune task failed"),
            }
        }
    })
}

/// How long a retired key stays published: the longest token lifetime.
fn keep_retired(config: &Config) -> i64 {
    config
        .consoles
        .iter()
        .map(|c| c.id_token_ttl.max(c.access_token_ttl).as_secs() as i64)
        .max()
        .unwrap_or(3600)
}

/// A value read from the store: kept for one configuration generation and
/// at most `every`. When re-reading fails, the value in force stays (the
/// store may be down for a while; signing goes on) and is tried again
/// after `every`.
#[derive(Debug)]
struct Polled<T> {
    every: Duration,
    slot: Mutex<Option<(u64, Instant, Arc<T>)>>,
    /// One re-read at a time: the others wait for it and take its value.
    reading: tokio::sync::Mutex<()>,
}

impl<T> Polled<T> {
    fn new(every: Duration) -> Self {
        Self {
            every,
            slot: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, generation: u64) -> Option<Arc<T>> {
        match &*self.slot.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((g, at, v)) if *g == generation && at.elapsed() < self.every => Some(v.clone()),
            _ => None,
        }
    }

    async fn get<E: std::fmt::Display>(
        &self,
        generation: u64,
        what: &'static str,
        read: impl Future<Output = Result<T, E>>,
    ) -> Result<Arc<T>, E> {
        if let Some(v) = self.fresh(generation) {
            return Ok(v);
        }
        let _one = match self.reading.try_lock() {
            Ok(one) => one,
            Err(_) => {
                // Being re-read: the keys in force serve meanwhile, so a
                // slow store delays one request, not all.
                if let Some((_, _, v)) = &*self.slot.lock().unwrap_or_else(PoisonError::into_inner)
                {
                    return Ok(v.clone());
                }
                self.reading.lock().await
            }
        };
        if let Some(v) = self.fresh(generation) {
            return Ok(v);
        }
        let got = read.await;
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        match got {
            Ok(v) => {
                let v = Arc::new(v);
                *slot = Some((generation, Instant::now(), v.clone()));
                Ok(v)
            }
            Err(e) => match slot.take() {
                Some((_, _, old)) => {
                    warn!(error = %e, "{what}: re-reading the store failed; the keys in force stay");
                    *slot = Some((generation, Instant::now(), old.clone()));
                    Ok(old)
                }
                None => Err(e),
            },
        }
    }
}

impl Provider {
    pub fn new(store: Arc<dyn IdpStore>, metrics: IdpMetrics) -> Self {
        Self {
            store,
            ring: Polled::new(KEY_POLL),
            saml: Polled::new(KEY_POLL),
            legacy_seen: Default::default(),
            metrics,
        }
    }

    pub fn store(&self) -> Arc<dyn IdpStore> {
        self.store.clone()
    }

    /// Runs a blocking store call off the async runtime.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn IdpStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, IdpError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| IdpError::Task(e.to_string()))?
            .map_err(IdpError::from)
    }

    /// The keys in force for `config`'s generation; the first call makes
    /// the signing and next keys when the store has none.
    pub async fn ring(&self, config: &Config) -> Result<Arc<KeyRing>, IdpError> {
        let (alg, keep) = (config.idp.signing_alg, keep_retired(config));
        let store = self.store.clone();
        self.ring
            .get(config.generation, "console signing keys", async move {
                tokio::task::spawn_blocking(move || ensure_keys(store.as_ref(), alg, now(), keep))
                    .await
                    .map_err(|e| IdpError::Task(e.to_string()))?
            })
            .await
    }

    /// The SAML IdP's keys from the store (not the configured pair, which
    /// the caller prefers): the first call makes them when the store has
    /// none, importing the files an earlier version kept in
    /// `<data_dir>/saml-idp/`.
    pub async fn saml_keys(&self, config: &Config) -> Result<Arc<saml::SamlKeys>, SamlKeyError> {
        use std::sync::atomic::Ordering::Relaxed;
        let store = self.store.clone();
        let legacy = config.server.data_dir.join(LEGACY_SAML_DIR);
        let look = !self.legacy_seen.load(Relaxed);
        let keys = self
            .saml
            .get(config.generation, "SAML signing keys", async move {
                tokio::task::spawn_blocking(move || {
                    let (keys, did) = saml::keys::ensure(
                        store.as_ref(),
                        look.then_some(legacy.as_path()),
                        saml::keys::GENERATED_CN,
                        SystemTime::now(),
                    )?;
                    log_ensured(&did, &legacy, &keys);
                    Ok::<_, SamlKeyError>(keys)
                })
                .await
                .map_err(|_| SamlKeyError::Generate)?
            })
            .await?;
        self.legacy_seen.store(true, Relaxed);
        Ok(keys)
    }
}

/// Where versions before the shared store kept the SAML IdP's keys, under
/// the data directory (imported into an empty store, then unused).
pub const LEGACY_SAML_DIR: &str = "saml-idp";

/// Says what [`saml::keys::ensure`] did (never a private key).
pub fn log_ensured(did: &saml::keys::Ensured, legacy: &std::path::Path, keys: &saml::SamlKeys) {
    if did.imported > 0 && !did.legacy_unused {
        info!(dir = %legacy.display(), pairs = did.imported, "SAML IdP keys imported into the store from the files of an earlier version; the files are no longer read");
    }
    if did.legacy_unused {
        warn!(dir = %legacy.display(), "SAML IdP keys in these files were not imported: the store had keys already (from another node); give consoles the certificates in the metadata now published");
    }
    if did.generated > 0 {
        info!(pairs = did.generated, signing = %keys.active.cert.subject, "SAML IdP keys generated in the store");
    }
}

/// Loads the key ring, generating what is missing: a signing key on first
/// start, and always a published next key of the configured algorithm.
pub fn ensure_keys(
    store: &dyn IdpStore,
    alg: KeyAlg,
    now: i64,
    keep: i64,
) -> Result<KeyRing, IdpError> {
    let keys = store.keys()?;
    let has_active = keys
        .iter()
        .any(|k| k.activated.is_some() && k.retired.is_none());
    if !has_active {
        let mut k = StoredKey::generate(alg, now)?;
        k.activated = Some(now);
        store.add_key(&k)?;
    }
    let has_next = keys
        .iter()
        .any(|k| k.alg == alg && k.activated.is_none() && k.retired.is_none());
    if !has_next {
        store.add_key(&StoredKey::generate(alg, now)?)?;
    }
    // Another node starting together may have made them first: the
    // store's keys win over ours, so every node publishes the same JWKS.
    let keys = store.keys()?;
    KeyRing::from_stored(&keys, now, keep)?
        .ok_or_else(|| IdpError::Task("no signing key after generating one".into()))
}

/// `portcullis console rotate-key`: the published next key of `alg` starts
/// signing (the one signing now is retired, and stays published until its
/// tokens expire), and a new next key is published. Returns the new signing
/// key's id; the server takes it on its next reload.
pub fn rotate_key(store: &dyn IdpStore, alg: KeyAlg, now: i64) -> Result<String, IdpError> {
    // Make sure a next key exists (and was published) before promoting.
    ensure_keys(store, alg, now, 0)?;
    let fresh = StoredKey::generate(alg, now)?;
    store
        .rotate(alg, now, &fresh)?
        .ok_or_else(|| IdpError::Task("no next key to rotate to".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polled_keys_are_re_read_on_reload_and_when_old_and_kept_when_the_store_fails() {
        let reads = std::sync::atomic::AtomicU32::new(0);
        let reads = &reads;
        // Counts the reads actually made (the future runs only when read).
        let read = |ok: bool| async move {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if ok { Ok(n) } else { Err("store down") }
        };
        let long = Polled::new(Duration::from_secs(3600));
        assert_eq!(*long.get(1, "t", read(true)).await.unwrap(), 0);
        assert_eq!(*long.get(1, "t", read(true)).await.unwrap(), 0, "cached");
        assert_eq!(
            *long.get(2, "t", read(true)).await.unwrap(),
            1,
            "a reload re-reads"
        );
        let short = Polled::new(Duration::ZERO);
        assert!(
            short.get(1, "t", read(false)).await.is_err(),
            "nothing to keep"
        );
        assert_eq!(*short.get(1, "t", read(true)).await.unwrap(), 3);
        assert_eq!(
            *short.get(1, "t", read(true)).await.unwrap(),
            4,
            "too old: re-read"
        );
        assert_eq!(
            *short.get(1, "t", read(false)).await.unwrap(),
            4,
            "the store failing keeps the keys in force"
        );
    }

    #[test]
    fn first_start_makes_a_signing_key_and_a_next_one_that_rotation_promotes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteIdpStore::open(dir.path()).unwrap();
        let r1 = ensure_keys(&store, KeyAlg::Rs256, 100, 3600).unwrap();
        assert_eq!(r1.published.len(), 2);
        let next = r1
            .published
            .iter()
            .find(|k| k.kid != r1.active.kid)
            .unwrap()
            .kid
            .clone();
        // A restart finds the same keys.
        let again = ensure_keys(&store, KeyAlg::Rs256, 200, 3600).unwrap();
        assert_eq!(again.active.kid, r1.active.kid);
        assert_eq!(again.jwks(), r1.jwks());
        let promoted = rotate_key(&store, KeyAlg::Rs256, 300).unwrap();
        assert_eq!(
            promoted, next,
            "the key that signs next was published first"
        );
        let r2 = ensure_keys(&store, KeyAlg::Rs256, 301, 3600).unwrap();
        assert_eq!(r2.active.kid, next);
        assert_eq!(r2.published.len(), 3, "old, current and a new next key");
        let token = r1.active.sign("JWT", &serde_json::json!({"a": 1})).unwrap();
        assert!(r2.verify(&token).is_some(), "old tokens still verify");
        let r3 = ensure_keys(&store, KeyAlg::Rs256, 300 + 3600, 3600).unwrap();
        assert_eq!(
            r3.published.len(),
            2,
            "the retired key left after its tokens expired"
        );
        assert!(r3.verify(&token).is_none());
    }
}
