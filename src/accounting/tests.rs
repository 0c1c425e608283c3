use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use serde_json::json;

use super::render::csv_field;
use super::*;

fn key(n: u64) -> DedupKey {
    let mut k = [0xa5u8; 16];
    k[..8].copy_from_slice(&n.to_be_bytes());
    DedupKey(k)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn rec(n: u64, user: &str, session: &str, status: Status, secs: u64) -> Record {
    let mut attributes = Attributes::new();
    attributes.insert("Acct-Session-Time".into(), json!(n));
    attributes.insert("Class".into(), json!(["a", "b"]));
    Record {
        protocol: Protocol::Radius,
        client: "edge".into(),
        client_addr: addr(1),
        src_port: 1814,
        user: user.into(),
        session_id: session.into(),
        status,
        received_at: at(secs),
        attributes,
        dedup_key: key(n),
    }
}

fn config() -> SqliteConfig {
    SqliteConfig::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submitters_survive_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), config()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                let n = t * 1000 + i;
                let d = store
                    .submit(rec(n, "alice", "s", Status::InterimUpdate, n))
                    .unwrap()
                    .await
                    .unwrap();
                assert!(!d.duplicate);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Queued but not awaited: dropping the store must still commit these.
    let pending: Vec<Pending> = (0..500u64)
        .map(|i| {
            store
                .submit(rec(100_000 + i, "bob", "s", Status::Stop, i))
                .unwrap()
        })
        .collect();
    let stats = store.stats();
    assert!(stats.commits > 0 && stats.records >= 1600);
    drop(Arc::into_inner(store).unwrap());
    for p in pending {
        assert!(!p.await.unwrap().duplicate);
    }

    let archive = Archive::open(dir.path()).unwrap();
    assert_eq!(archive.count().unwrap(), 2100);
    let all = archive.list(&Filter::default()).unwrap();
    let mut seen: HashMap<DedupKey, usize> = HashMap::new();
    for r in &all {
        *seen.entry(r.dedup_key).or_default() += 1;
    }
    assert_eq!(seen.len(), 2100);
    assert!(seen.values().all(|&c| c == 1));
    let r = archive.find(&key(3005)).unwrap().unwrap();
    assert_eq!(r, {
        let src = rec(3005, "alice", "s", Status::InterimUpdate, 3005);
        StoredRecord {
            id: r.id,
            received_at: src.received_at,
            protocol: src.protocol,
            client: src.client,
            client_addr: src.client_addr,
            src_port: src.src_port,
            user: src.user,
            session_id: src.session_id,
            status: src.status,
            attributes: src.attributes,
            dedup_key: src.dedup_key,
        }
    });
}

#[tokio::test]
async fn duplicate_keys_store_one_row_and_ack_both() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let a = store
        .submit(rec(7, "alice", "s1", Status::Start, 1))
        .unwrap();
    // A retransmission, queued before the first is committed.
    let b = store
        .submit(rec(7, "alice", "s1", Status::Start, 2))
        .unwrap();
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(
        [a.duplicate, b.duplicate].iter().filter(|d| !**d).count(),
        1
    );
    // And one after the commit, as after a restart.
    let c = store
        .submit(rec(7, "alice", "s1", Status::Start, 3))
        .unwrap()
        .await
        .unwrap();
    assert!(c.duplicate);
    let archive = store.archive().unwrap();
    assert_eq!(archive.count().unwrap(), 1);
    // The first arrival is the one kept.
    assert_eq!(archive.find(&key(7)).unwrap().unwrap().received_at, at(1));
    assert_eq!(store.stats().duplicates, 2);
}

