//! SIGHUP reload: a valid configuration takes effect, an invalid one is
//! refused and counted while the old one keeps serving; /metrics and /healthz.

use crate::harness::{Running, demo_config, metric};

#[test]
fn metrics_and_healthz_answer() {
    let s = Running::start_demo();
    let (status, body) = s.http_get("/healthz");
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, body) = s.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("portcullis_build_info{version=\""), "{body}");
    assert_eq!(
        metric(&body, "portcullis_config_reloads_total{result=\"success\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&body, "portcullis_config_reloads_total{result=\"failure\"}"),
        Some(0.0)
    );
    let (status, _) = s.http_get("/nope");
    assert_eq!(status, 404);
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let s = Running::start_demo();
    let text = demo_config(s.dir.path());

    // A valid change: bob's group now maps to network-admin.
    let changed = text.replace(
        "group = \"helpdesk\"\nrole = \"helpdesk\"",
        "group = \"helpdesk\"\nrole = \"network-admin\"",
    );
    assert_ne!(changed, text);
    std::fs::write(&s.config, &changed).unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("configuration reloaded");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "portcullis_config_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&m, "portcullis_config_generation"), Some(2.0));

    // An invalid one: refused with its error logged, the old table stays.
    std::fs::write(&s.config, changed.replace("priv_lvl = 7", "priv_lvl = 70")).unwrap();
    s.signal(libc::SIGHUP);
    let line = s.wait_log("outside 0..=15");
    assert!(line.contains("role[helpdesk].priv_lvl"), "{line}");
    s.wait_log("configuration reload refused");
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "portcullis_config_reloads_total{result=\"failure\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&m, "portcullis_config_generation"), Some(2.0));
    let (status, body) = s.http_get("/healthz");
    assert_eq!(status, 200);
    assert!(body.contains("\"config_generation\":2"), "{body}");
}
