//! The `saml` mode of `[[console]]` and the SAML keys of `[idp]`: entity
//! ID, ACS and SLO URLs, certificates (or the console's SP metadata, a file
//! or fetched from its URL), NameID, what is signed; checked with file, line
//! and key like the rest.

use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::Ctx;
use super::web::url_ok;
use crate::config::raw::{RawConsole, RawIdp};
use crate::idp::saml::keys::{SamlKeys, SigningKey};
use crate::idp::saml::metadata::parse_sp;
use crate::idp::saml::settings::{
    DEFAULT_NAME_ATTRIBUTE, MetadataSource, NAMEID_EMAIL, NAMEID_TRANSIENT, NameIdFrom,
    SamlConsole, SamlIdpSettings, Signed, name_id_format,
};
use crate::idp::settings::{ConsoleSettings, Mode, UsernameFrom};
use crate::saml::IdpCert;

fn read(cx: &mut Ctx<'_>, f: &Spanned<String>, key: &str) -> Option<String> {
    match std::fs::read_to_string(cx.path(f.get_ref())) {
        Ok(t) => Some(t),
        Err(e) => {
            cx.err(f.span(), key, format!("{}: {e}", f.get_ref()));
            None
        }
    }
}

/// The SAML part of one console; errors for SAML keys on other modes and
/// for OAuth/JWT keys on a SAML console.
pub(super) fn console(cx: &mut Ctx<'_>, c: &RawConsole, mode: Mode) -> Option<Arc<SamlConsole>> {
    let name = c.name.get_ref();
    let key = |k: &str| format!("console[{name}].{k}");
    let saml_keys: [(&str, Option<std::ops::Range<usize>>); 11] = [
        (
            "metadata_refresh",
            c.metadata_refresh.as_ref().map(Spanned::span),
        ),
        ("entity_id", c.entity_id.as_ref().map(Spanned::span)),
        (
            "sp_metadata_url",
            c.sp_metadata_url.as_ref().map(Spanned::span),
        ),
        (
            "sp_metadata_ca_file",
            c.sp_metadata_ca_file.as_ref().map(Spanned::span),
        ),
        ("acs_url", c.acs_url.as_ref().map(Spanned::span)),
        ("slo_url", c.slo_url.as_ref().map(Spanned::span)),
        ("cert_file", c.cert_file.as_ref().map(Spanned::span)),
        (
            "sp_metadata_file",
            c.sp_metadata_file.as_ref().map(Spanned::span),
        ),
        (
            "name_id_format",
            c.name_id_format.as_ref().map(Spanned::span),
        ),
        ("name_id_from", c.name_id_from.as_ref().map(Spanned::span)),
        ("sign", c.sign.as_ref().map(Spanned::span)),
    ];
    if mode != Mode::Saml {
        for (k, span) in saml_keys {
            if let Some(span) = span {
                cx.err(span, key(k), "only for `mode = \"saml\"`");
            }
        }
        if c.idp_initiated.is_some()
            || c.require_signed_requests.is_some()
            || c.assertion_ttl.is_some()
        {
            cx.err(
                c.name.span(),
                key("mode"),
                "`idp_initiated`, `require_signed_requests` and `assertion_ttl` are only for `mode = \"saml\"`",
            );
        }
        return None;
    }
    let not_here: [(&str, Option<std::ops::Range<usize>>); 6] = [
        ("client_secret", c.client_secret.as_ref().map(Spanned::span)),
        (
            "redirect_uris",
            c.redirect_uris
                .as_ref()
                .map(|r| r.first().map_or_else(|| c.name.span(), Spanned::span)),
        ),
        ("consume_url", c.consume_url.as_ref().map(Spanned::span)),
        ("jwt_alg", c.jwt_alg.as_ref().map(Spanned::span)),
        ("scopes", c.scopes.as_ref().map(|_| c.name.span())),
        ("audience", c.audience.as_ref().map(Spanned::span)),
    ];
    for (k, span) in not_here {
        if let Some(span) = span {
            cx.err(
                span,
                key(k),
                "not for `mode = \"saml\"` (the audience is `entity_id`)",
            );
        }
    }
    let url = |cx: &mut Ctx<'_>, u: &Spanned<String>, k: &str| -> Option<String> {
        if url_ok(u.get_ref()) && !u.get_ref().contains('#') {
            Some(u.get_ref().clone())
        } else {
            cx.err(
                u.span(),
                key(k),
                "expected an https:// URL without a fragment (http:// only on loopback)",
            );
            None
        }
    };
    if let (Some(_), Some(u)) = (&c.sp_metadata_file, &c.sp_metadata_url) {
        cx.err(
            u.span(),
            key("sp_metadata_url"),
            "give `sp_metadata_file` or `sp_metadata_url`, not both",
        );
        return None;
    }
    if let (Some(f), None) = (&c.sp_metadata_ca_file, &c.sp_metadata_url) {
        cx.err(
            f.span(),
            key("sp_metadata_ca_file"),
            "only with `sp_metadata_url`",
        );
    }
    let md = c.sp_metadata_file.as_ref().and_then(|f| {
        let text = read(cx, f, &key("sp_metadata_file"))?;
        match parse_sp(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                cx.err(f.span(), key("sp_metadata_file"), e.to_string());
                None
            }
        }
    });
    let by_url = c.sp_metadata_url.is_some();
    let mut metadata = None;
    let md = match &c.sp_metadata_url {
        Some(u) => {
            let (info, source) = sp_metadata_from_url(cx, c, u)?;
            metadata = Some(source);
            Some(info)
        }
        None => {
            if let Some(r) = &c.metadata_refresh {
                cx.err(
                    r.span(),
                    key("metadata_refresh"),
                    "only with `sp_metadata_url`",
                );
            }
            md
        }
    };
    let acs_url = match (&c.acs_url, &md) {
        (Some(u), _) => url(cx, u, "acs_url")?,
        (None, Some(m)) => m.acs_url.clone(),
        (None, None) => {
            if c.sp_metadata_file.is_none() && !by_url {
                cx.err(
                    c.name.span(),
                    key("acs_url"),
                    "a SAML console needs its ACS URL (or `sp_metadata_file` or `sp_metadata_url`)",
                );
            }
            return None;
        }
    };
    let entity_id = match (&c.entity_id, &md) {
        (Some(e), _) if e.get_ref().is_empty() => {
            cx.err(e.span(), key("entity_id"), "must not be empty");
            return None;
        }
        (Some(e), _) => e.get_ref().clone(),
        (None, Some(m)) => m.entity_id.clone(),
        // As consoles tell their admins: the ACS URL is the entity ID too.
        (None, None) => acs_url.clone(),
    };
    let slo_url = match (&c.slo_url, &md) {
        (Some(u), _) => url(cx, u, "slo_url"),
        (None, Some(m)) => m.slo_url.clone(),
        (None, None) => None,
    };
    let mut certs: Vec<IdpCert> = md.as_ref().map(|m| m.certs.clone()).unwrap_or_default();
    if let Some(f) = &c.cert_file
        && let Some(text) = read(cx, f, &key("cert_file"))
    {
        match IdpCert::from_pem(&text) {
            Ok(cs) => certs = cs,
            Err(e) => cx.err(f.span(), key("cert_file"), e.to_string()),
        }
    }
    let require_signed_requests = c.require_signed_requests.unwrap_or(false);
    if require_signed_requests && certs.is_empty() {
        cx.err(
            c.name.span(),
            key("require_signed_requests"),
            "needs the console's certificate (`cert_file`, `sp_metadata_file` or `sp_metadata_url`)",
        );
    }
    let format = match &c.name_id_format {
        None => crate::idp::saml::settings::NAMEID_UNSPECIFIED,
        Some(f) => name_id_format(f.get_ref()).unwrap_or_else(|| {
            cx.err(
                f.span(),
                key("name_id_format"),
                "expected `unspecified`, `emailAddress`, `persistent`, `transient` or their URN",
            );
            crate::idp::saml::settings::NAMEID_UNSPECIFIED
        }),
    };
    let name_id_from = match &c.name_id_from {
        _ if format == NAMEID_TRANSIENT => NameIdFrom::Random,
        None => NameIdFrom::Email,
        Some(v) => NameIdFrom::parse(v.get_ref()).unwrap_or_else(|| {
            cx.err(
                v.span(),
                key("name_id_from"),
                "expected `email`, `name` or `subject`",
            );
            NameIdFrom::Email
        }),
    };
    if format == NAMEID_EMAIL && name_id_from != NameIdFrom::Email {
        let span = c
            .name_id_from
            .as_ref()
            .map_or_else(|| c.name.span(), Spanned::span);
        cx.err(
            span,
            key("name_id_from"),
            "the emailAddress format carries the email",
        );
    }
    let signed = match &c.sign {
        None => Signed::Both,
        Some(s) => Signed::parse(s.get_ref()).unwrap_or_else(|| {
            cx.err(
                s.span(),
                key("sign"),
                "expected `response`, `assertion` or `both`",
            );
            Signed::Both
        }),
    };
    let ttl = cx.int(&c.assertion_ttl, &key("assertion_ttl"), 30..3_601, 300);
    Some(Arc::new(SamlConsole {
        entity_id,
        acs_url,
        slo_url,
        certs,
        require_signed_requests,
        name_id_format: format,
        name_id_from,
        signed,
        idp_initiated: c.idp_initiated.unwrap_or(false),
        assertion_ttl: Duration::from_secs(ttl as u64),
        metadata,
    }))
}

