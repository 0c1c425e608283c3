//! The state every web route shares, built by the composition root from
//! exactly what the web side uses: the configuration handle, the credential
//! checker, the identity store, metrics; plus the identity providers of the
//! current generation and who a session user is now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::{info, warn};

use super::pages::no_role;
use super::session::{LOGIN_COOKIE, SAML_COOKIE, SessionTable, SessionUser};
use crate::authn::Credentials;
use crate::config::{Config, ConfigHandle};
#[cfg(test)]
use crate::identity::IdentityStore;
use crate::identity::{Identities, Profile};
use crate::metrics::Exposition;
use crate::oidc::{OidcMetrics, Provider};
use crate::policy::{ALL_USERS, ClientCtx, GroupId, Identity, Source};
use crate::saml::{LoginState, SamlProvider};
use crate::store::ephemeral::{Kind, PendingStore};

/// What the web side is built from.
#[derive(Debug)]
pub struct WebParts {
    pub config: ConfigHandle,
    pub credentials: Credentials,
    pub identity: Option<Identities>,
    pub exposition: Exposition,
    pub oidc_metrics: OidcMetrics,
    pub saml_metrics: OidcMetrics,
    pub http_metrics: super::HttpMetrics,
    /// The provider side for appliance consoles, when it runs.
    pub idp: Option<Arc<crate::idp::Provider>>,
    /// With a shared store: whether it answers, for `/healthz`.
    pub store_health: Option<crate::store::StoreHealth>,
    /// With a shared store: sessions there, under the shared cookie key.
    pub shared_sessions: Option<SharedSessions>,
}

/// Sessions in the shared store and the cookie key every node signs with.
#[derive(Clone)]
pub struct SharedSessions {
    pub sessions: crate::store::PgSessions,
    /// Set once the store has answered (a node may start during an
    /// outage); until then every page but `/healthz` and `/metrics` is the
    /// store-unavailable page, so no cookie is signed or checked with a key
    /// the other nodes do not share.
    pub cookie_key: Arc<std::sync::OnceLock<[u8; 32]>>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedSessions").finish_non_exhaustive()
    }
}

/// The state the web routes share.
pub struct Web {
    pub(super) config: ConfigHandle,
    pub(super) credentials: Credentials,
    identity: Option<Identities>,
    pub(super) exposition: Exposition,
    /// Signs cookies; random per process, so a restart ends every session,
    /// unless a shared store gives every node the same one.
    key: [u8; 32],
    /// The shared store's key, once it answered.
    shared_key: Option<Arc<std::sync::OnceLock<[u8; 32]>>>,
    pub(super) sessions: Mutex<SessionTable>,
    /// Started OIDC logins by `state`: the provider and what the callback
    /// needs; in the shared store when there is one, so any node may get
    /// the callback.
    pub(super) pending: PendingStore<super::oidc::OidcPending>,
    providers: ByGeneration<Provider>,
    pub(super) metrics: OidcMetrics,
    saml_providers: ByGeneration<SamlProvider>,
    pub(super) saml_state: LoginState,
    pub(super) saml_metrics: OidcMetrics,
    pub(super) http_metrics: super::HttpMetrics,
    pub(super) idp: Option<Arc<crate::idp::Provider>>,
    pub(super) console: super::console::ConsoleState,
    pub(super) store_health: Option<crate::store::StoreHealth>,
    pub(super) shared_sessions: Option<crate::store::PgSessions>,
    pub(super) saml_idp: super::console_saml::SamlIdpState,
}

