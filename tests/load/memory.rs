//! Memory after many cold logins, from outside: 10,000 distinct users each
//! logging in once over RADIUS leave the server's resident set within
//! 64 MiB plus what the argon2 pool holds.

use argon2::PasswordHasher as _;

use crate::harness::*;
use crate::{load_report, serial};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

#[test]
fn ten_thousand_cold_logins_stay_within_the_memory_bound() {
    // Light argon2 parameters (64 KiB, one pass) so 10,000 cold checks take
    // seconds: what is measured is what each user leaves behind (cache,
    // throttle and configuration entries), not argon2's working memory,
    // which the pool bounds by its thread count.
    const USERS: u32 = 10_000;
    const M_KIB: u32 = 64;
    let _serial = serial();
    let params = argon2::Params::new(M_KIB, 1, 1, None).unwrap();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let dir = tempfile::tempdir().unwrap();
    let mut text = demo_config(dir.path());
    for i in 1..=USERS {
        let hash = hasher
            .hash_password(format!("pw-{i:05}").as_bytes())
            .unwrap()
            .to_string();
        text.push_str(&format!(
            "\n[[user]]\nname = \"user{i:05}\"\npassword_hash = \"{hash}\"\n"
        ));
    }
    let s = Running::start_in(dir, &text);
    let radius = s.addrs.radius_auth.unwrap();
    let pid = s.child.id();
    let before = rss_kib(pid);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-load"))
        .args(["radius", "--server", &radius.to_string()])
        .args(["--users", &USERS.to_string(), "--warmup", "0"])
        // Every user exactly once, however long a busy machine takes.
        .args(["--max-requests", &USERS.to_string(), "--duration", "120"])
        .args(["--rate", "4000", "--outstanding", "512"])
        .args(["--timeout-ms", "2000", "--retries", "2"])
        .output()
        .unwrap();
    let load = load_report(&out);
    let (_, m) = s.http_get("/metrics");
    let argon2 = metric(&m, "portcullis_argon2_verifications_total").unwrap();
    let after = rss_kib(pid);
    eprintln!(
        "{} logins, {argon2} argon2 runs; RSS {before} KiB before, {after} KiB after",
        load["ok"]
    );
    assert_eq!(load["lost"], 0, "{load}");
    assert!(
        argon2 >= f64::from(USERS),
        "every user logged in cold: {argon2}"
    );
    // What the pool may hold: a working buffer per argon2 thread, at most
    // the demo users' 19 MiB each (the decoy for unknown names uses theirs).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let bound = 64 * 1024 + threads * 19 * 1024;
    assert!(after <= bound, "RSS {after} KiB over {bound} KiB");
}