/// A console's SP metadata from `sp_metadata_url`: fetched when loading a
/// file (and kept as the last good copy), else that copy. A failed fetch
/// with a copy at hand is a warning; without one, an error.
fn sp_metadata_from_url(
    cx: &mut Ctx<'_>,
    c: &RawConsole,
    u: &Spanned<String>,
) -> Option<(crate::idp::saml::metadata::SpInfo, MetadataSource)> {
    use crate::idp::saml::sp_fetch;
    let k = format!("console[{}].sp_metadata_url", c.name.get_ref());
    let refresh = cx.int(
        &c.metadata_refresh,
        &format!("console[{}].metadata_refresh", c.name.get_ref()),
        0..604_801,
        3600,
    );
    let url = u.get_ref();
    if !url_ok(url) || url.contains('#') {
        cx.err(
            u.span(),
            k,
            "expected an https:// URL without a fragment (http:// only on loopback)",
        );
        return None;
    }
    let ca = match &c.sp_metadata_ca_file {
        Some(f) => {
            let ck = format!("console[{}].sp_metadata_ca_file", c.name.get_ref());
            Some(read(cx, f, &ck)?)
        }
        None => None,
    };
    let cache = sp_fetch::cache_path(&cx.data_dir, c.name.get_ref(), url);
    let source = MetadataSource {
        url: url.clone(),
        ca_pem: ca.clone(),
        refresh: (refresh > 0).then(|| Duration::from_secs(refresh as u64)),
        cache: cache.clone(),
    };
    let failed = if cx.fetch_metadata {
        match sp_fetch::fetch(
            url,
            ca.as_deref().map(str::as_bytes),
            sp_fetch::FETCH_TIMEOUT,
        ) {
            Ok((text, info)) => {
                if let Err(e) = sp_fetch::store(&cache, &text) {
                    cx.warn(
                        u.span(),
                        k,
                        format!("cannot keep a copy at {}: {e}", cache.display()),
                    );
                }
                return Some((info, source));
            }
            // The CA file itself is wrong: no copy makes that right.
            Err(e @ sp_fetch::SpFetchError::Ca(_)) => {
                let span = c
                    .sp_metadata_ca_file
                    .as_ref()
                    .map_or_else(|| u.span(), Spanned::span);
                let ck = format!("console[{}].sp_metadata_ca_file", c.name.get_ref());
                cx.err(span, ck, e.to_string());
                return None;
            }
            Err(e) => e.to_string(),
        }
    } else {
        "not fetched when only validating text".to_string()
    };
    match sp_fetch::cached(&cache) {
        Some((info, at)) => {
            let age = std::time::SystemTime::now()
                .duration_since(at)
                .map_or(0, |d| d.as_secs());
            cx.warn(
                u.span(),
                k,
                format!(
                    "{failed}; using the last good copy ({}, fetched {age} s ago)",
                    cache.display()
                ),
            );
            Some((info, source))
        }
        None => {
            cx.err(u.span(), k, format!("{failed} (and no earlier copy)"));
            None
        }
    }
}