impl Web {
    pub fn new(parts: WebParts) -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("system CSPRNG");
        let mut shared_key = None;
        let shared_sessions = parts.shared_sessions.map(|s| {
            shared_key = Some(s.cookie_key);
            s.sessions
        });
        // Login state goes where the sessions go, so any node that accepts
        // a session can also finish the login that made it.
        let store = shared_sessions.as_ref().map(|s| s.store().clone());
        Self {
            config: parts.config,
            credentials: parts.credentials,
            identity: parts.identity,
            exposition: parts.exposition,
            key,
            shared_key,
            sessions: Mutex::new(HashMap::new()),
            pending: match &store {
                Some(s) => PendingStore::shared(Kind::OidcLogin, s.clone()),
                None => PendingStore::in_memory(Kind::OidcLogin),
            },
            providers: ByGeneration::default(),
            metrics: parts.oidc_metrics,
            saml_providers: ByGeneration::default(),
            saml_state: store
                .clone()
                .map_or_else(LoginState::default, LoginState::shared),
            saml_metrics: parts.saml_metrics,
            http_metrics: parts.http_metrics,
            idp: parts.idp,
            console: super::console::ConsoleState::new(store.as_ref()),
            store_health: parts.store_health,
            shared_sessions,
            saml_idp: super::console_saml::SamlIdpState::new(store.as_ref()),
        }
    }

    /// The key cookies are signed with. Before a shared store's key is
    /// known (the routes are closed then) this process's own.
    pub(super) fn key(&self) -> &[u8; 32] {
        self.shared_key
            .as_ref()
            .and_then(|k| k.get())
            .unwrap_or(&self.key)
    }

    /// Whether the web side waits for its shared store to answer first.
    pub(super) fn waiting_for_store(&self) -> bool {
        self.shared_key.as_ref().is_some_and(|k| k.get().is_none())
    }

    /// The provider `name` of `config`'s generation, built on first use.
    pub(super) fn saml_provider(&self, config: &Config, name: &str) -> Option<Arc<SamlProvider>> {
        self.saml_providers.get(config.generation, name, || {
            built(
                &config.saml,
                |s| &s.name,
                "saml",
                |s| SamlProvider::new(s.clone()),
            )
        })
    }

    pub fn identity(&self) -> Option<Identities> {
        self.identity.clone()
    }

    /// The provider `name` of `config`'s generation, built on first use.
    pub(super) fn provider(&self, config: &Config, name: &str) -> Option<Arc<Provider>> {
        self.providers.get(config.generation, name, || {
            built(
                &config.oidc,
                |s| &s.name,
                "oidc",
                |s| Provider::new(s.clone(), Some(self.metrics.clone())),
            )
        })
    }

    /// Whether the table grants `user` a role: an external user whom no
    /// mapping and no default role covers gets no session.
    pub(super) async fn grants_role(&self, user: &SessionUser) -> bool {
        self.resolve(user)
            .await
            .is_some_and(|r| r.decision.is_some())
    }

    /// Who the session user is now: source, group names and the decision of
    /// the table. `None` when the user no longer exists or is disabled.
    /// Who the session user is now: source, group names and the decision of
    /// the table. `None` when the user no longer exists or is disabled.
    pub async fn resolve(&self, user: &SessionUser) -> Option<Resolved> {
        let config = self.config.load_full();
        let (name, source, groups, extra) = match user {
            SessionUser::Local { name } => {
                let u = config.users.active(name).ok()?;
                let groups: Vec<GroupId> = u.groups.to_vec();
                let extra = serde_json::json!({
                    "email": config.users.email(u),
                    "full_name": config.users.full_name(u),
                });
                (name.clone(), Source::Local, groups, extra)
            }
            SessionUser::External { provider, subject } => {
                // A session through a provider since removed ends.
                let configured = config.oidc.iter().any(|p| &p.name == provider)
                    || config.saml.iter().any(|p| &p.name == provider);
                if !configured {
                    return None;
                }
                let store = self.identity.as_ref()?;
                let u = match store.get(provider, subject).await {
                    Ok(u) => u?,
                    Err(e) => {
                        warn!(error = %e, "external user lookup failed");
                        return None;
                    }
                };
                let mut groups: Vec<GroupId> = u
                    .groups
                    .iter()
                    .filter_map(|g| config.policy.group_id(g))
                    .collect();
                groups.push(config.policy.all_users());
                let extra = serde_json::json!({
                    "provider": u.provider,
                    "subject": u.subject,
                    "email": u.email,
                    "full_name": u.full_name,
                });
                (u.username, Source::External, groups, extra)
            }
        };
        let identity = Identity {
            user: &name,
            groups: &groups,
            source,
        };
        let decision = config
            .policy
            .decide(&identity, &ClientCtx { name: "web" })
            .ok()
            .map(|g| Decision {
                role: g.role.name.to_string(),
                priv_lvl: g.role.priv_lvl,
                rbac_roles: g.role.rbac_roles.to_string(),
                rbac_aag: g.role.rbac_aag.to_string(),
                admin: g.role.admin,
            });
        let mut group_names: Vec<String> = groups
            .iter()
            .map(|g| config.policy.group_name(*g).to_string())
            .collect();
        group_names.dedup();
        Some(Resolved {
            user: name,
            source,
            groups: group_names,
            decision,
            extra,
        })
    }
}

/// Which kind of identity provider a login came through.
#[derive(Debug, Clone, Copy)]
pub(super) enum Via {
    Oidc,
    Saml,
}

