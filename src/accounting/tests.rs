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

    // A batch failing after its keys were checked (here an insert) must not
    // leave them behind, or the retransmission would be acked unstored.
    let c = rusqlite::Connection::open(store.path()).unwrap();
    c.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.username = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
    )
    .unwrap();
    let poison = rec(10, "poison", "s", Status::Start, 10);
    assert!(matches!(
        store.submit(poison.clone()).unwrap().await,
        Err(StoreError::Commit { .. })
    ));
    c.execute_batch("DROP TRIGGER poison").unwrap();
    let d = store.submit(poison).unwrap().await.unwrap();
    assert!(!d.duplicate);
    assert_eq!(store.archive().unwrap().count().unwrap(), 4);
}

/// last_seen comes from the sessions table once folded, and from the records
/// after the fold point until then: both ways must give the same answers.
fn fold_configs() -> [SqliteConfig; 2] {
    [
        SqliteConfig {
            session_sync_interval: Duration::ZERO,
            ..config()
        },
        SqliteConfig {
            session_sync_interval: Duration::from_secs(3600),
            ..config()
        },
    ]
}

#[tokio::test]
async fn active_sessions_follow_start_stop_and_nas_reboot() {
    for cfg in fold_configs() {
        active_sessions_follow_start_stop_and_nas_reboot_with(cfg).await;
    }
}

async fn active_sessions_follow_start_stop_and_nas_reboot_with(cfg: SqliteConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), cfg).unwrap();
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
                    // Arrival times are real: the restart reloads the keys of
                    // the last dedup window by them.
                    let mut r = rec(n, "u", "s", Status::InterimUpdate, i);
                    r.received_at = SystemTime::now();
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
    // The write path keeps a single index on records, one that grows at its
    // right edge; a scattered one would cost a page write per record.
    assert_eq!(indexes, ["records_received"]);
}

fn now_rec(n: u64, status: Status, received_at: SystemTime) -> Record {
    let mut r = rec(n, "u", "s", status, 0);
    r.received_at = received_at;
    r
}

#[tokio::test]
async fn dedup_keys_of_the_window_are_reloaded_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(60);
    let cfg = || SqliteConfig {
        dedup_window: window,
        ..config()
    };
    // Whole microseconds, as stored.
    let now = from_unix_micros(unix_micros(SystemTime::now()));
    let recent = now_rec(1, Status::Start, now - window / 2);
    let old = now_rec(2, Status::Start, now - window * 2);
    let store = SqliteStore::open(dir.path(), cfg()).unwrap();
    for r in [&recent, &old] {
        assert!(!store.submit(r.clone()).unwrap().await.unwrap().duplicate);
    }
    // In memory a key's window runs from when the writer saw it, so the old
    // record's retransmission is caught while the process lives.
    assert!(store.submit(old.clone()).unwrap().await.unwrap().duplicate);
    store.close().unwrap();

    let store = SqliteStore::open(dir.path(), cfg()).unwrap();
    let again = store.submit(recent.clone()).unwrap().await.unwrap();
    assert!(again.duplicate, "a key within the window is reloaded");
    let late = store.submit(old.clone()).unwrap().await.unwrap();
    assert!(!late.duplicate, "a key older than the window is forgotten");
    let a = store.archive().unwrap();
    assert_eq!(a.count().unwrap(), 3);
    assert_eq!(
        a.find(&old.dedup_key).unwrap().unwrap().received_at,
        old.received_at
    );
}

#[tokio::test]
async fn duplicate_within_one_batch_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = AccountingMetrics::register(&mut Registry::default());
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            busy_timeout: Duration::from_secs(20),
            metrics: Some(metrics.clone()),
            ..config()
        },
    )
    .unwrap();
    let lock = lock_db(dir.path());
    let first = hold_writer(&store, &metrics, rec(1, "u", "s", Status::Start, 1));
    let a = store.submit(rec(7, "u", "s", Status::Start, 2)).unwrap();
    let b = store.submit(rec(7, "u", "s", Status::Start, 3)).unwrap();
    lock.execute_batch("COMMIT").unwrap();
    assert!(!first.await.unwrap().duplicate);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!((a.duplicate, b.duplicate), (false, true));
    assert_eq!(store.stats().commits, 1, "all three were in one batch");
    let archive = store.archive().unwrap();
    assert_eq!(archive.count().unwrap(), 2);
    assert_eq!(archive.find(&key(7)).unwrap().unwrap().received_at, at(2));
}

