//! Reloads under load, from outside.

use crate::harness::{Running, demo_config, metric};
use crate::{load_report, radclient_pap, serial};

/// Access-Requests at 4,000/s while the configuration is reloaded ten
/// times, the fifth reload invalid: nothing is lost (the credential cache
/// outlives a reload; one argon2 per credential), and the last valid table
/// is the one in force afterwards.
#[test]
fn load_through_ten_reloads_loses_nothing() {
    let _serial = serial();
    let s = Running::start_demo();
    let radius = s.addrs.radius_auth.unwrap();
    let valid = demo_config(s.dir.path());
    assert!(valid.contains("rbac_aag = \"Asia-Admin\""));
    let load = std::thread::spawn(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-load"))
            .args(["radius", "--server", &radius.to_string()])
            .args(["--rate", "4000", "--outstanding", "4096", "--duration", "5"])
            .args(["--timeout-ms", "1000", "--retries", "2"])
            .output()
            .unwrap();
        load_report(&out)
    });
    let accepted = || {
        let (_, m) = s.http_get("/metrics");
        metric(
            &m,
            "portcullis_radius_requests_total{client=\"loopback\",type=\"access_request\",result=\"accept\"}",
        )
        .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = accepted();
    for k in 1..=10 {
        // Paced by the load itself: each reload after 1,200 more answers.
        while accepted() < seen + 1_200.0 {
            assert!(std::time::Instant::now() < deadline, "the load stalled");
            std::thread::yield_now();
        }
        seen = accepted();
        if k == 5 {
            std::fs::write(&s.config, "this is not TOML [").unwrap();
            s.signal(libc::SIGHUP);
            s.wait_log("configuration reload refused");
        } else {
            let text = valid.replace(
                "rbac_aag = \"Asia-Admin\"",
                &format!("rbac_aag = \"Asia-Admin-{k}\""),
            );
            std::fs::write(&s.config, text).unwrap();
            s.signal(libc::SIGHUP);
            s.wait_log("configuration reloaded");
        }
    }
    let load = load.join().unwrap();
    eprintln!("through ten reloads: {load}");
    assert_eq!(load["lost"], 0, "{load}");
    assert_eq!(load["bad"], 0, "{load}");
    assert!(load["ok"].as_u64().unwrap() >= 12_000, "{load}");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "portcullis_config_generation"),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "portcullis_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    // alice's password ran through argon2 once, whatever the reloads.
    assert_eq!(
        metric(&m, "portcullis_argon2_verifications_total"),
        Some(1.0),
        "{m}"
    );
    let (code, avpairs) = radclient_pap(radius, "bob", "bob-pass-2");
    assert_eq!(code.as_deref(), Some("Access-Accept"));
    assert!(
        avpairs.iter().any(|a| a == "LOGIN:rbac-aag=Asia-Admin-10"),
        "{avpairs:?}"
    );
}
