//! `[[saml]]`: SAML 2.0 identity providers. Files (certificates, keys,
//! metadata) are read here, so a bad one is an error naming its key.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::Ctx;
use super::web::{provider_name_ok, url_ok};
use crate::config::WebSettings;
use crate::config::raw::RawSaml;
use crate::oidc::ProviderSettings;
use crate::saml::metadata::{IdpInfo, parse_idp};
use crate::saml::settings::{IdpSource, NAMEID_UNSPECIFIED, SamlSettings};
use crate::saml::{AttributeNames, IdpCert, SpKey};

pub(super) fn saml(
    cx: &mut Ctx<'_>,
    raw: &[RawSaml],
    web: &WebSettings,
    oidc: &[ProviderSettings],
) -> Vec<SamlSettings> {
    let mut names: HashSet<&str> = oidc.iter().map(|o| o.name.as_str()).collect();
    let mut out = Vec::new();
    for p in raw {
        let name = p.name.get_ref();
        let key = |k: &str| format!("saml[{name}].{k}");
        if !provider_name_ok(name) {
            cx.err(
                p.name.span(),
                "saml.name",
                "use letters, digits, `-` and `_` only",
            );
            continue;
        }
        // Names key external users (provider + subject) for OIDC and SAML
        // alike, so they must not collide across the two.
        if !names.insert(name) {
            cx.err(
                p.name.span(),
                key("name"),
                "defined twice (names are shared with [[oidc]])",
            );
            continue;
        }
        let Some(idp) = idp_source(cx, p, &key) else {
            continue;
        };
        let base = web.public_url.as_deref();
        let url = |cx: &mut Ctx<'_>, v: &Option<Spanned<String>>, k: &str, path: &str| match v {
            Some(u) => {
                if !url_ok(u.get_ref()) {
                    cx.err(
                        u.span(),
                        key(k),
                        "expected an https:// URL (http:// only on loopback)",
                    );
                }
                Some(u.get_ref().clone())
            }
            None => match base {
                Some(b) => Some(format!("{b}/auth/saml/{name}/{path}")),
                None => {
                    cx.err(
                        p.name.span(),
                        key(k),
                        format!("set `{k}` or `web.public_url`"),
                    );
                    None
                }
            },
        };
        let acs_url = url(cx, &p.acs_url, "acs_url", "acs");
        let sp_entity_id = match &p.sp_entity_id {
            Some(e) if e.get_ref().is_empty() => {
                cx.err(e.span(), key("sp_entity_id"), "must not be empty");
                None
            }
            Some(e) => Some(e.get_ref().clone()),
            None => url(cx, &None, "sp_entity_id", "metadata"),
        };
        let (Some(acs_url), Some(sp_entity_id)) = (acs_url, sp_entity_id) else {
            continue;
        };
        let slo_url = acs_url
            .strip_suffix("/acs")
            .map_or_else(|| format!("{acs_url}/slo"), |b| format!("{b}/slo"));

        let sp_key = p.sp_key_file.as_ref().and_then(|f| {
            let text = read(cx, f, &key("sp_key_file"))?;
            match SpKey::from_pem(&text) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    cx.err(f.span(), key("sp_key_file"), e.to_string());
                    None
                }
            }
        });
        let sp_cert = p.sp_cert_file.as_ref().and_then(|f| {
            let text = read(cx, f, &key("sp_cert_file"))?;
            match IdpCert::from_pem(&text) {
                Ok(mut c) if !c.is_empty() => Some(c.remove(0)),
                Ok(_) => None,
                Err(e) => {
                    cx.err(f.span(), key("sp_cert_file"), e.to_string());
                    None
                }
            }
        });
        if p.sp_key_file.is_some() != p.sp_cert_file.is_some() {
            let span = p
                .sp_key_file
                .as_ref()
                .or(p.sp_cert_file.as_ref())
                .map(Spanned::span);
            cx.err(
                span.unwrap_or_else(|| p.name.span()),
                key("sp_key_file"),
                "`sp_key_file` and `sp_cert_file` go together",
            );
        }
        if let (Some(k), Some(c)) = (&sp_key, &sp_cert)
            && k.public_key() != c.public_key.as_slice()
        {
            cx.err(
                p.sp_cert_file
                    .as_ref()
                    .map_or_else(|| p.name.span(), Spanned::span),
                key("sp_cert_file"),
                "the certificate is not for `sp_key_file`'s key",
            );
        }
        let sign_requests = match &p.sign_requests {
            Some(s) if *s.get_ref() && sp_key.is_none() => {
                cx.err(s.span(), key("sign_requests"), "needs `sp_key_file`");
                false
            }
            Some(s) => *s.get_ref(),
            None => sp_key.is_some(),
        };
        let attr = |v: &Option<Spanned<String>>, d: &str| {
            v.as_ref()
                .map_or_else(|| d.to_string(), |s| s.get_ref().clone())
        };
        let defaults = AttributeNames::default();
        out.push(SamlSettings {
            name: name.clone(),
            idp,
            sp_entity_id,
            acs_url,
            slo_url,
            sp_key,
            sp_cert,
            sign_requests,
            name_id_format: attr(&p.name_id_format, NAMEID_UNSPECIFIED),
            attributes: AttributeNames {
                username: p.username_attribute.as_ref().map(|s| s.get_ref().clone()),
                email: attr(&p.email_attribute, &defaults.email),
                full_name: attr(&p.name_attribute, &defaults.full_name),
                groups: attr(&p.groups_attribute, &defaults.groups),
            },
            clock_skew: secs(cx.int(&p.clock_skew, &key("clock_skew"), 0..3601, 120)),
            allow_idp_initiated: p.allow_idp_initiated.unwrap_or(false),
            allow_sha1: p.allow_sha1.unwrap_or(false),
            login_timeout: secs(cx.int(&p.login_timeout, &key("login_timeout"), 30..3601, 600)),
            http_timeout: secs(cx.int(&p.http_timeout, &key("http_timeout"), 1..121, 10)),
        });
    }
    out
}