/// Submits `first` and waits until the writer has taken it and is waiting
/// for the write lock `lock_db` holds; records submitted after this return
/// join `first` in its batch once the lock is released.
fn hold_writer(store: &SqliteStore, metrics: &AccountingMetrics, first: Record) -> Pending {
    let pending = store.submit(first).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.queue_depth.get() != 0 {
        assert!(Instant::now() < deadline, "writer never took its batch");
        std::thread::yield_now();
    }
    pending
}

#[tokio::test]
async fn failed_batch_leaves_no_key_and_no_last_seen_behind() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = AccountingMetrics::register(&mut Registry::default());
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            busy_timeout: Duration::from_secs(20),
            // Fold last_seen with every batch, so a leftover shows at once.
            session_sync_interval: Duration::ZERO,
            metrics: Some(metrics.clone()),
            ..config()
        },
    )
    .unwrap();
    store
        .submit(rec(1, "u", "s", Status::Start, 1))
        .unwrap()
        .await
        .unwrap();
    let c = rusqlite::Connection::open(store.path()).unwrap();
    c.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.username = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
    )
    .unwrap();
    let lock = lock_db(dir.path());
    let first = hold_writer(&store, &metrics, rec(2, "x", "s", Status::Start, 2));
    // Stored, then undone when the record after it fails the batch.
    let late = rec(3, "u", "s", Status::InterimUpdate, 99);
    let a = store.submit(late.clone()).unwrap();
    let b = store
        .submit(rec(4, "poison", "s", Status::Start, 3))
        .unwrap();
    lock.execute_batch("COMMIT").unwrap();
    for p in [first, a, b] {
        assert!(matches!(
            p.await,
            Err(StoreError::Commit { records: 3, .. })
        ));
    }
    c.execute_batch("DROP TRIGGER poison").unwrap();
    store
        .submit(rec(5, "v", "s", Status::InterimUpdate, 50))
        .unwrap()
        .await
        .unwrap();
    let archive = store.archive().unwrap();
    let u = |a: &Archive| {
        let all = a.active_sessions().unwrap();
        let u = all.iter().find(|s| s.user == "u").unwrap();
        (u.started_at, u.last_seen)
    };
    assert_eq!(u(&archive), (at(1), at(1)));
    // The retransmission is new, not a duplicate of the rolled-back copy.
    assert!(!store.submit(late).unwrap().await.unwrap().duplicate);
    assert_eq!(u(&archive), (at(1), at(99)));
    assert_eq!(archive.count().unwrap(), 3);
}

#[tokio::test]
async fn keys_are_forgotten_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            dedup_window: Duration::ZERO,
            ..config()
        },
    )
    .unwrap();
    let r = rec(1, "u", "s", Status::Start, 1);
    for _ in 0..2 {
        assert!(!store.submit(r.clone()).unwrap().await.unwrap().duplicate);
    }
    assert_eq!(store.archive().unwrap().count().unwrap(), 2);
    assert_eq!(store.stats().duplicates, 0);
}

#[test]
fn full_dedup_cache_forgets_oldest_keys_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut reg = Registry::default();
    let metrics = AccountingMetrics::register(&mut reg);
    let store = SqliteStore::open(
        dir.path(),
        SqliteConfig {
            dedup_capacity: 2,
            metrics: Some(metrics.clone()),
            ..config()
        },
    )
    .unwrap();
    let submit = |n| {
        store
            .submit(rec(n, "u", "s", Status::Start, n))
            .unwrap()
            .wait_blocking()
    };
    let fresh = |n| !submit(n).unwrap().duplicate;
    assert!(fresh(1) && fresh(2) && fresh(3));
    // Key 1 was evicted for key 3, so its retransmission is stored again
    // (and evicts key 2); key 3 is still known.
    assert!(fresh(1));
    assert!(!fresh(3));
    assert_eq!(store.stats().dedup_evictions, 2);
    assert_eq!(metrics.dedup_evictions.get(), 2);
    assert_eq!(metrics.dedup_keys.get(), 2);
    assert_eq!(store.archive().unwrap().count().unwrap(), 4);
}