impl Web {
    /// Stores an external login and says who its session is for, if the
    /// table grants them a role; otherwise the refusal page (counted as
    /// `no_role`) and no session.
    pub(super) async fn admit_external(
        &self,
        via: Via,
        login: &Profile<'_>,
    ) -> Result<SessionUser, Response> {
        let user = self.store_external(login).await?;
        let (kind, metrics, cookie) = match via {
            Via::Oidc => ("oidc", &self.metrics, LOGIN_COOKIE),
            Via::Saml => ("saml", &self.saml_metrics, SAML_COOKIE),
        };
        let who = SessionUser::External {
            provider: user.provider.clone(),
            subject: user.subject.clone(),
        };
        if !self.grants_role(&who).await {
            warn!(kind, provider = %user.provider, user = %user.username, groups = ?user.groups, "web login refused: no role");
            metrics.login(login.provider, "no_role");
            return Err(no_role(cookie));
        }
        info!(kind, provider = %user.provider, user = %user.username, groups = ?user.groups, "web login");
        Ok(who)
    }

    /// Creates or updates an external user with their groups (synced against
    /// the table's groups, built-ins untouched), off the runtime.
    async fn store_external(
        &self,
        login: &Profile<'_>,
    ) -> Result<crate::identity::ExternalUser, Response> {
        let failed = || {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "login could not be recorded",
            )
                .into_response()
        };
        let Some(store) = self.identity.clone() else {
            warn!(
                provider = login.provider,
                "no identity store: external login refused"
            );
            return Err(failed());
        };
        let config = self.config.load_full();
        let local_groups: Vec<String> = config
            .policy
            .groups()
            .iter()
            .filter(|g| g.as_ref() != ALL_USERS_NAME)
            .map(|g| g.to_string())
            .collect();
        match store
            .login(login, local_groups, vec![ALL_USERS_NAME.to_string()])
            .await
        {
            Ok(u) => Ok(u),
            Err(e) => {
                warn!(error = %e, "external user could not be stored");
                Err(failed())
            }
        }
    }
}

/// The built-in group every user is in; never synced from a token.
const ALL_USERS_NAME: &str = ALL_USERS;

/// Identity providers of one configuration generation, rebuilt on first use
/// after a reload so changed settings (and fresh caches) apply.
struct ByGeneration<P>(Mutex<(u64, HashMap<String, Arc<P>>)>);

impl<P> Default for ByGeneration<P> {
    fn default() -> Self {
        Self(Mutex::new((0, HashMap::new())))
    }
}

impl<P> ByGeneration<P> {
    fn get(
        &self,
        generation: u64,
        name: &str,
        build: impl FnOnce() -> HashMap<String, Arc<P>>,
    ) -> Option<Arc<P>> {
        let mut p = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if p.0 != generation {
            *p = (generation, build());
        }
        p.1.get(name).cloned()
    }
}

/// Every configured provider that builds, by name; one that does not is
/// logged and left out.
fn built<S, P, E: std::fmt::Display>(
    settings: &[S],
    name: impl Fn(&S) -> &String,
    kind: &str,
    make: impl Fn(&S) -> Result<P, E>,
) -> HashMap<String, Arc<P>> {
    let mut map = HashMap::new();
    for s in settings {
        match make(s) {
            Ok(p) => {
                map.insert(name(s).clone(), Arc::new(p));
            }
            Err(e) => warn!(provider = %name(s), kind, error = %e, "identity provider unusable"),
        }
    }
    map
}

/// A session user as the table sees them now.
pub struct Resolved {
    pub user: String,
    pub source: Source,
    pub groups: Vec<String>,
    /// `None` when the table refuses them.
    pub decision: Option<Decision>,
    pub extra: serde_json::Value,
}

/// What the table grants, as the web side shows it.
pub struct Decision {
    pub role: String,
    pub priv_lvl: u8,
    pub rbac_roles: String,
    pub rbac_aag: String,
    pub admin: bool,
}

