//! The `portcullis` command: serve, check, explain, hash-password.

use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use portcullis::accounting::{self, AccountingSink, Archive, Filter, SqliteConfig, SqliteStore};
use portcullis::config::{self, Config, Loaded};
use portcullis::http::SharedSessions;
use portcullis::identity::{Identities, IdentityStore, PgIdentities};
use portcullis::server::{self, Bound, Metrics, Server};
use portcullis::store::{PgSessions, PgSettings, PgStore, StoreHealth};

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "An AAA server: RADIUS and TACACS+ with one role-mapping table"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every configured listener. SIGHUP reloads the configuration;
    /// SIGTERM or Ctrl-C stops after in-flight requests finish.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Once every listener is bound, print their addresses as one JSON
        /// line on stdout (useful with port 0).
        #[arg(long)]
        print_addresses: bool,
    },
    /// Validate a configuration and print a summary. Exits 1 on any error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show what the table grants a user from a client, and why.
    /// Exits 0 when granted, 3 when refused, 1 on a configuration error.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        user: String,
        /// The asking appliance's address (default 127.0.0.1).
        #[arg(long)]
        client: Option<IpAddr>,
        /// Also judge this command line against the role's command rules.
        #[arg(long)]
        command: Option<String>,
        /// Read the user's password (no echo on a terminal, else one line
        /// of stdin) and check it for real: argon2, or a bind for a
        /// directory user. Without it, directories are searched with their
        /// service account.
        #[arg(long)]
        password: bool,
    },
    /// Read a password (without echo on a terminal, else one line of stdin)
    /// and print an argon2id PHC string for `password_hash`.
    HashPassword,
    /// Read the accounting store (safe while the server runs).
    Accounting {
        #[command(subcommand)]
        action: AcctCommand,
    },
    /// The shared PostgreSQL store (`[store] backend = "postgres"`).
    Store {
        #[command(subcommand)]
        action: StoreCommand,
    },
    /// Identity providers.
    Idp {
        #[command(subcommand)]
        action: IdpCommand,
    },
    /// The provider side for appliance consoles.
    Console {
        #[command(subcommand)]
        action: ConsoleCommand,
    },
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Key rotation, of both the OAuth/JWT signing key and the SAML IdP's
    /// key unless one is named: the published next key starts signing and
    /// a new next key is published (an OAuth key stays in the JWKS until
    /// its tokens expire). Works on the store in force (idp.sqlite3, or the
    /// shared PostgreSQL). Running nodes take it within 30 s, or at once on
    /// reload (SIGHUP).
    RotateKey {
        #[arg(long, short)]
        config: PathBuf,
        /// Only the OAuth/JWT signing key.
        #[arg(long, conflicts_with = "saml")]
        oauth: bool,
        /// Only the SAML IdP's signing key and certificate.
        #[arg(long)]
        saml: bool,
    },
}

