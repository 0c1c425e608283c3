//! `[store]`: SQLite (default) or a PostgreSQL database shared by nodes.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::Ctx;
use crate::config::raw::RawStore;
use crate::store::{PgSettings, StoreSettings};

pub(super) fn store(cx: &mut Ctx<'_>, raw: &RawStore, file: &Path) -> StoreSettings {
    let backend = raw
        .backend
        .as_ref()
        .map(|b| (b.get_ref().as_str(), b.span()));
    match backend {
        None | Some(("sqlite", _)) => {
            if let Some(u) = &raw.url {
                cx.warn(
                    u.span(),
                    "store.url",
                    "ignored: store.backend is sqlite (set backend = \"postgres\" to use it)",
                );
            }
            StoreSettings::Sqlite
        }
        Some(("postgres", span)) => postgres(cx, raw, file, span),
        Some((other, span)) => {
            cx.err(
                span,
                "store.backend",
                format!("`{other}` is not a store backend (sqlite, postgres)"),
            );
            StoreSettings::Sqlite
        }
    }
}

fn postgres(
    cx: &mut Ctx<'_>,
    raw: &RawStore,
    file: &Path,
    backend_span: std::ops::Range<usize>,
) -> StoreSettings {
    let Some(url) = &raw.url else {
        cx.err(
            backend_span,
            "store.url",
            "backend = \"postgres\" needs url, e.g. \"postgresql://portcullis@db.example.net/portcullis\"",
        );
        return StoreSettings::Sqlite;
    };
    let mut pg = match tokio_postgres::Config::from_str(url.get_ref()) {
        Ok(c) => c,
        Err(e) => {
            cx.err(
                url.span(),
                "store.url",
                format!("not a PostgreSQL URL or key=value string: {e}"),
            );
            return StoreSettings::Sqlite;
        }
    };
    if pg.get_user().is_none() {
        cx.err(
            url.span(),
            "store.url",
            "names no user (postgresql://USER@host/db)",
        );
    }
    if pg.get_dbname().is_none() {
        cx.err(
            url.span(),
            "store.url",
            "names no database (postgresql://user@host/DB)",
        );
    }
    let mut password_key = "store.password";
    match &raw.password {
        Some(p) => {
            if pg.get_password().is_some() {
                cx.err(
                    url.span(),
                    "store.url",
                    "has a password and store.password is set too: keep one (store.password)",
                );
            }
            if let Some(s) = cx.secret_unweighed(p, "store.password") {
                pg.password(s.expose());
            }
        }
        None if pg.get_password().is_some() => {
            password_key = "store.url";
            cx.warn(
                url.span(),
                "store.url",
                "password written in the URL: prefer store.password = { env = \"...\" } or { file = \"...\" }",
            );
        }
        None => {}
    }
    let ca_pem = raw.ca_file.as_ref().and_then(|f| {
        let path = cx.path(f.get_ref());
        match std::fs::read(&path) {
            Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
            Ok(_) => {
                cx.err(f.span(), "store.ca_file", "holds no PEM certificate");
                None
            }
            Err(e) => {
                cx.err(
                    f.span(),
                    "store.ca_file",
                    format!("cannot read `{}`: {e}", path.display()),
                );
                None
            }
        }
    });
    if ca_pem.is_none()
        && raw.ca_file.is_none()
        && pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require
    {
        cx.err(
            url.span(),
            "store.url",
            "sslmode=require needs store.ca_file (the CA that signed the database's certificate)",
        );
    }
    let secs = |cx: &mut Ctx<'_>, v, key, default| {
        Duration::from_secs(cx.int(v, key, 1..3601, default) as u64)
    };
    let node = match &raw.node {
        Some(n) if !n.get_ref().trim().is_empty() => n.get_ref().trim().to_string(),
        Some(n) => {
            cx.err(n.span(), "store.node", "is empty");
            String::new()
        }
        None => hostname(),
    };
    let settings = PgSettings {
        pg,
        config_file: file.to_path_buf(),
        password_key,
        ca_pem,
        pool_size: cx.int(&raw.pool_size, "store.pool_size", 1..1025, 16) as usize,
        connect_timeout: secs(cx, &raw.connect_timeout, "store.connect_timeout", 5),
        query_timeout: secs(cx, &raw.query_timeout, "store.query_timeout", 5),
        auto_migrate: raw.auto_migrate.unwrap_or(true),
        node,
        accounting_writers: cx.int(
            &raw.accounting_writers,
            "store.accounting_writers",
            1..65,
            4,
        ) as usize,
        accounting_batch: cx.int(
            &raw.accounting_batch,
            "store.accounting_batch",
            1..10_001,
            1024,
        ) as usize,
    };
    if settings.accounting_writers >= settings.pool_size {
        cx.warn(
            raw.pool_size
                .as_ref()
                .or(raw.accounting_writers.as_ref())
                .map_or(backend_span, toml::Spanned::span),
            "store.pool_size",
            "no larger than store.accounting_writers: web logins will wait behind accounting",
        );
    }
    StoreSettings::Postgres(Arc::new(settings))
}