/// Holds the database's write lock from another connection, as a long
/// prune or a CLI write would.
fn lock_db(dir: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::with_prefix("portcullis");
    let metrics = AccountingMetrics::register(&mut reg);
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            queue_capacity: 4,
            max_batch: 2,
            busy_timeout: Duration::from_secs(20),
            metrics: Some(metrics.clone()),
            ..config()
        },
    )
    .unwrap();
    let lock = lock_db(dir.path());
    let mut accepted = Vec::new();
    let mut refused = None;
    // The writer takes at most one batch (2) off the queue, then blocks on the lock.
    for n in 0..20 {
        match store.submit(rec(n, "u", "s", Status::Start, n)) {
            Ok(p) => accepted.push(p),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(StoreError::QueueFull { capacity: 4 })),
        "{refused:?}"
    );
    assert!((4..=6).contains(&accepted.len()), "{}", accepted.len());
    assert_eq!(metrics.dropped.get(), 1);
    lock.execute_batch("COMMIT").unwrap();
    let n = accepted.len() as u64;
    for p in accepted {
        p.await.unwrap();
    }
    assert_eq!(store.archive().unwrap().count().unwrap(), n);
    assert_eq!(metrics.queue_depth.get(), 0);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(text.contains(&format!("portcullis_accounting_records_stored_total {n}")));
    assert!(text.contains("portcullis_accounting_dropped_total 1"));
    assert!(text.contains("portcullis_accounting_commit_batch_size_bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_fails_every_waiter_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            busy_timeout: Duration::from_millis(100),
            ..config()
        },
    )
    .unwrap();
    let lock = lock_db(dir.path());
    let pending: Vec<Pending> = (0..3)
        .map(|n| store.submit(rec(n, "u", "s", Status::Start, n)).unwrap())
        .collect();
    for p in pending {
        assert!(
            matches!(p.await, Err(StoreError::Commit { .. })),
            "must not ack"
        );
    }
    lock.execute_batch("COMMIT").unwrap();
    assert_eq!(store.archive().unwrap().count().unwrap(), 0);
    assert!(store.stats().failed_records >= 3);
    // The appliance retransmits; now it goes through.
    for n in 0..3 {
        let d = store
            .submit(rec(n, "u", "s", Status::Start, n))
            .unwrap()
            .await
            .unwrap();
        assert!(!d.duplicate);
    }
    assert_eq!(store.archive().unwrap().count().unwrap(), 3);
}

#[tokio::test]
async fn active_sessions_follow_start_stop_and_nas_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let other_nas = |mut r: Record| {
        r.client_addr = addr(2);
        r
    };
    let records = vec![
        rec(1, "alice", "s1", Status::Start, 10),
        rec(2, "bob", "s2", Status::Start, 11),
        other_nas(rec(3, "carol", "s3", Status::Start, 12)),
        rec(4, "alice", "s1", Status::InterimUpdate, 20),
        rec(5, "bob", "s2", Status::Stop, 21),
        // Same session id, different user: a different session.
        rec(6, "dave", "s2", Status::Start, 22),
    ];
    for r in records {
        store.submit(r).unwrap().await.unwrap();
    }
    let archive = store.archive().unwrap();
    let keys = |a: &Archive| -> Vec<(String, String)> {
        a.active_sessions()
            .unwrap()
            .into_iter()
            .map(|s| (s.user, s.session_id))
            .collect()
    };
    let pair = |u: &str, s: &str| (u.to_string(), s.to_string());
    assert_eq!(
        keys(&archive),
        [pair("alice", "s1"), pair("carol", "s3"), pair("dave", "s2")]
    );
    let alice = &archive.active_sessions().unwrap()[0];
    assert_eq!((alice.started_at, alice.last_seen), (at(10), at(20)));

    // The other appliance reboots: its open sessions are over.
    let mut on = other_nas(rec(7, "", "", Status::AccountingOn, 30));
    on.user.clear();
    store.submit(on).unwrap().await.unwrap();
    assert_eq!(keys(&archive), [pair("alice", "s1"), pair("dave", "s2")]);
    // A session started after the reboot is open.
    store
        .submit(other_nas(rec(8, "erin", "s9", Status::Start, 31)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        keys(&archive),
        [pair("alice", "s1"), pair("dave", "s2"), pair("erin", "s9")]
    );
    store
        .submit(rec(9, "alice", "s1", Status::Stop, 40))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(keys(&archive), [pair("dave", "s2"), pair("erin", "s9")]);
}

#[tokio::test]
async fn list_filters_and_keeps_newest_last() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let mut pending = Vec::new();
    for n in 0..20u64 {
        let user = if n % 2 == 0 { "even" } else { "odd" };
        let mut r = rec(n, user, "s", Status::InterimUpdate, 100 - n);
        if n >= 15 {
            r.client = "core".into();
        }
        pending.push(store.submit(r).unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }
    let a = store.archive().unwrap();
    let all = a.list(&Filter::default()).unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].received_at <= w[1].received_at));
    let f = Filter {
        user: Some("even".into()),
        limit: Some(3),
        ..Filter::default()
    };
    let got: Vec<SystemTime> = a.list(&f).unwrap().iter().map(|r| r.received_at).collect();
    assert_eq!(got, [at(96), at(98), at(100)]);
    let f = Filter {
        client: Some("core".into()),
        since: Some(at(82)),
        until: Some(at(85)),
        ..Filter::default()
    };
    let got: Vec<SystemTime> = a.list(&f).unwrap().iter().map(|r| r.received_at).collect();
    assert_eq!(got, [at(82), at(83), at(84)]);
}