#[derive(Subcommand)]
enum IdpCommand {
    /// Check a provider's discovery document, JWKS and the configured
    /// values against the live provider ("Save and Test"). Exits 1 on any
    /// failure.
    Test {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        provider: String,
    },
    /// Old spelling of `console rotate-key --saml`.
    #[command(hide = true)]
    SamlRotateKey {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Apply the schema migrations this build has and the database lacks.
    /// Exits 1 when the database is newer than this build or unreachable.
    Migrate {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Report the database's schema version against this build's, changing
    /// nothing. Exits 0 when they match, 2 when migrations are pending, 1 on
    /// a schema newer than this build or any error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AcctCommand {
    /// Stored records, oldest first.
    List {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        user: Option<String>,
        /// The configured client name.
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        session: Option<String>,
        /// UTC: `2026-11-23` or `2026-11-23T08:00:00[.fraction][Z]`.
        #[arg(long, value_parser = parse_time)]
        since: Option<SystemTime>,
        #[arg(long, value_parser = parse_time)]
        until: Option<SystemTime>,
        /// Only the newest N.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Sessions with a Start and no Stop.
    Sessions {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: SessionsFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum SessionsFormat {
    Table,
    Jsonl,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    accounting::parse_time(s).ok_or_else(|| format!("`{s}` is not a UTC date or date-time"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            log_format,
            print_addresses,
        } => serve(config, log_format, print_addresses),
        Command::Check { config } => check(config),
        Command::Explain {
            config,
            user,
            client,
            command,
            password,
        } => explain(config, &user, client, command.as_deref(), password),
        Command::HashPassword => hash_password(),
        Command::Accounting { action } => accounting_cmd(action),
        Command::Store { action } => store_cmd(action),
        Command::Idp {
            action: IdpCommand::Test { config, provider },
        } => idp_test(config, &provider),
        Command::Idp {
            action: IdpCommand::SamlRotateKey { config },
        } => rotate_key(config, false, true),
        Command::Console {
            action:
                ConsoleCommand::RotateKey {
                    config,
                    oauth,
                    saml,
                },
        } => rotate_key(config, oauth || !saml, saml || !oauth),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_or_report(path: &std::path::Path) -> Option<Loaded> {
    match config::load(path) {
        Ok(l) => {
            for w in &l.warnings {
                eprintln!("warning: {w}");
            }
            Some(l)
        }
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let c = &loaded.config;
    println!("{}: OK", path.display());
    println!("listeners:");
    for (name, addr) in [
        ("radius auth (udp)", c.listen.radius_auth),
        ("radius acct (udp)", c.listen.radius_acct),
        ("tacacs+ (tcp)", c.listen.tacacs),
        ("http (tcp)", c.listen.http),
    ] {
        if let Some(a) = addr {
            println!("  {name:<18} {a}");
        }
    }
    println!("clients: {}", c.clients.len());
    for cl in c.clients.iter() {
        let nets: Vec<String> = cl.networks.iter().map(ToString::to_string).collect();
        println!(
            "  {:<16} {:<24} profile {:<12} radius {} tacacs {}",
            cl.name,
            nets.join(","),
            cl.profile.as_str(),
            if cl.radius_secret.is_some() {
                "yes"
            } else {
                "no"
            },
            if cl.tacacs_key.is_some() { "yes" } else { "no" },
        );
    }
    let t = &c.policy;
    println!("roles: {}", t.roles().len());
    for (i, r) in t.roles().iter().enumerate() {
        let default = if t.default_role() == Some(i as u16) {
            "  (default)"
        } else {
            ""
        };
        println!(
            "  {:<16} priv-lvl {:>2}  rbac-roles {:<14} rbac-aag {:<12} tacacs {}{default}",
            r.name,
            r.priv_lvl,
            r.rbac_roles,
            r.rbac_aag,
            r.tacacs_role.map_or("-", |x| x.as_str())
        );
    }
    println!("mappings (first match wins): {}", t.mappings().len());
    for (i, m) in t.mappings().iter().enumerate() {
        println!(
            "  #{:<3} group {:<16} -> role {}",
            i + 1,
            t.group_name(m.group),
            t.role(m.role).name
        );
    }
    let enabled = c.users.iter().filter(|u| u.enabled).count();
    println!("users: {} ({} enabled)", c.users.len(), enabled);
    println!(
        "directories: {} (auth order {})",
        c.directories.list.len(),
        c.directories.order.as_str()
    );
    for d in &c.directories.list {
        let urls: Vec<&str> = d.servers.iter().map(|s| s.url.as_str()).collect();
        println!("  {:<16} {}", d.name, urls.join(", "));
    }
    println!(
        "web login: local form {}, identity providers: {}",
        if c.web.local_login {
            "shown"
        } else {
            "hidden (/login?local=1)"
        },
        c.oidc.len()
    );
    for p in &c.oidc {
        println!("  {:<16} issuer {}", p.name, p.issuer);
    }
    if !loaded.warnings.is_empty() {
        println!("warnings: {}", loaded.warnings.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(
    path: PathBuf,
    user: &str,
    client: Option<IpAddr>,
    command: Option<&str>,
    password: bool,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let config = &loaded.config;
    let e = if password || !config.directories.is_empty() {
        let password = if password {
            Some(read_password("Password: ")?)
        } else {
            None
        };
        // The same checker the server runs, for one question.
        let pool = portcullis::authn::Argon2Pool::new(1, 1, Default::default());
        let credentials = portcullis::authn::Credentials::new(Arc::new(pool));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let found = runtime.block_on(async {
            match &password {
                Some(p) => {
                    credentials
                        .login(
                            &config.users,
                            &config.directories,
                            &config.policy,
                            user,
                            p.as_bytes(),
                        )
                        .await
                }
                None => {
                    credentials
                        .known(&config.users, &config.directories, &config.policy, user)
                        .await
                }
            }
        });
        portcullis::explain::explain_login(config, user, found, client, command)
    } else {
        portcullis::explain::explain(config, user, client, command)
    };
    print!("{}", e.text);
    Ok(if e.granted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn hash_password() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let p = rpassword::prompt_password("Password: ").context("reading password")?;
        let again = rpassword::prompt_password("Again: ").context("reading password")?;
        anyhow::ensure!(p == again, "the passwords differ");
        p
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    anyhow::ensure!(!password.is_empty(), "empty password");
    let phc = portcullis::authn::hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    println!("{phc}");
    Ok(ExitCode::SUCCESS)
}

/// One password: prompted without echo on a terminal, else a line of stdin.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password(prompt).context("reading password");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn serve(path: PathBuf, format: LogFormat, print_addresses: bool) -> anyhow::Result<ExitCode> {
    init_logging(format);
    let loaded = match config::load(&path) {
        Ok(l) => l,
        Err(errors) => {
            for e in &errors.0 {
                error!(file = %e.file.display(), line = e.line, key = %e.key, "{}", e.message);
            }
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &loaded.warnings {
        warn!(file = %w.file.display(), line = w.line, key = %w.key, "{}", w.message);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("portcullis")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        // Handlers go in before anything announces readiness: a SIGHUP that
        // arrived earlier would otherwise kill the process (default action).
        let sigs = Signals::install().context("installing signal handlers")?;
        let bound = Bound::bind(&loaded.config)
            .await
            .context("binding listeners")?;
        let metrics = Metrics::new();
        let store_metrics = metrics.store.clone();
        let sync_metrics = metrics.throttle_sync.clone();
        let acct = match loaded.config.store.postgres() {
            None => Acct::Sqlite(open_accounting(&loaded.config, &metrics)?),
            Some(s) => open_shared(s.clone(), &loaded.config, &metrics)?,
        };
        let sink = acct.sink();
        let identity = match &acct {
            Acct::Sqlite(_) => Identities::from(
                IdentityStore::open(&loaded.config.server.data_dir)
                    .context("opening the identity store")?,
            ),
            Acct::Shared { store, .. } => Identities::Postgres(PgIdentities::new(store.clone())),
        };
        let idp: Arc<dyn portcullis::idp::IdpStore> = match &acct {
            Acct::Sqlite(_) => Arc::new(
                portcullis::idp::SqliteIdpStore::open(&loaded.config.server.data_dir)
                    .context("opening the console provider's store")?,
            ),
            Acct::Shared { store, .. } => Arc::new(portcullis::idp::PgIdpStore::new(store.clone())),
        };
        let idp_pruner = portcullis::idp::spawn_pruner(idp.clone(), portcullis::idp::PRUNE_EVERY);
        let server = Server::with_store(
            loaded.config,
            metrics,
            Some(sink),
            Some(identity),
            Some(idp),
            acct.health(),
            acct.sessions(),
        );
        let stop = CancellationToken::new();
        // A shared store refusing us at start for a reason that is not an
        // outage (schema, password, certificate) ends the server with it.
        let fatal = Arc::new(std::sync::Mutex::new(None));
        let mut first_attempt = None;
        let pruner = match &acct {
            Acct::Sqlite(store) => server::spawn_pruner(server.clone(), store.archive()?),
            Acct::Shared {
                store,
                health,
                sessions,
                ..
            } => {
                // Failures counted while the store is still away are shared
                // once it answers.
                server.credentials().throttle().share_changes();
                let (tried, rx) = tokio::sync::watch::channel(false);
                let settings = store.settings();
                first_attempt = Some((rx, settings.connect_timeout + settings.query_timeout));
                spawn_shared_opener(
                    Opener {
                        store: store.clone(),
                        health: health.clone(),
                        sessions: sessions.clone(),
                        config: server.config(),
                        credentials: server.credentials(),
                        store_metrics,
                        sync_metrics,
                        tried,
                    },
                    fatal.clone(),
                    stop.clone(),
                )
            }
        };
        let addrs = bound.addrs();
        tokio::spawn(sigs.handle(server.clone(), stop.clone()));
        let refresh = server::spawn_metadata_refresh(server.clone());
        // Serving starts now (RADIUS and TACACS+ need no store); readiness
        // is announced once the shared store's first attempt to open has
        // ended either way, so a node whose store answers is whole when it
        // says it listens, and one in an outage says so without waiting.
        let serving = tokio::spawn(server::run(server, bound, stop.clone()));
        if let Some((mut rx, bound)) = first_attempt {
            let _ = tokio::time::timeout(bound, rx.wait_for(|done| *done)).await;
        }
        if !stop.is_cancelled() {
            info!(
                config = %path.display(),
                http = ?addrs.http,
                radius_auth = ?addrs.radius_auth,
                radius_acct = ?addrs.radius_acct,
                tacacs = ?addrs.tacacs,
                "portcullis listening"
            );
            if print_addresses {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", serde_json::to_string(&addrs)?)?;
                out.flush()?;
            }
        }
        let served = serving.await.context("the server task")?.context("serving");
        stop.cancel();
        pruner.abort();
        idp_pruner.abort();
        refresh.abort();
        // Listeners are done, so nothing new is queued: commit what is, and
        // wait for it off the runtime (close blocks on the writer thread).
        match acct {
            Acct::Sqlite(store) => {
                if let Ok(store) = Arc::try_unwrap(store) {
                    tokio::task::spawn_blocking(move || store.close())
                        .await
                        .context("closing the accounting store")??;
                }
            }
            Acct::Shared { sink, .. } => {
                if let Ok(sink) = Arc::try_unwrap(sink) {
                    sink.close().await;
                }
            }
        }
        served?;
        if let Some(e) = fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        info!("portcullis stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Where this node's accounting goes.
enum Acct {
    Sqlite(Arc<SqliteStore>),
    Shared {
        store: PgStore,
        sink: Arc<accounting::PgSink>,
        health: StoreHealth,
        sessions: SharedSessions,
    },
}

impl Acct {
    fn sink(&self) -> Arc<dyn AccountingSink> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Shared { sink, .. } => sink.clone(),
        }
    }

    fn health(&self) -> Option<StoreHealth> {
        match self {
            Self::Sqlite(_) => None,
            Self::Shared { health, .. } => Some(health.clone()),
        }
    }

    fn sessions(&self) -> Option<SharedSessions> {
        match self {
            Self::Sqlite(_) => None,
            Self::Shared { sessions, .. } => Some(sessions.clone()),
        }
    }
}

/// The shared store's pool, sessions and accounting writers, connecting
/// to nothing yet: [`spawn_shared_opener`] does that in the background, so
/// a node started during an outage serves RADIUS and TACACS+ at once.
fn open_shared(
    settings: Arc<PgSettings>,
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<Acct> {
    let target = settings.target();
    // Closed until the schema is checked: the accounting writers (and
    // everything else on the store) get `NotOpen` until then, so records
    // are not acknowledged rather than written into an unchecked schema.
    let store = PgStore::new(settings.clone())
        .with_context(|| format!("opening the shared store {target}"))?
        .until_prepared();
    let health = StoreHealth::with_gauge(metrics.store.up.clone());
    health.set_down("not connected yet");
    let sink = accounting::PgSink::start(
        store.clone(),
        health.clone(),
        accounting::PgSinkConfig {
            queue_capacity: config.accounting.queue,
            writers: settings.accounting_writers,
            max_batch: settings.accounting_batch,
            metrics: Some(metrics.accounting.clone()),
        },
    );
    Ok(Acct::Shared {
        sessions: SharedSessions {
            sessions: PgSessions::new(store.clone()),
            cookie_key: Arc::default(),
        },
        store,
        sink: Arc::new(sink),
        health,
    })
}

/// What the shared store's opener starts once the store answers.
struct Opener {
    store: PgStore,
    health: StoreHealth,
    sessions: SharedSessions,
    config: config::ConfigHandle,
    credentials: portcullis::authn::Credentials,
    store_metrics: portcullis::store::StoreMetrics,
    sync_metrics: portcullis::store::ThrottleSyncMetrics,
    /// Told `true` when the first attempt has ended, whichever way.
    tried: tokio::sync::watch::Sender<bool>,
}

/// First wait between two attempts to open the store; it doubles up to
/// [`OPEN_BACKOFF_MAX`].
const OPEN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);
const OPEN_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Aborts a task when dropped, so stopping the opener stops what it started.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects, checks (or applies) the schema and reads the shared cookie key,
/// retrying with a bounded backoff while the database is unreachable; then
/// opens the web side, reports healthy, and starts the monitor, the
/// throttle sync and the accounting pruner. An error that is not an outage
/// on the first attempt (a newer schema, a refused password, a certificate
/// that does not verify) is fatal: it goes into `fatal` and stops the
/// server. After that the node keeps serving and retrying, saying why.
fn spawn_shared_opener(
    o: Opener,
    fatal: Arc<std::sync::Mutex<Option<anyhow::Error>>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let target = o.store.settings().target();
        let mut backoff = OPEN_BACKOFF;
        let mut first = true;
        let mut last_reason = "";
        let (status, key) = loop {
            let attempt = async {
                let status = o.store.prepare().await?;
                let key = o.sessions.sessions.cookie_key().await?;
                Ok::<_, portcullis::store::DbError>((status, key))
            };
            match attempt.await {
                Ok(opened) => break opened,
                Err(e) if first && !e.is_outage() => {
                    error!(error = %e, "the shared store refused this node");
                    let e =
                        anyhow::Error::new(e).context(format!("opening the shared store {target}"));
                    *fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    stop.cancel();
                    return;
                }
                Err(e) => {
                    o.store.not_open_because(&e);
                    o.health.set_down(e.summary());
                    if first {
                        o.store_metrics.outages.inc();
                        warn!(error = %e, "shared store unreachable at start: RADIUS and TACACS+ serve local and cached users; accounting is not acknowledged and web logins wait until it answers");
                    } else if e.summary() != last_reason {
                        warn!(error = %e, "shared store still not open; retrying");
                    }
                    last_reason = e.summary();
                }
            }
            first = false;
            o.tried.send_replace(true);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(OPEN_BACKOFF_MAX);
        };
        let _ = o.sessions.cookie_key.set(key);
        o.store_metrics.up.set(1);
        if o.health.set_up() && !first {
            info!(store = %target, "shared store reachable again");
        }
        info!(
            store = %target,
            node = %o.store.settings().node,
            schema = status.current(),
            applied = ?status.applied,
            "shared store open"
        );
        o.tried.send_replace(true);
        let config = o.config;
        drop(portcullis::store::spawn_monitor(
            o.store.clone(),
            config.clone(),
            o.health,
            o.store_metrics,
            stop.clone(),
        ));
        drop(portcullis::store::spawn_throttle_sync(
            o.store.clone(),
            o.credentials,
            config.clone(),
            o.sync_metrics,
            stop.clone(),
        ));
        let _pruner = AbortOnDrop(accounting::spawn_pg_pruner(
            accounting::PgArchive::new(o.store),
            move || config.load().accounting.retention,
        ));
        stop.cancelled().await;
    })
}

fn store_cmd(action: StoreCommand) -> anyhow::Result<ExitCode> {
    let (StoreCommand::Migrate { config } | StoreCommand::Check { config }) = &action;
    let Some(loaded) = load_or_report(config) else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(settings) = loaded.config.store.postgres().cloned() else {
        println!(
            "{}: store.backend is sqlite: its files are brought up to date when opened",
            config.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let target = settings.target();
    runtime.block_on(async move {
        let store = PgStore::new(settings)?;
        match action {
            StoreCommand::Migrate { .. } => {
                let s = store.migrate().await?;
                if s.applied.is_empty() {
                    println!("{target}: schema version {} is current", s.found);
                } else {
                    println!(
                        "{target}: schema version {} -> {} (applied {:?})",
                        s.found,
                        s.current(),
                        s.applied
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            StoreCommand::Check { .. } => {
                let s = store.check().await?;
                if s.found < s.known {
                    println!(
                        "{target}: schema version {}, this build's is {}: run `portcullis store migrate`",
                        s.found, s.known
                    );
                    return Ok(ExitCode::from(2));
                }
                println!("{target}: schema version {} (this build's)", s.found);
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn accounting_cmd(action: AcctCommand) -> anyhow::Result<ExitCode> {
    let config = match &action {
        AcctCommand::List { config, .. } | AcctCommand::Sessions { config, .. } => config,
    };
    let Some(loaded) = load_or_report(config) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(settings) = loaded.config.store.postgres().cloned() {
        return accounting_shared(settings, action);
    }
    let dir = &loaded.config.server.data_dir;
    let archive = Archive::open(dir)
        .with_context(|| format!("opening the accounting store in {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    match action {
        AcctCommand::List {
            user,
            client,
            session,
            since,
            until,
            limit,
            format,
            ..
        } => {
            let records = archive.list(&Filter {
                user,
                client,
                session_id: session,
                since,
                until,
                limit,
            })?;
            match format {
                ListFormat::Table => accounting::write_table(&mut out, &records)?,
                ListFormat::Jsonl => accounting::write_json_lines(&mut out, &records)?,
                ListFormat::Csv => accounting::write_csv(&mut out, &records)?,
            }
        }
        AcctCommand::Sessions { format, .. } => {
            let sessions = archive.active_sessions()?;
            match format {
                SessionsFormat::Table => accounting::write_sessions_table(&mut out, &sessions)?,
                SessionsFormat::Jsonl => {
                    for s in &sessions {
                        serde_json::to_writer(&mut out, s)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `accounting list` on the shared store.
fn accounting_shared(settings: Arc<PgSettings>, action: AcctCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let (user, client, session, since, until, limit, format) = match action {
        AcctCommand::List {
            user,
            client,
            session,
            since,
            until,
            limit,
            format,
            ..
        } => (user, client, session, since, until, limit, format),
        AcctCommand::Sessions { format, .. } => {
            let sessions = runtime.block_on(async move {
                let archive = accounting::PgArchive::new(PgStore::new(settings)?);
                archive.active_sessions().await.map_err(anyhow::Error::from)
            })?;
            let mut out = std::io::stdout().lock();
            match format {
                SessionsFormat::Table => accounting::write_sessions_table(&mut out, &sessions)?,
                SessionsFormat::Jsonl => {
                    for s in &sessions {
                        serde_json::to_writer(&mut out, s)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let records = runtime.block_on(async move {
        let archive = accounting::PgArchive::new(PgStore::new(settings)?);
        archive
            .list(&Filter {
                user,
                client,
                session_id: session,
                since,
                until,
                limit,
            })
            .await
            .map_err(anyhow::Error::from)
    })?;
    let mut out = std::io::stdout().lock();
    match format {
        ListFormat::Table => accounting::write_table(&mut out, &records)?,
        ListFormat::Jsonl => accounting::write_json_lines(&mut out, &records)?,
        ListFormat::Csv => accounting::write_csv(&mut out, &records)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn idp_test(path: PathBuf, name: &str) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    if let Some(s) = loaded.config.saml.iter().find(|p| p.name == name) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        let checks = runtime.block_on(portcullis::saml::test_idp::idp_test(s, SystemTime::now()));
        return report_checks(&format!("provider {name} (saml)"), &checks);
    }
    let Some(settings) = loaded.config.oidc.iter().find(|p| p.name == name) else {
        let known: Vec<&str> = loaded
            .config
            .oidc
            .iter()
            .map(|p| p.name.as_str())
            .chain(loaded.config.saml.iter().map(|p| p.name.as_str()))
            .collect();
        eprintln!(
            "no identity provider `{name}` in {} (configured: {known:?})",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let checks = runtime.block_on(portcullis::oidc::idp_test(settings));
    report_checks(
        &format!("provider {name}: issuer {}", settings.issuer),
        &checks,
    )
}

fn report_checks(title: &str, checks: &[portcullis::oidc::Check]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{title}")?;
    for c in checks {
        writeln!(out, "  {c}")?;
    }
    let ok = portcullis::oidc::all_ok(checks);
    writeln!(out, "{}", if ok { "success" } else { "FAILED" })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Opens the accounting store in the configured data directory.
fn open_accounting(config: &Config, metrics: &Metrics) -> anyhow::Result<Arc<SqliteStore>> {
    let dir = &config.server.data_dir;
    let store = SqliteStore::open(
        dir,
        SqliteConfig {
            queue_capacity: config.accounting.queue,
            metrics: Some(metrics.accounting.clone()),
            ..SqliteConfig::default()
        },
    )
    .with_context(|| format!("opening the accounting store in {}", dir.display()))?;
    info!(path = %store.path().display(), "accounting store open");
    Ok(Arc::new(store))
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// SIGHUP reloads; SIGTERM and SIGINT stop.
    async fn handle(self, server: Arc<Server>, stop: CancellationToken) {
        let Self {
            mut hup,
            mut term,
            mut int,
        } = self;
        loop {
            tokio::select! {
                _ = hup.recv() => server::reload_logged(&server).await,
                _ = term.recv() => { info!("SIGTERM: stopping"); stop.cancel(); return; }
                _ = int.recv() => { info!("SIGINT: stopping"); stop.cancel(); return; }
            }
        }
    }
}

/// `console rotate-key`: the OAuth/JWT key, the SAML key, or both, in
/// the store in force.
fn rotate_key(path: PathBuf, oauth: bool, saml: bool) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let c = &loaded.config;
    let saml = if saml && c.idp.saml.configured.is_some() {
        eprintln!(
            "the SAML IdP signs with the configured `[idp] saml_key_file`: replace it (and `saml_next_cert_file`) instead"
        );
        if !oauth {
            return Ok(ExitCode::FAILURE);
        }
        false
    } else {
        saml
    };
    let alg = c.idp.signing_alg;
    let legacy = c.server.data_dir.join(portcullis::idp::LEGACY_SAML_DIR);
    let rotate = move |store: &dyn portcullis::idp::IdpStore| -> anyhow::Result<Vec<String>> {
        let mut done = Vec::new();
        if oauth {
            let kid = portcullis::idp::rotate_key(store, alg, portcullis::idp::now())
                .context("rotating the console signing key")?;
            done.push(format!("signing key is now {kid} ({})", alg.as_str()));
        }
        if saml {
            let cert = portcullis::idp::saml::keys::rotate(
                store,
                Some(&legacy),
                portcullis::idp::saml::keys::GENERATED_CN,
                SystemTime::now(),
            )
            .context("rotating the SAML signing key")?;
            done.push(format!(
                "SAML IdP now signs with {} (valid until {})",
                cert.subject,
                portcullis::saml::time::format(cert.not_after)
            ));
        }
        Ok(done)
    };
    let done = match c.store.postgres().cloned() {
        None => {
            let store = portcullis::idp::SqliteIdpStore::open(&c.server.data_dir)
                .context("opening the console provider's store")?;
            rotate(&store)?
        }
        Some(settings) => {
            // The shared store blocks on a runtime: run it from a blocking
            // thread of one.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let target = settings.target();
            runtime.block_on(async move {
                let store = PgStore::new(settings)?;
                store
                    .prepare()
                    .await
                    .with_context(|| format!("opening the shared store {target}"))?;
                let store = portcullis::idp::PgIdpStore::new(store);
                tokio::task::spawn_blocking(move || rotate(&store)).await?
            })?
        }
    };
    for line in done {
        println!("{line}");
    }
    println!(
        "running servers take the new keys within {} s, or at once on reload (SIGHUP)",
        portcullis::idp::KEY_POLL.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}