/// The kernel's host name, the default node name.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "portcullis".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::from_str;
    use crate::store::StoreSettings;

    fn errors(text: &str) -> Vec<(String, usize, String)> {
        from_str(Path::new("t.toml"), text)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.key, e.line, e.message))
            .collect()
    }

    #[test]
    fn sqlite_is_the_default_and_postgres_is_read_in_full() {
        let l = from_str(Path::new("t.toml"), "").unwrap();
        assert!(matches!(l.config.store, StoreSettings::Sqlite));
        let l = from_str(
            Path::new("/etc/p/t.toml"),
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://aaa@db.example.net:6432/aaa\"\n\
             password = \"a-database-password\"\npool_size = 12\nquery_timeout = 9\nnode = \"n1\"\n",
        )
        .unwrap();
        let p = l.config.store.postgres().unwrap();
        assert_eq!(p.target(), "aaa@db.example.net:6432/aaa");
        assert_eq!(p.pg.get_password(), Some(&b"a-database-password"[..]));
        assert_eq!((p.pool_size, p.query_timeout.as_secs()), (12, 9));
        assert_eq!((p.node.as_str(), p.password_key), ("n1", "store.password"));
        assert!(p.auto_migrate && p.ca_pem.is_none());
        assert!(!format!("{p:?}").contains("a-database-password"));
    }

    #[test]
    fn mistakes_name_their_key_and_line() {
        let e = errors("[store]\nbackend = \"mysql\"\n");
        assert_eq!(e[0].0, "store.backend");
        assert_eq!(e[0].1, 2);
        let e = errors("[store]\nbackend = \"postgres\"\n");
        assert_eq!(e[0].0, "store.url");
        let e = errors("[store]\nbackend = \"postgres\"\nurl = \"postgresql://h/db\"\n");
        assert!(e[0].2.contains("names no user"), "{e:?}");
        let e = errors(
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://u@h/db?sslmode=require\"\n",
        );
        assert!(e[0].2.contains("store.ca_file"), "{e:?}");
        let e = errors(
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://u@h/db\"\n\
             password = { env = \"PORTCULLIS_TEST_NEVER_SET_DB\" }\n",
        );
        assert_eq!((e[0].0.as_str(), e[0].1), ("store.password", 4));
        let e = errors(
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://u@h/db\"\nca_file = \"/nonexistent/ca.pem\"\n",
        );
        assert_eq!(e[0].0, "store.ca_file");
        let e = errors(
            "[store]\nbackend = \"postgres\"\nurl = \"postgresql://u@h/db\"\npool_size = 0\n",
        );
        assert_eq!(e[0].0, "store.pool_size");
    }
}