fn secs(v: i64) -> Duration {
    Duration::from_secs(v as u64)
}

fn read(cx: &mut Ctx<'_>, f: &Spanned<String>, key: &str) -> Option<String> {
    match std::fs::read_to_string(cx.path(f.get_ref())) {
        Ok(t) => Some(t),
        Err(e) => {
            cx.err(f.span(), key, format!("cannot read `{}`: {e}", f.get_ref()));
            None
        }
    }
}

fn idp_source(cx: &mut Ctx<'_>, p: &RawSaml, key: &dyn Fn(&str) -> String) -> Option<IdpSource> {
    let given = [
        p.idp_metadata_url.is_some(),
        p.idp_metadata_file.is_some(),
        p.idp_sso_url.is_some() || p.idp_cert_file.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        cx.err(
            p.name.span(),
            key("idp_metadata_url"),
            "give exactly one of `idp_metadata_url`, `idp_metadata_file`, or \
             `idp_sso_url` + `idp_entity_id` + `idp_cert_file`",
        );
        return None;
    }
    let entity_id = p.idp_entity_id.as_ref().map(|e| e.get_ref().clone());
    if let Some(u) = &p.idp_metadata_url {
        if !url_ok(u.get_ref()) {
            cx.err(
                u.span(),
                key("idp_metadata_url"),
                "expected an https:// URL (http:// only on loopback)",
            );
            return None;
        }
        let refresh = secs(cx.int(
            &p.metadata_refresh,
            &key("metadata_refresh"),
            60..604_801,
            86_400,
        ));
        return Some(IdpSource::MetadataUrl {
            url: u.get_ref().clone(),
            entity_id,
            refresh,
        });
    }
    if let Some(f) = &p.idp_metadata_file {
        let text = read(cx, f, &key("idp_metadata_file"))?;
        return match parse_idp(&text, entity_id.as_deref()) {
            Ok(info) => Some(IdpSource::Static(Arc::new(info))),
            Err(e) => {
                cx.err(f.span(), key("idp_metadata_file"), e.to_string());
                None
            }
        };
    }
    let (Some(sso), Some(eid), Some(cert)) = (&p.idp_sso_url, &p.idp_entity_id, &p.idp_cert_file)
    else {
        cx.err(
            p.name.span(),
            key("idp_sso_url"),
            "`idp_sso_url`, `idp_entity_id` and `idp_cert_file` are all required",
        );
        return None;
    };
    if !url_ok(sso.get_ref()) {
        cx.err(
            sso.span(),
            key("idp_sso_url"),
            "expected an https:// URL (http:// only on loopback)",
        );
        return None;
    }
    if let Some(slo) = &p.idp_slo_url
        && !url_ok(slo.get_ref())
    {
        cx.err(
            slo.span(),
            key("idp_slo_url"),
            "expected an https:// URL (http:// only on loopback)",
        );
        return None;
    }
    let text = read(cx, cert, &key("idp_cert_file"))?;
    let certs = match IdpCert::from_pem(&text) {
        Ok(c) => c,
        Err(e) => {
            cx.err(cert.span(), key("idp_cert_file"), e.to_string());
            return None;
        }
    };
    Some(IdpSource::Static(Arc::new(IdpInfo {
        entity_id: eid.get_ref().clone(),
        sso_url: sso.get_ref().clone(),
        slo_url: p.idp_slo_url.as_ref().map(|s| s.get_ref().clone()),
        certs,
    })))
}
