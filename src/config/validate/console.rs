//! `[[console]]` and `[idp]`: the appliance consoles portcullis issues
//! tokens to, checked against the identity providers they may log in with.

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;

use super::Ctx;
use super::web::{provider_name_ok, url_ok};
use crate::config::raw::{RawConsole, RawIdp};
use crate::idp::settings::{
    ConsoleSettings, DEFAULT_AAG_CLAIM, DEFAULT_ROLES_CLAIM, DEFAULT_SCOPES,
    DEFAULT_USERNAME_CLAIM, IdpSettings, JwtAlg, KeyAlg, LoginMethod, Mode, UsernameFrom,
};
use crate::oidc::ProviderSettings;
use crate::saml::settings::SamlSettings;

/// HMAC keys shorter than the hash are weak (RFC 7518 3.2 asks for at least
/// the hash size: 32 bytes for HS256).
const MIN_HMAC_SECRET: usize = 32;

pub(super) fn consoles(
    cx: &mut Ctx<'_>,
    raw: &[RawConsole],
    idp: &RawIdp,
    oidc: &[ProviderSettings],
    saml: &[SamlSettings],
) -> (Vec<ConsoleSettings>, IdpSettings) {
    let mut settings = IdpSettings::default();
    if let Some(i) = &idp.issuer {
        if !url_ok(i.get_ref()) || i.get_ref().ends_with('/') {
            cx.err(
                i.span(),
                "idp.issuer",
                "expected an https:// URL without a trailing `/` (http:// only on loopback)",
            );
        }
        settings.issuer = Some(i.get_ref().clone());
    }
    if let Some(a) = &idp.signing_alg {
        match KeyAlg::parse(a.get_ref()) {
            Some(k) => settings.signing_alg = k,
            None => cx.err(a.span(), "idp.signing_alg", "expected `RS256` or `ES256`"),
        }
    }
    settings.saml = super::console_saml::idp(cx, idp);
    let mut names = HashSet::new();
    let mut client_ids = HashSet::new();
    let mut out = Vec::new();
    for c in raw {
        let name = c.name.get_ref();
        let key = |k: &str| format!("console[{name}].{k}");
        if !provider_name_ok(name) {
            cx.err(
                c.name.span(),
                "console.name",
                "use letters, digits, `-` and `_` only",
            );
            continue;
        }
        if !names.insert(name.clone()) {
            cx.err(c.name.span(), key("name"), "defined twice");
            continue;
        }
        let mode = match c.mode.get_ref().as_str() {
            "oauth" => Mode::OAuth,
            "jwt" => Mode::Jwt,
            "saml" => Mode::Saml,
            other => {
                cx.err(
                    c.mode.span(),
                    key("mode"),
                    format!("`{other}`: expected `oauth`, `jwt` or `saml`"),
                );
                continue;
            }
        };
        let client_id = c
            .client_id
            .as_ref()
            .map_or_else(|| name.clone(), |i| i.get_ref().clone());
        if !client_ids.insert(client_id.clone()) {
            let span = c
                .client_id
                .as_ref()
                .map_or_else(|| c.name.span(), Spanned::span);
            cx.err(span, key("client_id"), "another console has this client id");
        }
        let client_secret = c
            .client_secret
            .as_ref()
            .and_then(|s| cx.secret(s, &key("client_secret")));
        let jwt_alg = match &c.jwt_alg {
            None => JwtAlg::Hs256,
            Some(a) => JwtAlg::parse(a.get_ref()).unwrap_or_else(|| {
                cx.err(
                    a.span(),
                    key("jwt_alg"),
                    "expected `HS256`, `HS384`, `HS512` or `RS256`",
                );
                JwtAlg::Hs256
            }),
        };
        let url = |cx: &mut Ctx<'_>, u: &Spanned<String>, k: &str| {
            let ok = url_ok(u.get_ref()) && !u.get_ref().contains('#');
            if !ok {
                cx.err(
                    u.span(),
                    key(k),
                    "expected an https:// URL without a fragment (http:// only on loopback)",
                );
            }
            ok
        };
        let mut redirect_uris = Vec::new();
        let mut consume_url = None;
        match mode {
            Mode::OAuth => {
                match &c.redirect_uris {
                    Some(list) if !list.is_empty() => {
                        for u in list {
                            if url(cx, u, "redirect_uris") {
                                redirect_uris.push(u.get_ref().clone());
                            }
                        }
                    }
                    _ => cx.err(
                        c.name.span(),
                        key("redirect_uris"),
                        "an OAuth console needs at least one redirect URI",
                    ),
                }
                if let Some(u) = &c.consume_url {
                    cx.err(u.span(), key("consume_url"), "only for `mode = \"jwt\"`");
                }
                if let Some(a) = &c.jwt_alg {
                    cx.err(a.span(), key("jwt_alg"), "only for `mode = \"jwt\"`");
                }
            }
            Mode::Jwt => {
                match &c.consume_url {
                    Some(u) => {
                        if url(cx, u, "consume_url") {
                            consume_url = Some(u.get_ref().clone());
                        }
                    }
                    None => cx.err(
                        c.name.span(),
                        key("consume_url"),
                        "a JWT console needs its token consuming URL",
                    ),
                }
                if let Some(r) = &c.redirect_uris {
                    let span = r.first().map_or_else(|| c.name.span(), Spanned::span);
                    cx.err(span, key("redirect_uris"), "only for `mode = \"oauth\"`");
                }
                let hmac = !matches!(jwt_alg, JwtAlg::Rs256);
                match (&client_secret, &c.client_secret) {
                    (Some(s), Some(raw)) if hmac && s.len() < MIN_HMAC_SECRET => cx.err(
                        raw.span(),
                        key("client_secret"),
                        format!(
                            "an HMAC key needs at least {MIN_HMAC_SECRET} bytes ({} given)",
                            s.len()
                        ),
                    ),
                    (None, None) if hmac => cx.err(
                        c.name.span(),
                        key("client_secret"),
                        "HS256/384/512 sign with the console's secret: set `client_secret`",
                    ),
                    _ => {}
                }
            }
            Mode::Saml => {}
        }
        let scopes = match &c.scopes {
            None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                if !list.iter().any(|s| s.get_ref() == "openid") {
                    let span = list.first().map_or_else(|| c.name.span(), Spanned::span);
                    cx.err(span, key("scopes"), "must include `openid`");
                }
                for s in list {
                    if s.get_ref().is_empty() || s.get_ref().contains(char::is_whitespace) {
                        cx.err(s.span(), key("scopes"), "a scope is one word");
                    }
                }
                list.iter().map(|s| s.get_ref().clone()).collect()
            }
        };
        let claim = |cx: &mut Ctx<'_>, v: &Option<Spanned<String>>, k: &str, d: &str| match v {
            None => d.to_string(),
            Some(s) if s.get_ref().is_empty() || RESERVED.contains(&s.get_ref().as_str()) => {
                cx.err(
                    s.span(),
                    key(k),
                    "must be a claim name other than the registered ones (iss, sub, aud, ...)",
                );
                d.to_string()
            }
            Some(s) => s.get_ref().clone(),
        };
        let username_claim = claim(
            cx,
            &c.username_claim,
            "username_claim",
            DEFAULT_USERNAME_CLAIM,
        );
        let roles_claim = claim(cx, &c.roles_claim, "roles_claim", DEFAULT_ROLES_CLAIM);
        let aag_claim = claim(cx, &c.aag_claim, "aag_claim", DEFAULT_AAG_CLAIM);
        let username_from = match &c.username_from {
            None if username_claim == "email" => UsernameFrom::Email,
            None => UsernameFrom::Name,
            Some(v) => match v.get_ref().as_str() {
                "email" => UsernameFrom::Email,
                "name" => UsernameFrom::Name,
                _ => {
                    cx.err(v.span(), key("username_from"), "expected `email` or `name`");
                    UsernameFrom::Name
                }
            },
        };
        let login_methods = c.login_methods.as_ref().map(|list| {
            list.iter()
                .filter_map(|m| {
                    let parsed = LoginMethod::parse(m.get_ref());
                    let known = match &parsed {
                        Some(LoginMethod::Local) => true,
                        Some(LoginMethod::Oidc(n)) => oidc.iter().any(|p| &p.name == n),
                        Some(LoginMethod::Saml(n)) => saml.iter().any(|p| &p.name == n),
                        None => false,
                    };
                    if !known {
                        cx.err(
                            m.span(),
                            key("login_methods"),
                            format!(
                                "`{}`: expected `local`, `oidc:NAME` or `saml:NAME` of a configured provider",
                                m.get_ref()
                            ),
                        );
                    }
                    parsed.filter(|_| known)
                })
                .collect()
        });
        let secs = |cx: &mut Ctx<'_>, v: &Option<Spanned<i64>>, k: &str, r, d| {
            Duration::from_secs(cx.int(v, &key(k), r, d) as u64)
        };
        let audience = c
            .audience
            .as_ref()
            .map_or_else(|| client_id.clone(), |a| a.get_ref().clone());
        out.push(ConsoleSettings {
            name: name.clone(),
            mode,
            client_id,
            client_secret,
            redirect_uris,
            consume_url,
            audience,
            scopes,
            username_claim,
            username_from,
            roles_claim,
            aag_claim,
            id_token_ttl: secs(cx, &c.id_token_ttl, "id_token_ttl", 60..86_401, 3_600),
            access_token_ttl: secs(
                cx,
                &c.access_token_ttl,
                "access_token_ttl",
                60..86_401,
                3_600,
            ),
            refresh_token_ttl: secs(
                cx,
                &c.refresh_token_ttl,
                "refresh_token_ttl",
                300..31_536_001,
                86_400,
            ),
            code_ttl: secs(cx, &c.code_ttl, "code_ttl", 1..601, 60),
            jwt_alg,
            login_methods,
            saml: super::console_saml::console(cx, c, mode),
        });
        super::console_saml::defaults(cx, c, &mut out);
    }
    (out, settings)
}

