//! TACACS+ end to end, with clients nobody on this team wrote: the PyPI
//! `tacacs_plus` client (ASCII login, PAP, authorization, accounting) and the
//! `tacacs-plus` crate (PAP, CHAP, authorization, accounting, always
//! single-connection).

use std::net::{SocketAddr, TcpStream};

use futures::{FutureExt, TryFutureExt};
use tacacs_plus::{
    Argument, AuthenticationType, Client, ContextBuilder, FieldText, ResponseStatus,
};
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::harness::{Running, WAIT, demo_config, metric};

pub(crate) use crate::harness::tacacs_py as py;

fn crate_client(addr: SocketAddr, key: &str) -> Client<Compat<tokio::net::TcpStream>> {
    Client::new(
        Box::new(move || {
            tokio::net::TcpStream::connect(addr)
                .map_ok(TokioAsyncWriteCompatExt::compat_write)
                .boxed()
        }),
        Some(key.as_bytes()),
    )
}

fn arg<'a>(name: &'a str, value: &'a str) -> Argument<'a> {
    Argument::new(
        FieldText::try_from(name).unwrap(),
        FieldText::try_from(value).unwrap(),
        true,
    )
    .unwrap()
}

fn ctx(user: &str) -> tacacs_plus::SessionContext {
    ContextBuilder::new(user.to_owned()).build()
}

#[test]
fn python_client_ascii_login_pap_authorization_and_accounting() {
    let s = Running::start_demo();
    let a = s.addrs.tacacs.unwrap();
    let r = py(a, "tacacs123", &["ascii", "alice", "alice-pass-1"]);
    assert_eq!(r["valid"], true, "{r}");
    let r = py(a, "tacacs123", &["pap", "alice", "alice-pass-1"]);
    assert_eq!(r["valid"], true, "{r}");
    for (user, pass) in [
        ("alice", "wrong"),
        ("mallory", "mallory-pass-4"),
        ("nobody", "x"),
    ] {
        let r = py(a, "tacacs123", &["ascii", user, pass]);
        assert_eq!(r["valid"], false, "{user}: {r}");
        assert_eq!(r["status"], "FAIL", "{user}: {r}");
    }
    let r = py(a, "tacacs123", &["author", "bob", "service=shell", "cmd="]);
    assert_eq!(
        (&r["status"], &r["valid"]),
        (&"PASS".into(), &true.into()),
        "{r}"
    );
    assert_eq!(
        r["args"],
        serde_json::json!([
            "priv-lvl=7",
            "role=manager",
            "rbac-roles=Helpdesk",
            "rbac-aag=Asia-Admin"
        ])
    );
    let r = py(
        a,
        "tacacs123",
        &["author", "bob", "service=shell", "cmd=reload"],
    );
    assert_eq!(r["status"], "FAIL", "{r}");
    assert!(
        r["server_msg"]
            .as_str()
            .unwrap()
            .contains("`reload` denied for role helpdesk"),
        "{r}"
    );
    let r = py(
        a,
        "tacacs123",
        &[
            "author",
            "bob",
            "service=shell",
            "cmd=show",
            "cmd-arg=version",
            "cmd-arg=<cr>",
        ],
    );
    assert_eq!(
        (&r["status"], &r["valid"]),
        (&"PASS".into(), &true.into()),
        "{r}"
    );
    let r = py(
        a,
        "tacacs123",
        &[
            "author",
            "carol",
            "service=shell",
            "cmd=configure",
            "cmd-arg=terminal",
        ],
    );
    assert_eq!(r["status"], "FAIL", "{r}");
    let r = py(
        a,
        "tacacs123",
        &["author", "bob", "service=ppp", "protocol=ip"],
    );
    assert_eq!(r["status"], "FAIL", "services nothing grants fail: {r}");
    for kind in ["start", "stop"] {
        let r = py(a, "tacacs123", &["acct", kind, "alice"]);
        assert_eq!(r["status"], "SUCCESS", "{kind}: {r}");
    }
}

