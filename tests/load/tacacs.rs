//! TACACS+ connection floods: idle and trickling connections from one
//! address against real logins, with a latency bound, so it runs here,
//! alone, rather than among the e2e tests.

use std::net::TcpStream;

use crate::harness::{Running, WAIT, demo_config, metric, tacacs_py};

/// A flood of idle connections and a few trickling ones from one address
/// must not lock real logins out: at the per-address limit the longest-idle
/// connection gives way, and a packet's arrival is bounded from its first
/// byte however slowly the rest comes.
#[test]
fn idle_and_slow_floods_from_one_address_do_not_lock_logins_out() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let _alone = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace(
        "[tacacs]\n",
        "[tacacs]\nmax_connections_per_address = 64\nread_timeout = 2\n",
    );
    let s = Running::start_in(dir, &text);
    let a = s.addrs.tacacs.unwrap();
    // Slow: one byte of a header, then nothing more.
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut c = TcpStream::connect_timeout(&a, WAIT).unwrap();
            c.write_all(&[0xc1]).unwrap();
            c
        })
        .collect();
    // Idle: more than the address may hold.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect_timeout(&a, WAIT).unwrap())
        .collect();
    for _ in 0..3 {
        let t = Instant::now();
        let r = tacacs_py(a, "tacacs123", &["pap", "alice", "alice-pass-1"]);
        assert_eq!(r["valid"], true, "{r}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    // Every slow connection is closed by the server: its packet ran out of
    // time, or it was taken for a newer connection before its byte arrived.
    for c in &mut slow {
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 1];
        assert!(
            matches!(c.read(&mut b), Ok(0) | Err(_)),
            "a slow connection stayed open"
        );
    }
    let (_, m) = s.http_get("/metrics");
    let n = |reason: &str| {
        metric(
            &m,
            &format!("portcullis_tacacs_errors_total{{reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(n("evicted") >= 200.0, "{m}");
    assert_eq!(n("address_connection_limit"), 0.0, "{m}");
    drop(idle);
}
