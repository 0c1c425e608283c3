//! Group-commit throughput: TASKS concurrent submitters, each awaiting its
//! ack before sending the next, as appliances waiting on answers would.
//!
//! cargo run --release --example acct_load -- [RECORDS] [TASKS] [DATA_DIR]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use portcullis::accounting::{
    AccountingSink, Attributes, DedupKey, Protocol, Record, SqliteConfig, SqliteStore, Status,
    StoreError,
};
use serde_json::json;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn record(task: u64, i: u64) -> Record {
    let mut attributes = Attributes::new();
    attributes.insert("Acct-Session-Time".into(), json!(i * 60));
    attributes.insert("Acct-Input-Octets".into(), json!(i * 1_234_567));
    attributes.insert("Acct-Output-Octets".into(), json!(i * 7_654_321));
    attributes.insert("NAS-Port".into(), json!(task));
    attributes.insert("Framed-IP-Address".into(), json!("198.51.100.7"));
    attributes.insert("Class".into(), json!(["gold", "vpn"]));
    // Real keys are hashes: spread them like one.
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&mix(task << 40 | i).to_be_bytes());
    key[8..].copy_from_slice(&mix(!(task << 40 | i)).to_be_bytes());
    Record {
        protocol: Protocol::Radius,
        client: "edge-routers".into(),
        client_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, (task % 250) as u8 + 1)),
        src_port: 1814,
        user: format!("user{task}"),
        session_id: format!("{task:08x}-{:04x}", i / 100),
        status: match i % 100 {
            0 => Status::Start,
            99 => Status::Stop,
            _ => Status::InterimUpdate,
        },
        received_at: SystemTime::now(),
        attributes,
        dedup_key: DedupKey(key),
    }
}

/// The disk's flush latency bounds everything here: with every submitter
/// waiting on its ack, at most TASKS records can be durable per flush.
fn fsync_median(dir: &std::path::Path) -> Duration {
    use std::io::Write;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[0u8; 4096]).unwrap();
            f.sync_all().unwrap();
            t.elapsed()
        })
        .collect();
    std::fs::remove_file(&path).unwrap();
    times.sort_unstable();
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let total: u64 = args.get(1).map_or(200_000, |a| a.parse().unwrap());
    let tasks: u64 = args.get(2).map_or(64, |a| a.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(3)
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);

    let fsync = fsync_median(&dir);
    let store = Arc::new(SqliteStore::open(&dir, SqliteConfig::default()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let per_task = total / tasks;
    let started = Instant::now();
    let (latencies, dropped) = rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_task as usize);
                let mut dropped = 0u64;
                for i in 0..per_task {
                    let rec = record(t, i);
                    let t0 = Instant::now();
                    let pending = loop {
                        match store.submit(rec.clone()) {
                            Ok(p) => break p,
                            Err(StoreError::QueueFull { .. }) => {
                                dropped += 1;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    };
                    pending.await.unwrap();
                    lat.push(t0.elapsed());
                }
                (lat, dropped)
            }));
        }
        let mut all = Vec::with_capacity(total as usize);
        let mut dropped = 0;
        for h in handles {
            let (lat, d) = h.await.unwrap();
            all.extend(lat);
            dropped += d;
        }
        (all, dropped)
    });
    let elapsed = started.elapsed();
    let stats = store.stats();
    drop(store);
    let (written, cpu) = proc_self_usage();
    // Opening reloads the dedup keys of the records within the dedup window
    // (here all of them), so a restart costs this long before accepting.
    let reopen = Instant::now();
    let store = SqliteStore::open(&dir, SqliteConfig::default()).unwrap();
    let reopen = reopen.elapsed();
    drop(store);

    let mut lat = latencies;
    lat.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let pct = |p: f64| ms(lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)]);
    println!(
        "{} records, {tasks} tasks: {:.0} records/s ({:.2} s), {} commits, mean batch {:.1}, \
         ack p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, queue-full retries {dropped}",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        stats.commits,
        stats.records as f64 / stats.commits.max(1) as f64,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    println!(
        "context: 4 KiB write+fsync p50 {:.2} ms, {:.0} bytes written per record, CPU {:.0} µs per record, \
         dedup evictions {}, reopen {:.0} ms",
        ms(fsync),
        written / lat.len() as f64,
        cpu * 1e6 / lat.len() as f64,
        stats.dedup_evictions,
        ms(reopen),
    );
}

/// (bytes written, CPU seconds) of this process, from /proc (Linux).
fn proc_self_usage() -> (f64, f64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let written = io
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    // utime and stime, in clock ticks (100 per second on Linux).
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (written, (ticks(11) + ticks(12)) / 100.0)
}