#[tokio::test]
async fn sessions_survive_restart_stop_before_start_and_pruning() {
    for cfg in fold_configs() {
        sessions_survive_restart_stop_before_start_and_pruning_with(cfg).await;
    }
}

async fn sessions_survive_restart_stop_before_start_and_pruning_with(cfg: SqliteConfig) {
    let dir = tempfile::tempdir().unwrap();
    let submit_all = |store: &SqliteStore, recs: Vec<Record>| {
        let pending: Vec<Pending> = recs.into_iter().map(|r| store.submit(r).unwrap()).collect();
        async move {
            for p in pending {
                p.await.unwrap();
            }
        }
    };
    let open = |a: &Archive| -> Vec<(String, SystemTime, SystemTime)> {
        a.active_sessions()
            .unwrap()
            .into_iter()
            .map(|s| (s.user, s.started_at, s.last_seen))
            .collect()
    };
    let store = SqliteStore::open(dir.path(), cfg.clone()).unwrap();
    submit_all(
        &store,
        vec![
            // UDP delivered bob's Stop before his Start.
            rec(1, "bob", "s2", Status::Stop, 5),
            rec(2, "bob", "s2", Status::Start, 6),
            rec(3, "alice", "s1", Status::Start, 10),
            rec(4, "alice", "s1", Status::InterimUpdate, 20),
            rec(5, "alice", "s1", Status::InterimUpdate, 30),
        ],
    )
    .await;
    let a = store.archive().unwrap();
    assert_eq!(open(&a), [("alice".into(), at(10), at(30))]);
    store.close().unwrap();
    // A clean close leaves everything folded in.
    let c = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let folded: (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT through_id FROM session_sync), (SELECT MAX(id) FROM records),
                    (SELECT last_seen_us FROM sessions WHERE username = 'alice')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(folded, (5, 5, unix_micros(at(30))));
    // As if the process had died before folding the interim updates in:
    // the next one must fold them from the records when it opens.
    c.execute_batch(
        "UPDATE sessions SET last_seen_us = touched_us;
             UPDATE session_sync SET through_id = 0;",
    )
    .unwrap();

    let store = SqliteStore::open(dir.path(), cfg).unwrap();
    assert_eq!(open(&a), [("alice".into(), at(10), at(30))]);
    // A fold that covers only carol must not lose alice's updates.
    submit_all(&store, vec![rec(7, "carol", "s3", Status::Start, 50)]).await;
    assert_eq!(
        open(&a),
        [
            ("alice".into(), at(10), at(30)),
            ("carol".into(), at(50), at(50))
        ]
    );
    submit_all(
        &store,
        vec![rec(6, "alice", "s1", Status::InterimUpdate, 40)],
    )
    .await;
    assert_eq!(
        open(&a),
        [
            ("alice".into(), at(10), at(40)),
            ("carol".into(), at(50), at(50))
        ]
    );
    // Alice's Start is pruned (her later updates are not): she is gone.
    assert_eq!(a.prune(at(15)).unwrap(), 3);
    assert_eq!(open(&a), [("carol".into(), at(50), at(50))]);

    // Emptied, the table hands out row ids from 1 again.
    assert_eq!(a.prune(at(1000)).unwrap(), 4);
    assert_eq!(open(&a), []);
    submit_all(&store, vec![rec(8, "dave", "s4", Status::Start, 2000)]).await;
    submit_all(
        &store,
        vec![rec(9, "dave", "s4", Status::InterimUpdate, 2100)],
    )
    .await;
    assert_eq!(a.list(&Filter::default()).unwrap()[0].id, 1);
    assert_eq!(open(&a), [("dave".into(), at(2000), at(2100))]);
}

#[test]
fn databases_of_other_schema_versions_are_refused() {
    for (version, expect) in [(1, "schema version 1 is older"), (3, "schema version 3;")] {
        let dir = tempfile::tempdir().unwrap();
        rusqlite::Connection::open(dir.path().join(DB_FILE))
            .unwrap()
            .execute_batch(&format!("PRAGMA user_version = {version}"))
            .unwrap();
        let err = SqliteStore::open(dir.path(), config()).err().unwrap();
        assert!(err.to_string().contains(expect), "{err}");
        assert!(Archive::open(dir.path()).is_err());
    }
}