/// SAML consoles' attribute defaults: `ec-name`, carrying the email (as
/// the console setup suggests) unless `username_claim`/`username_from`
/// say otherwise. Also: two SAML consoles may not share an entity ID.
pub(super) fn defaults(cx: &mut Ctx<'_>, c: &RawConsole, out: &mut [ConsoleSettings]) {
    let Some((last, before)) = out.split_last_mut() else {
        return;
    };
    if last.mode != Mode::Saml {
        return;
    }
    if c.username_claim.is_none() {
        last.username_claim = DEFAULT_NAME_ATTRIBUTE.to_string();
    }
    if c.username_from.is_none() {
        last.username_from = UsernameFrom::Email;
    }
    if let Some(s) = &last.saml
        && before
            .iter()
            .any(|o| o.saml.as_ref().is_some_and(|b| b.entity_id == s.entity_id))
    {
        let span = c
            .entity_id
            .as_ref()
            .map_or_else(|| c.name.span(), Spanned::span);
        let name = c.name.get_ref();
        cx.err(
            span,
            format!("console[{name}].entity_id"),
            "another SAML console has this entity ID",
        );
    }
}

/// `[idp]`'s SAML part.
pub(super) fn idp(cx: &mut Ctx<'_>, raw: &RawIdp) -> SamlIdpSettings {
    let mut s = SamlIdpSettings {
        entity_id: raw.saml_entity_id.as_ref().map(|e| e.get_ref().clone()),
        configured: None,
    };
    if let Some(e) = &raw.saml_entity_id
        && e.get_ref().is_empty()
    {
        cx.err(e.span(), "idp.saml_entity_id", "must not be empty");
    }
    match (&raw.saml_key_file, &raw.saml_cert_file) {
        (None, None) => {
            if let Some(n) = &raw.saml_next_cert_file {
                cx.err(
                    n.span(),
                    "idp.saml_next_cert_file",
                    "only with `saml_key_file` and `saml_cert_file` (generated keys make their own)",
                );
            }
        }
        (Some(k), Some(c)) => {
            let (Some(kt), Some(ct)) = (
                read(cx, k, "idp.saml_key_file"),
                read(cx, c, "idp.saml_cert_file"),
            ) else {
                return s;
            };
            let active = match SigningKey::from_pem(&kt, &ct, k.get_ref()) {
                Ok(a) => a,
                Err(e) => {
                    cx.err(k.span(), "idp.saml_key_file", e.to_string());
                    return s;
                }
            };
            let next = raw.saml_next_cert_file.as_ref().and_then(|n| {
                let t = read(cx, n, "idp.saml_next_cert_file")?;
                match IdpCert::from_pem(&t) {
                    Ok(mut v) => Some(v.remove(0)),
                    Err(e) => {
                        cx.err(n.span(), "idp.saml_next_cert_file", e.to_string());
                        None
                    }
                }
            });
            s.configured = Some(Arc::new(SamlKeys { active, next }));
        }
        (k, c) => {
            let span = k.as_ref().or(c.as_ref()).map(Spanned::span).unwrap_or(0..0);
            cx.err(
                span,
                "idp.saml_key_file",
                "`saml_key_file` and `saml_cert_file` go together",
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::from_str;
    use crate::idp::saml::settings::{NAMEID_UNSPECIFIED, NameIdFrom, Signed};
    use crate::idp::settings::{Mode, UsernameFrom};

    #[test]
    fn the_demo_saml_console_loads_as_design_lists_it() {
        let c = crate::testkit::demo_config();
        let o = c
            .consoles
            .iter()
            .find(|c| c.name == "orchestrator-saml")
            .unwrap();
        assert_eq!(o.mode, Mode::Saml);
        let s = o.saml.as_ref().unwrap();
        assert_eq!(s.entity_id, "http://127.0.0.1:9602/saml/acs");
        assert_eq!(s.acs_url, "http://127.0.0.1:9602/saml/acs");
        assert_eq!(
            (
                o.username_claim.as_str(),
                o.roles_claim.as_str(),
                o.aag_claim.as_str()
            ),
            ("ec-name", "ec-roles", "ec-aag")
        );
        assert_eq!(o.username_from, UsernameFrom::Email);
        assert_eq!(s.signed, Signed::Both);
        assert_eq!(s.name_id_format, NAMEID_UNSPECIFIED);
        assert_eq!(s.name_id_from, NameIdFrom::Email);
        assert!(!s.idp_initiated && !s.require_signed_requests && s.slo_url.is_none());
    }

    #[test]
    fn the_entity_id_defaults_to_the_acs_url() {
        let c = from_str(
            Path::new("t.toml"),
            "[[console]]\nname = \"s\"\nmode = \"saml\"\nacs_url = \"https://c.example/saml/acs\"\n",
        )
        .unwrap()
        .config;
        let s = c.consoles[0].saml.as_ref().unwrap();
        assert_eq!(s.entity_id, "https://c.example/saml/acs");
        assert_eq!(c.consoles[0].username_claim, "ec-name");
    }

    #[test]
    fn a_configured_signing_pair_replaces_the_generated_one() {
        let data = format!("{}/tests/data/saml", env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            "[idp]\nsaml_entity_id = \"https://idp.example/saml\"\n\
             saml_key_file = \"{data}/sp-key.pem\"\nsaml_cert_file = \"{data}/sp-cert.pem\"\n\
             saml_next_cert_file = \"{data}/idp-cert.pem\"\n"
        );
        let c = from_str(Path::new("t.toml"), &text).unwrap().config;
        let k = c.idp.saml.configured.as_ref().unwrap();
        assert_eq!(k.published().count(), 2);
        assert_eq!(
            c.idp.saml.entity_id.as_deref(),
            Some("https://idp.example/saml")
        );
        // A certificate that is not the key's is refused.
        let wrong = text.replace("sp-cert.pem", "idp-cert.pem");
        let e = from_str(Path::new("t.toml"), &wrong).unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].key.as_str()), (3, "idp.saml_key_file"));
    }

    #[test]
    fn a_console_by_metadata_url_uses_its_last_good_copy_or_says_where() {
        use crate::idp::saml::sp_fetch::{cache_path, store};
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let url = "https://sp.example/saml/metadata";
        let text = format!(
            "[server]\ndata_dir = {:?}\n\n[[console]]\nname = \"p\"\nmode = \"saml\"\n\
             sp_metadata_url = \"{url}\"\n",
            data.display().to_string()
        );
        // Validating text fetches nothing: without a copy, an error there.
        let e = from_str(Path::new("t.toml"), &text).unwrap_err();
        assert_eq!(
            (e.0[0].line, e.0[0].key.as_str()),
            (7, "console[p].sp_metadata_url")
        );
        assert!(e.0[0].message.contains("no earlier copy"), "{}", e.0[0]);
        let md = crate::saml::metadata::SpMetadata {
            entity_id: "https://sp.example/saml/metadata",
            acs_url: "https://sp.example/saml/acs",
            slo_url: "https://sp.example/saml/slo",
            name_id_format: NAMEID_UNSPECIFIED,
            signs_requests: false,
            cert: None,
        }
        .render();
        store(&cache_path(&data, "p", url), &md).unwrap();
        let l = from_str(Path::new("t.toml"), &text).unwrap();
        let s = l.config.consoles[0].saml.as_ref().unwrap();
        assert_eq!(s.acs_url, "https://sp.example/saml/acs");
        assert_eq!(s.slo_url.as_deref(), Some("https://sp.example/saml/slo"));
        assert_eq!(l.warnings[0].key, "console[p].sp_metadata_url");
        assert!(l.warnings[0].message.contains("last good copy"));
        // Not with a file too; a CA only with a URL; no plain http abroad.
        for (extra, line, key) in [
            (
                "sp_metadata_file = \"md.xml\"\n",
                7,
                "console[p].sp_metadata_url",
            ),
            (
                "sp_metadata_ca_file = \"ca.pem\"\n",
                8,
                "console[p].sp_metadata_ca_file",
            ),
        ] {
            let t = if extra.starts_with("sp_metadata_ca") {
                text.replace(
                    &format!("sp_metadata_url = \"{url}\"\n"),
                    "acs_url = \"https://c.example/acs\"\n",
                ) + extra
            } else {
                text.clone() + extra
            };
            let e = from_str(Path::new("t.toml"), &t).unwrap_err();
            let found: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
            assert!(found.contains(&(line, key)), "{found:?}");
        }
        let t = text.replace(url, "http://sp.example/md");
        let e = from_str(Path::new("t.toml"), &t).unwrap_err();
        assert!(
            e.0[0].message.contains("http:// only on loopback"),
            "{}",
            e.0[0]
        );
    }

    #[test]
    fn saml_mistakes_name_their_line_and_key() {
        let text = "[[console]]\nname = \"s\"\nmode = \"saml\"\nredirect_uris = [\"http://127.0.0.1:1/cb\"]\n\
                    sign = \"everything\"\nrequire_signed_requests = true\nname_id_format = \"weird\"\nacs_url = \"http://127.0.0.1:1/acs\"\n\n\
                    [[console]]\nname = \"o\"\nmode = \"oauth\"\nredirect_uris = [\"http://127.0.0.1:1/cb\"]\n\
                    acs_url = \"http://127.0.0.1:1/acs\"\n\n\
                    [[console]]\nname = \"t\"\nmode = \"saml\"\nacs_url = \"http://evil.example/acs\"\n\n\
                    [[console]]\nname = \"u\"\nmode = \"saml\"\n";
        let e = from_str(Path::new("t.toml"), text).unwrap_err();
        let found: Vec<(usize, &str)> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        for want in [
            (4, "console[s].redirect_uris"),
            (5, "console[s].sign"),
            (2, "console[s].require_signed_requests"),
            (7, "console[s].name_id_format"),
            (14, "console[o].acs_url"),
            (19, "console[t].acs_url"),
            (22, "console[u].acs_url"),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
    }
}