/// Claim names the provider sets itself; a console's keys may not shadow them.
const RESERVED: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "nonce",
    "auth_time",
    "azp",
    "at_hash",
    "sid",
    "scope",
    "client_id",
];

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::from_str;
    use crate::idp::settings::{JwtAlg, Mode, UsernameFrom};

    #[test]
    fn the_demo_consoles_load_as_design_lists_them() {
        let c = crate::testkit::demo_config();
        let o = c
            .consoles
            .iter()
            .find(|c| c.name == "orchestrator")
            .unwrap();
        assert_eq!(o.mode, Mode::OAuth);
        assert_eq!(o.client_id, "orchestrator");
        assert!(
            o.client_secret
                .as_ref()
                .unwrap()
                .ct_eq(b"orchestrator-secret-1")
        );
        assert_eq!(
            o.redirect_uris,
            ["http://127.0.0.1:9600/gms/rest/authentication/oauth/redirect"]
        );
        assert_eq!(o.scopes, ["openid", "offline_access", "email"]);
        assert_eq!(
            (
                o.username_claim.as_str(),
                o.roles_claim.as_str(),
                o.aag_claim.as_str()
            ),
            ("email", "ec-roles", "ec-aag")
        );
        assert_eq!(o.username_from, UsernameFrom::Email);
        let j = c
            .consoles
            .iter()
            .find(|c| c.name == "orchestrator-jwt")
            .unwrap();
        assert_eq!(j.mode, Mode::Jwt);
        assert_eq!(j.jwt_alg, JwtAlg::Hs256);
        assert_eq!(j.audience, "orchestrator-jwt");
        assert_eq!(
            j.consume_url.as_deref(),
            Some("http://127.0.0.1:9601/jwt/consume")
        );
        assert!(
            j.client_secret
                .as_ref()
                .unwrap()
                .ct_eq(b"orchestrator-jwt-secret-1-0123456789")
        );
    }

    #[test]
    fn mistakes_name_their_line_and_key() {
        let text = "[[console]]\nname = \"c\"\nmode = \"oauth\"\nredirect_uris = [\"http://evil.example/cb\"]\nlogin_methods = [\"oidc:nope\"]\nroles_claim = \"sub\"\n\n[[console]]\nname = \"j\"\nmode = \"jwt\"\nconsume_url = \"http://127.0.0.1:1/c\"\nclient_secret = \"short-secret-123456\"\n";
        let e = from_str(Path::new("t.toml"), text).unwrap_err();
        let found: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        for want in [
            (4, "console[c].redirect_uris"),
            (5, "console[c].login_methods"),
            (6, "console[c].roles_claim"),
            (12, "console[j].client_secret"),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
        let e = from_str(
            Path::new("t.toml"),
            "[[console]]\nname = \"x\"\nmode = \"saml2\"\n",
        )
        .unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].key.as_str()), (3, "console[x].mode"));
    }
}
