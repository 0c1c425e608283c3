//! The tests that put the server under load or time it: guessing floods,
//! reloads under 4,000 requests/s, 10,000 cold logins, hostile XML posts.
//! They take the machine to themselves: one at a time (a lock), in a test
//! binary of their own that cargo runs after the others, so the timings
//! they assert are the server's and not other tests' load.
#![allow(unreachable_pub)]
#![allow(clippy::await_holding_lock)]

#[path = "../e2e/harness.rs"]
mod harness;

mod guessing;
mod memory;
mod reloads;
mod tacacs;
mod xml;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for a whole test: one load test at a time. Async tests hold it
/// across awaits on purpose (each test has a runtime of its own).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One PAP Access-Request (with Message-Authenticator) through Debian's
/// `radclient`; the reply code and the Cisco-AVPair values it carried.
pub fn radclient_pap(
    addr: SocketAddr,
    user: &str,
    password: &str,
) -> (Option<String>, Vec<String>) {
    use std::io::Write as _;
    let mut child = Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "15"])
        .arg(addr.to_string())
        .args(["auth", "testing123"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient (Debian freeradius-utils; scripts/install-test-deps.sh)");
    writeln!(
        child.stdin.take().unwrap(),
        "User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00"
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("Received "))
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string);
    let avpairs = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Cisco-AVPair = "))
        .map(|v| v.trim_matches('"').to_string())
        .collect();
    (code, avpairs)
}

/// The last line `portcullis-load` printed: its JSON report.
pub fn load_report(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)))
}