impl Resolved {
    pub fn is_admin(&self) -> bool {
        self.decision.as_ref().is_some_and(|d| d.admin)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "user": self.user,
            "source": self.source.as_str(),
            "groups": self.groups,
        });
        match &self.decision {
            Some(d) => {
                v["role"] = d.role.as_str().into();
                v["priv-lvl"] = d.priv_lvl.into();
                v["rbac-roles"] = d.rbac_roles.as_str().into();
                v["rbac-aag"] = d.rbac_aag.as_str().into();
                v["admin"] = d.admin.into();
            }
            None => v["role"] = serde_json::Value::Null,
        }
        if let (Some(o), Some(extra)) = (v.as_object_mut(), self.extra.as_object()) {
            for (k, x) in extra {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn with_issuer(issuer: &str) -> Config {
        testkit::config_from(&format!(
            r#"
[[oidc]]
name = "okta"
issuer = "{issuer}"
client_id = "portcullis"
client_secret = "a-client-secret-for-tests"
redirect_uri = "http://127.0.0.1:8080/auth/oidc/okta/callback"
"#
        ))
    }

    fn web(config: &ConfigHandle) -> Web {
        web_with(config, None)
    }

    fn web_with(config: &ConfigHandle, identity: Option<IdentityStore>) -> Web {
        Web::new(WebParts {
            config: config.clone(),
            credentials: testkit::credentials(),
            identity: identity.map(Identities::from),
            exposition: Exposition::new(Default::default()),
            oidc_metrics: OidcMetrics::default(),
            saml_metrics: OidcMetrics::default(),
            http_metrics: Default::default(),
            idp: None,
            store_health: None,
            shared_sessions: None,
        })
    }

    /// A login that started before a reload and asks for its provider after
    /// it must not leave the old settings cached for the new generation.
    #[test]
    fn providers_are_cached_under_the_generation_of_their_own_config() {
        let handle = ConfigHandle::new(with_issuer("http://127.0.0.1:9001/old"));
        let web = web(&handle);
        let straddling = handle.load_full();
        assert_eq!(handle.replace(with_issuer("http://127.0.0.1:9001/new")), 2);

        let old = web.provider(&straddling, "okta").unwrap();
        assert_eq!(old.settings().issuer, "http://127.0.0.1:9001/old");
        let current = handle.load_full();
        let new = web.provider(&current, "okta").unwrap();
        assert_eq!(new.settings().issuer, "http://127.0.0.1:9001/new");
        // Built once per generation, then shared.
        assert!(Arc::ptr_eq(&new, &web.provider(&current, "okta").unwrap()));
        assert!(web.provider(&current, "nobody").is_none());
    }

    /// The request headers a browser sends back for a session cookie.
    fn cookie_of(set_cookie: &axum::http::HeaderValue) -> axum::http::HeaderMap {
        let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::COOKIE, pair.parse().unwrap());
        h
    }

    #[test]
    fn sessions_are_bounded_per_person_and_end_when_unused() {
        let handle = ConfigHandle::new(with_issuer("http://127.0.0.1:9001/x"));
        let web = web(&handle);
        let bob = SessionUser::Local { name: "bob".into() };
        let first = cookie_of(&web.start_session(bob.clone()));
        let carol = cookie_of(&web.start_session(SessionUser::Local {
            name: "carol".into(),
        }));
        for _ in 0..20 {
            web.start_session(bob.clone());
        }
        let held = |u: &SessionUser| {
            let s = web.sessions.lock().unwrap();
            s.values().filter(|v| v.user == *u).count()
        };
        assert_eq!(held(&bob), 16);
        // bob's oldest gave way; carol's is untouched.
        assert_eq!(web.session(&first), None);
        assert!(web.session(&carol).is_some());
        // Unused for longer than the idle timeout: gone.
        let idle = handle.load().web.session_idle_timeout;
        for v in web.sessions.lock().unwrap().values_mut() {
            v.last_seen -= idle + std::time::Duration::from_secs(1);
        }
        assert_eq!(web.session(&carol), None);
        assert_eq!(
            web.sessions.lock().unwrap().len(),
            16,
            "carol's was removed"
        );
    }

    #[tokio::test]
    async fn an_external_session_ends_when_its_provider_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = IdentityStore::open(dir.path()).unwrap();
        let groups = vec!["netadmins".to_string()];
        store
            .login(
                &Profile {
                    provider: "okta",
                    subject: "u-1",
                    username: "erin",
                    email: None,
                    full_name: None,
                    groups: Some(&groups),
                },
                &groups,
                &[],
            )
            .unwrap();
        let handle = ConfigHandle::new(with_issuer("http://127.0.0.1:9001/x"));
        let web = web_with(&handle, Some(store));
        let erin = SessionUser::External {
            provider: "okta".into(),
            subject: "u-1".into(),
        };
        assert_eq!(web.resolve(&erin).await.unwrap().user, "erin");
        handle.replace(testkit::config_from(""));
        assert!(web.resolve(&erin).await.is_none());
    }
}