#[tokio::test]
async fn prune_deletes_only_older_records_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let pending: Vec<Pending> = (0..1200u64)
        .map(|n| store.submit(rec(n, "u", "s", Status::Start, n)).unwrap())
        .collect();
    for p in pending {
        p.await.unwrap();
    }
    let a = store.archive().unwrap();
    assert_eq!(a.prune(at(1100)).unwrap(), 1100);
    assert_eq!(a.count().unwrap(), 100);
    let first = &a.list(&Filter::default()).unwrap()[0];
    assert_eq!(first.received_at, at(1100));
    assert_eq!(a.prune(at(1100)).unwrap(), 0);
}

#[tokio::test]
async fn pruner_task_runs_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    // Records from 2023 against a one-day retention: all due.
    for n in 0..3 {
        store
            .submit(rec(n, "u", "s", Status::Start, n))
            .unwrap()
            .await
            .unwrap();
    }
    let archive = Arc::new(store.archive().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = spawn_pruner(
        archive.clone(),
        Duration::from_secs(86_400),
        Duration::from_millis(50),
        move |r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        },
    );
    assert_eq!(rx.recv().await.unwrap(), Ok(3));
    assert_eq!(rx.recv().await.unwrap(), Ok(0));
    task.abort();
    assert_eq!(archive.count().unwrap(), 0);
}

fn stored(user: &str, session: &str) -> StoredRecord {
    let r = rec(1, user, session, Status::Other(42), 0);
    StoredRecord {
        id: 5,
        received_at: r.received_at + Duration::from_micros(250),
        protocol: Protocol::Tacacs,
        client: r.client,
        client_addr: r.client_addr,
        src_port: r.src_port,
        user: r.user,
        session_id: r.session_id,
        status: r.status,
        attributes: r.attributes,
        dedup_key: r.dedup_key,
    }
}

#[test]
fn csv_quotes_what_needs_quoting() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("cr\r"), "\"cr\r\"");
    assert_eq!(csv_field(" pad"), "\" pad\"");
    assert_eq!(csv_field(""), "");

    let mut out = Vec::new();
    write_csv(&mut out, &[stored("o\"brien, jr", "s\n1")]).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.split("\r\n");
    assert_eq!(
        lines.next().unwrap(),
        "id,received_at,protocol,client,client_addr,src_port,user,session_id,status,attributes,dedup_key"
    );
    assert_eq!(
        lines.next().unwrap(),
        "5,2023-11-14T22:13:20.000250Z,tacacs,edge,192.0.2.1,1814,\"o\"\"brien, jr\",\"s\n1\",Other-42,\
         \"{\"\"Acct-Session-Time\"\":1,\"\"Class\"\":[\"\"a\"\",\"\"b\"\"]}\",\
         0000000000000001a5a5a5a5a5a5a5a5"
    );
    assert_eq!(lines.next(), Some(""));
    assert_eq!(lines.next(), None);
}

#[test]
fn table_and_json_lines() {
    let recs = [stored("mallory\x1b[2J", "s1"), stored("al", "s2")];
    let mut out = Vec::new();
    write_table(&mut out, &recs).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains('\x1b'), "control characters must be escaped");
    assert!(text.contains("mallory\\u{1b}[2J"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("ID  RECEIVED (UTC)"));
    // Columns line up.
    let col = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[1][col..col + 8], "Other-42");
    assert_eq!(&lines[2][col..col + 8], "Other-42");

    let mut out = Vec::new();
    write_json_lines(&mut out, &recs).unwrap();
    let text = String::from_utf8(out).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["user"], "mallory\x1b[2J");
    assert_eq!(first["protocol"], "tacacs");
    assert_eq!(first["status"], "Other-42");
    assert_eq!(first["received_at"], "2023-11-14T22:13:20.000250Z");
    assert_eq!(first["dedup_key"], "0000000000000001a5a5a5a5a5a5a5a5");
    assert_eq!(first["attributes"]["Class"], json!(["a", "b"]));

    let mut out = Vec::new();
    write_sessions_table(&mut out, &[]).unwrap();
    assert!(String::from_utf8(out).unwrap().starts_with("STARTED (UTC)"));
}

