//! `[web]` and `[[oidc]]`: the browser side and the identity providers.

use std::collections::HashSet;
use std::time::Duration;

use super::Ctx;
use crate::config::raw::{RawOidc, RawWeb};
use crate::config::{HttpLimits, WebSettings};
use crate::oidc::{ClientAuth, ClientSecret, IssuerSource, ProviderSettings};

pub(super) fn web(cx: &mut Ctx<'_>, raw: &RawWeb) -> WebSettings {
    let secure_cookies = match &raw.public_url {
        None => false,
        Some(u) => match url::Url::parse(u.get_ref()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url.scheme() == "https",
            _ => {
                cx.err(
                    u.span(),
                    "web.public_url",
                    "expected an http:// or https:// URL",
                );
                false
            }
        },
    };
    WebSettings {
        session_ttl: Duration::from_secs(cx.int(
            &raw.session_ttl,
            "web.session_ttl",
            60..2_592_001,
            28_800,
        ) as u64),
        session_idle_timeout: Duration::from_secs(cx.int(
            &raw.session_idle_timeout,
            "web.session_idle_timeout",
            60..2_592_001,
            1_800,
        ) as u64),
        local_login: raw.local_login.unwrap_or(true),
        break_glass_cidrs: raw
            .break_glass_cidrs
            .iter()
            .flatten()
            .filter_map(|c| {
                let s = c.get_ref().trim();
                match s
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                {
                    Ok(n) => Some(n.trunc()),
                    Err(_) => {
                        cx.err(
                            c.span(),
                            "web.break_glass_cidrs",
                            format!("`{s}` is not a network"),
                        );
                        None
                    }
                }
            })
            .collect(),
        secure_cookies,
        public_url: raw
            .public_url
            .as_ref()
            .map(|u| u.get_ref().trim_end_matches('/').to_string()),
        limits: limits(cx, raw),
    }
}

fn limits(cx: &mut Ctx<'_>, raw: &RawWeb) -> HttpLimits {
    let d = HttpLimits::default();
    let max_connections = cx.int(
        &raw.max_connections,
        "web.max_connections",
        1..1_000_001,
        d.max_connections as i64,
    ) as usize;
    HttpLimits {
        max_connections,
        max_connections_per_address: cx.int(
            &raw.max_connections_per_address,
            "web.max_connections_per_address",
            1..1_000_001,
            d.max_connections_per_address as i64,
        ) as usize,
        header_timeout: Duration::from_secs(cx.int(
            &raw.header_timeout,
            "web.header_timeout",
            1..3601,
            d.header_timeout.as_secs() as i64,
        ) as u64),
        request_timeout: Duration::from_secs(cx.int(
            &raw.request_timeout,
            "web.request_timeout",
            1..3601,
            d.request_timeout.as_secs() as i64,
        ) as u64),
        max_body: cx.int(
            &raw.max_body,
            "web.max_body",
            1024..1_073_741_825,
            d.max_body as i64,
        ) as usize,
    }
}

pub(super) fn oidc(cx: &mut Ctx<'_>, raw: &[RawOidc]) -> Vec<ProviderSettings> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for p in raw {
        let name = p.name.get_ref();
        let key = |k: &str| format!("oidc[{name}].{k}");
        // The name is a URL path segment (/auth/oidc/NAME/callback).
        if !provider_name_ok(name) {
            cx.err(
                p.name.span(),
                "oidc.name",
                "use letters, digits, `-` and `_` only",
            );
            continue;
        }
        if !names.insert(name.clone()) {
            cx.err(p.name.span(), key("name"), "defined twice");
            continue;
        }
        let issuer = match (&p.issuer, &p.domain) {
            (Some(i), None) => {
                if p.server_id.is_some() {
                    cx.err(
                        i.span(),
                        key("server_id"),
                        "`server_id` goes with `domain`, not `issuer`",
                    );
                }
                if !url_ok(i.get_ref()) {
                    cx.err(
                        i.span(),
                        key("issuer"),
                        "expected an https:// URL (http:// only on loopback)",
                    );
                }
                IssuerSource::Url(i.get_ref().clone())
            }
            (None, Some(d)) => IssuerSource::Okta {
                domain: d.get_ref().clone(),
                server_id: p
                    .server_id
                    .as_ref()
                    .map_or_else(|| "default".to_string(), |s| s.get_ref().clone()),
            },
            (Some(i), Some(_)) => {
                cx.err(
                    i.span(),
                    key("issuer"),
                    "give `issuer` or `domain`, not both",
                );
                continue;
            }
            (None, None) => {
                cx.err(
                    p.name.span(),
                    key("issuer"),
                    "`issuer` or `domain` is required",
                );
                continue;
            }
        };
        if !url_ok(p.redirect_uri.get_ref()) {
            cx.err(
                p.redirect_uri.span(),
                key("redirect_uri"),
                "expected an https:// URL (http:// only on loopback)",
            );
        } else if !p
            .redirect_uri
            .get_ref()
            .ends_with(&format!("/auth/oidc/{name}/callback"))
        {
            cx.warn(
                p.redirect_uri.span(),
                key("redirect_uri"),
                format!("portcullis answers at /auth/oidc/{name}/callback"),
            );
        }
        let Some(secret) = cx.secret(&p.client_secret, &key("client_secret")) else {
            continue;
        };
        let Ok(secret) = String::from_utf8(secret.expose().to_vec()) else {
            cx.err(p.client_secret.span(), key("client_secret"), "not UTF-8");
            continue;
        };
        let mut s = ProviderSettings::new(
            name.clone(),
            &issuer,
            p.client_id.get_ref().clone(),
            ClientSecret::new(secret),
            p.redirect_uri.get_ref().clone(),
        );
        if let Some(scopes) = &p.scopes {
            if !scopes.iter().any(|s| s == "openid") {
                cx.err(p.name.span(), key("scopes"), "must include `openid`");
            }
            s.scopes = scopes.clone();
        }
        s.audience = p.audience.clone();
        if let Some(g) = &p.groups_claim {
            s.groups_claim = g.clone();
        }
        if let Some(u) = &p.username_claim {
            s.username_claim = u.clone();
        }
        s.clock_skew =
            Duration::from_secs(cx.int(&p.clock_skew, &key("clock_skew"), 0..3601, 60) as u64);
        s.http_timeout =
            Duration::from_secs(cx.int(&p.http_timeout, &key("http_timeout"), 1..121, 10) as u64);
        if let Some(h) = &p.hmac_secret {
            s.hmac_secret = cx
                .secret(h, &key("hmac_secret"))
                .map(|v| ClientSecret::new(String::from_utf8_lossy(v.expose()).into_owned()));
        }
        s.client_auth = match &p.client_auth {
            None => None,
            Some(a) => match a.get_ref().as_str() {
                "client_secret_basic" => Some(ClientAuth::Basic),
                "client_secret_post" => Some(ClientAuth::Post),
                other => {
                    cx.err(
                        a.span(),
                        key("client_auth"),
                        format!(
                            "`{other}`: expected `client_secret_basic` or `client_secret_post`"
                        ),
                    );
                    None
                }
            },
        };
        out.push(s);
    }
    out
}

/// https, or http to a loopback host (test IdPs, a proxy on the same box).
pub(super) fn url_ok(s: &str) -> bool {
    match url::Url::parse(s) {
        Ok(u) if u.scheme() == "https" => u.host().is_some(),
        Ok(u) if u.scheme() == "http" => match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

/// Provider names are URL path segments (`/auth/oidc/NAME/...`,
/// `/auth/saml/NAME/...`).
pub(super) fn provider_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
