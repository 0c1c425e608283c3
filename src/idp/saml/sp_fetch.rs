//! A console's SP metadata fetched from its URL when the configuration is
//! loaded: bounded in time and size, read by the capped DTD-free parser, and
//! kept as the last good copy in the data directory for when the URL is down.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::metadata::{SpInfo, SpMetadataError, parse_sp};
use super::settings::MetadataSource;
use crate::saml::xml::MAX_XML;

/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SpFetchError {
    #[error("the CA file holds no usable PEM certificate: {0}")]
    Ca(String),
    #[error("GET {url}: {detail}")]
    Http { url: String, detail: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: metadata larger than {MAX_XML} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: not UTF-8")]
    NotUtf8 { url: String },
    #[error("metadata from {url}: {source}")]
    Parse {
        url: String,
        #[source]
        source: SpMetadataError,
    },
}

/// Fetches and parses the SP metadata at `url`: HTTPS checked against the
/// system's roots, or only against `ca_pem` when given; no redirects. Runs
/// on a thread of its own (with a small runtime), so it may be called from
/// anywhere that may block, for up to `timeout`.
pub fn fetch(
    url: &str,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<(String, SpInfo), SpFetchError> {
    let (url, ca) = (url.to_string(), ca_pem.map(<[u8]>::to_vec));
    let t = std::thread::Builder::new()
        .name("sp-metadata".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| SpFetchError::Http {
                    url: url.clone(),
                    detail: format!("starting the fetch: {e}"),
                })?;
            rt.block_on(get(&url, ca.as_deref(), timeout))
        });
    match t {
        Ok(h) => h.join().unwrap_or_else(|_| {
            Err(SpFetchError::Http {
                url: String::new(),
                detail: "the fetch thread failed".into(),
            })
        }),
        Err(e) => Err(SpFetchError::Http {
            url: String::new(),
            detail: format!("starting the fetch: {e}"),
        }),
    }
}

async fn get(
    url: &str,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
) -> Result<(String, SpInfo), SpFetchError> {
    let http_err = |e: reqwest::Error| SpFetchError::Http {
        url: url.to_string(),
        detail: crate::oidc::provider::describe(&e),
    };
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| SpFetchError::Ca(e.to_string()))?;
        if certs.is_empty() {
            return Err(SpFetchError::Ca("no certificate".into()));
        }
        b = b.tls_certs_only(certs);
    }
    let http = b.build().map_err(http_err)?;
    let mut r = http.get(url).send().await.map_err(http_err)?;
    if !r.status().is_success() {
        return Err(SpFetchError::Status {
            url: url.to_string(),
            status: r.status().as_u16(),
        });
    }
    let too_large = || SpFetchError::TooLarge {
        url: url.to_string(),
    };
    if r.content_length().is_some_and(|l| l > MAX_XML as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(http_err)? {
        if body.len() + chunk.len() > MAX_XML {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| SpFetchError::NotUtf8 {
        url: url.to_string(),
    })?;
    let info = parse_sp(&text).map_err(|source| SpFetchError::Parse {
        url: url.to_string(),
        source,
    })?;
    Ok((text, info))
}

/// Where the last good copy of `url`'s metadata for `console` is kept: the
/// URL is in the name, so a changed URL never falls back to the old one.
pub fn cache_path(data_dir: &Path, console: &str, url: &str) -> PathBuf {
    let safe: String = console
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let h = Sha256::digest(url.as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    data_dir
        .join("saml-idp")
        .join("sp-metadata")
        .join(format!("{safe}-{hex}.xml"))
}

/// Keeps `text` as the last good copy (0600, in a 0700 directory,
/// replaced whole).
pub fn store(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    crate::datadir::private_dir(dir)?;
    let tmp = path.with_extension("xml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The last good copy, parsed, and when it was fetched; `None` when there
/// is none or it no longer parses.
pub fn cached(path: &Path) -> Option<(SpInfo, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_XML as u64 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let info = parse_sp(&text).ok()?;
    Some((info, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// For the periodic check: fetches `src` and says whether what it says
/// differs from the copy the configuration was built from (a document
/// that only changed its timestamps or layout has not changed).
pub fn changed(src: &MetadataSource) -> Result<bool, SpFetchError> {
    let (_, now) = fetch(
        &src.url,
        src.ca_pem.as_deref().map(str::as_bytes),
        FETCH_TIMEOUT,
    )?;
    Ok(cached(&src.cache).is_none_or(|(was, _)| was != now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_per_console_and_url_and_private() {
        let d = tempfile::tempdir().unwrap();
        let a = cache_path(d.path(), "sp/1", "https://sp.example/md");
        let b = cache_path(d.path(), "sp/1", "https://sp.example/md2");
        assert_ne!(a, b);
        assert!(
            a.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("sp_1-")
        );
        assert!(cached(&a).is_none());
        let md = crate::saml::metadata::SpMetadata {
            entity_id: "http://sp/md",
            acs_url: "http://sp/acs",
            slo_url: "http://sp/slo",
            name_id_format: super::super::settings::NAMEID_UNSPECIFIED,
            signs_requests: false,
            cert: None,
        }
        .render();
        store(&a, &md).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(cached(&a).unwrap().0.acs_url, "http://sp/acs");
        assert!(cached(&b).is_none());
        // A copy that no longer parses is no copy.
        std::fs::write(&a, "<!DOCTYPE x><x/>").unwrap();
        assert!(cached(&a).is_none());
    }

    #[test]
    fn a_fetch_that_cannot_connect_says_where() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/md");
        let e = fetch(&url, None, Duration::from_secs(2)).unwrap_err();
        assert!(e.to_string().starts_with(&format!("GET {url}: ")), "{e}");
        let e = fetch(&url, Some(b"not pem"), Duration::from_secs(2)).unwrap_err();
        assert!(matches!(e, SpFetchError::Ca(_)), "{e}");
    }
}