#[test]
fn times_and_statuses_round_trip() {
    let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
    assert_eq!(format_time(t), "2023-11-14T22:13:20.123456Z");
    assert_eq!(parse_time("2023-11-14T22:13:20.123456Z"), Some(t));
    assert_eq!(
        parse_time("2024-02-29"),
        Some(UNIX_EPOCH + Duration::from_secs(1_709_164_800))
    );
    assert_eq!(
        parse_time("2024-02-29 01:00:00"),
        parse_time("2024-02-29T01:00Z")
    );
    assert_eq!(parse_time("2024-13-01"), None);
    assert_eq!(parse_time("yesterday"), None);
    let before = UNIX_EPOCH - Duration::from_micros(1_500_000);
    assert_eq!(format_time(before), "1969-12-31T23:59:58.500000Z");
    assert_eq!(parse_time(&format_time(before)), Some(before));
    assert_eq!(from_unix_micros(unix_micros(before)), before);

    for s in [
        Status::Start,
        Status::Stop,
        Status::InterimUpdate,
        Status::AccountingOn,
        Status::AccountingOff,
        Status::Watchdog,
        Status::Other(12),
    ] {
        assert_eq!(s.to_string().parse::<Status>(), Ok(s));
    }
    assert_eq!(Status::from_radius(3), Status::InterimUpdate);
    assert_eq!(Status::from_radius(15), Status::Other(15));
    assert_eq!(Status::from_tacacs_flags(0x02), Status::Start);
    assert_eq!(Status::from_tacacs_flags(0x04), Status::Stop);
    assert_eq!(Status::from_tacacs_flags(0x0a), Status::Watchdog);
    assert_eq!(Status::from_tacacs_flags(0x06), Status::Other(6));
    assert_eq!(DedupKey::from_hex(&key(9).to_hex()), Some(key(9)));
}

#[tokio::test]
async fn closed_store_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SqliteStore::open(
            dir.path(),
            SqliteConfig {
                queue_capacity: 0,
                ..config()
            }
        ),
        Err(StoreError::Config(_))
    ));
    let store = SqliteStore::open(dir.path().join("nested/dir"), config()).unwrap();
    let p = store.submit(rec(1, "u", "s", Status::Start, 1)).unwrap();
    store.close().unwrap();
    assert!(!p.await.unwrap().duplicate);
}

const CHILD_ENV: &str = "PORTCULLIS_ACCT_CRASH_CHILD_DIR";

/// Not a test by itself: the body of the crash test's child process. It
/// prints a key only after its `Pending` resolved, and runs until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(&dir, config()).unwrap());
        let mut tasks = Vec::new();
        for t in 0..32u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..1_000_000u64 {
                    let n = (t << 32) | i;
                    let r = rec(n, "u", "s", Status::InterimUpdate, i);
                    // Every 8th is also retransmitted at once, so duplicates
                    // are in flight when the kill lands.
                    let copies = if i % 8 == 0 { 2 } else { 1 };
                    for _ in 0..copies {
                        let p = loop {
                            match store.submit(r.clone()) {
                                Ok(p) => break p,
                                Err(StoreError::QueueFull { .. }) => {
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                                Err(e) => panic!("{e}"),
                            }
                        };
                        p.await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {}", r.dedup_key.to_hex()).unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_record() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let test_path = module_path!().split_once("::").unwrap().1;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("{test_path}::crash_child"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = Vec::new();
    let mut read_ack = |out: &mut BufReader<_>, acked: &mut Vec<DedupKey>| -> bool {
        line.clear();
        if out.read_until(b'\n', &mut line).unwrap() == 0 {
            return false;
        }
        // A line cut by the kill has no newline and was never a full ack.
        if let Some(hex) = line
            .strip_suffix(b"\n")
            .and_then(|l| l.strip_prefix(b"ACK "))
        {
            acked.push(DedupKey::from_hex(std::str::from_utf8(hex).unwrap()).unwrap());
        }
        true
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.len() < 4000 {
        assert!(read_ack(&mut out, &mut acked), "child exited early");
        assert!(Instant::now() < deadline, "child too slow");
    }
    child.0.kill().unwrap();
    // Acks written before the kill are still in the pipe.
    while read_ack(&mut out, &mut acked) {}
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9));

    let archive = Archive::open(dir.path()).unwrap();
    let mut rows: HashMap<DedupKey, usize> = HashMap::new();
    for r in archive.list(&Filter::default()).unwrap() {
        *rows.entry(r.dedup_key).or_default() += 1;
    }
    assert!(rows.values().all(|&c| c == 1));
    for k in &acked {
        assert_eq!(rows.get(k), Some(&1), "acknowledged {k:?} missing");
    }
    let before = archive.count().unwrap();
    assert!(before >= rows.len() as u64);

    // After the restart the appliances retransmit: acked again, stored once.
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let pending: Vec<Pending> = acked
        .iter()
        .take(2000)
        .map(|k| {
            let mut r = rec(0, "u", "s", Status::InterimUpdate, 0);
            r.dedup_key = *k;
            store.submit(r).unwrap()
        })
        .collect();
    for p in pending {
        assert!(p.wait_blocking().unwrap().duplicate);
    }
    assert_eq!(archive.count().unwrap(), before);
}

#[test]
fn database_is_wal_with_small_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), config()).unwrap();
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!((mode.as_str(), page), ("wal", 2048));
    let indexes: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'records_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "records_client",
            "records_nas_reboots",
            "records_received",
            "records_session",
            "records_user"
        ]
    );
}