#[test]
fn wrong_key_is_refused_without_disturbing_other_clients() {
    let s = Running::start_demo();
    let a = s.addrs.tacacs.unwrap();
    // A connection that stays open from a well-behaved client...
    let rt = tokio::runtime::Runtime::new().unwrap();
    let good = crate_client(a, "tacacs123");
    rt.block_on(async {
        let r = good
            .authenticate(ctx("alice"), "alice-pass-1", AuthenticationType::Pap)
            .await
            .unwrap();
        assert_eq!(r.status, ResponseStatus::Success);
    });
    let r = py(a, "not-the-key", &["pap", "alice", "alice-pass-1"]);
    assert_eq!(r["valid"], false, "{r}");
    // ...still works, on the same single connection.
    rt.block_on(async {
        let r = good
            .authenticate(ctx("bob"), "bob-pass-2", AuthenticationType::Pap)
            .await
            .unwrap();
        assert_eq!(r.status, ResponseStatus::Success);
    });
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            "portcullis_tacacs_errors_total{reason=\"bad_key_or_body\"}"
        ),
        Some(1.0),
        "{m}"
    );
    s.wait_log("wrong key?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crate_client_pap_chap_authorization_accounting_on_one_connection() {
    let began = std::time::Instant::now();
    let s = Running::start_demo();
    let a = s.addrs.tacacs.unwrap();
    let c = crate_client(a, "tacacs123");
    let r = c
        .authenticate(ctx("alice"), "alice-pass-1", AuthenticationType::Pap)
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Success);
    let r = c
        .authenticate(ctx("alice"), "wrong", AuthenticationType::Pap)
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Failure);
    let r = c
        .authenticate(ctx("alice"), "alice-pass-1", AuthenticationType::Chap)
        .await
        .unwrap();
    assert_eq!(
        r.status,
        ResponseStatus::Success,
        "CHAP with the opt-in cleartext"
    );
    let r = c
        .authenticate(ctx("bob"), "bob-pass-2", AuthenticationType::Chap)
        .await
        .unwrap();
    assert_eq!(
        r.status,
        ResponseStatus::Failure,
        "bob has no cleartext-equivalent"
    );

    let r = c
        .authorize(ctx("bob"), vec![arg("service", "shell"), arg("cmd", "")])
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Success);
    let got: Vec<String> = r
        .arguments
        .iter()
        .map(|a| format!("{}={}", a.name(), a.value()))
        .collect();
    for want in [
        "priv-lvl=7",
        "role=manager",
        "rbac-roles=Helpdesk",
        "rbac-aag=Asia-Admin",
    ] {
        assert!(got.iter().any(|g| g == want), "missing {want} in {got:?}");
    }
    let r = c
        .authorize(
            ctx("alice"),
            vec![arg("service", "shell"), arg("cmd", "reload")],
        )
        .await
        .unwrap();
    assert_eq!(
        r.status,
        ResponseStatus::Success,
        "network-admin may run anything"
    );
    let r = c
        .authorize(
            ctx("bob"),
            vec![arg("service", "shell"), arg("cmd", "reload")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Failure);
    assert!(r.user_message.contains("denied"), "{r:?}");

    let (task, _) = c
        .account_begin(ctx("alice"), vec![arg("service", "shell")])
        .await
        .unwrap();
    task.stop(vec![arg("elapsed_time", "5")]).await.unwrap();

    // Every session above shared one connection (single-connection mode).
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(&m, "portcullis_tacacs_connections_total"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "portcullis_tacacs_requests_total{client=\"loopback\",type=\"accounting\",result=\"stop\"}"
        ),
        Some(1.0)
    );
    // Every reply is timed twice: from the complete request, and from the
    // kernel's receive stamp (socket queueing included), which is no shorter.
    let timed = metric(&m, "portcullis_tacacs_request_seconds_count").unwrap();
    assert!(timed >= 9.0, "{m}");
    assert_eq!(
        metric(&m, "portcullis_tacacs_kernel_to_reply_seconds_count"),
        Some(timed),
        "{m}"
    );
    let sum = |name: &str| metric(&m, &format!("portcullis_tacacs_{name}_seconds_sum")).unwrap();
    assert!(sum("kernel_to_reply") >= sum("request"), "{m}");
    // The requests went one after another on one connection, so their
    // kernel-to-reply times cannot add up to more than this test has run (a
    // stamp from the wrong clock would); argon2 on a busy machine can take
    // seconds, so no fixed bound.
    let ran = began.elapsed().as_secs_f64();
    assert!(sum("kernel_to_reply") <= ran, "{ran} s\n{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_block_logins_and_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let text = demo_config(dir.path()).replace("[tacacs]\n", "[tacacs]\nidle_timeout = 2\n");
    let s = Running::start_in(dir, &text);
    let a = s.addrs.tacacs.unwrap();
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect_timeout(&a, WAIT).unwrap())
        .collect();
    let c = crate_client(a, "tacacs123");
    let r = c
        .authenticate(ctx("alice"), "alice-pass-1", AuthenticationType::Pap)
        .await
        .unwrap();
    assert_eq!(r.status, ResponseStatus::Success);
    // Each idle connection is closed by the server: a read sees EOF well
    // before our own bound.
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        idle.into_iter()
            .filter(|mut sock| {
                sock.set_read_timeout(Some(WAIT)).unwrap();
                let mut b = [0u8; 1];
                matches!(sock.read(&mut b), Ok(0))
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, 200);
    let (_, m) = s.http_get("/metrics");
    assert_eq!(
        metric(
            &m,
            "portcullis_tacacs_errors_total{reason=\"idle_timeout\"}"
        ),
        Some(200.0),
        "{m}"
    );
}
