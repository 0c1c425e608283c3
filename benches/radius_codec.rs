//! The codec's share of one warm PAP login: decode the Access-Request,
//! verify its Message-Authenticator, recover the password, and write the
//! orchestrator Access-Accept (Message-Authenticator first, the role's
//! pre-rendered Cisco-AVPairs spliced in, Response Authenticator), with the
//! attributes taken from the demo configuration itself.
//!
//! ```text
//! cargo bench --bench radius_codec
//! ```

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis::profile::Profile;
use portcullis::radius::codec::{
    self, Code, MAX_PACKET_LEN, ReplyWriter, Secret, attr, encode_access_request,
};

fn demo_accept_attributes() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portcullis.toml");
    let loaded = portcullis::config::load(&path).expect("demo configuration loads");
    let config = loaded.config;
    let (role, _) = config
        .policy
        .role_by_name("network-admin")
        .expect("demo role network-admin");
    config
        .renderings
        .radius(Profile::Orchestrator, role)
        .to_vec()
}

/// decode + Message-Authenticator check + User-Password recovery; returns
/// the password length so nothing is optimised away.
fn open_request(req: &[u8], secret: &Secret) -> usize {
    let pkt = codec::decode(req).expect("decodes");
    codec::verify_request(&pkt, secret, true).expect("verifies");
    let user = pkt.attr(attr::USER_NAME).expect("User-Name");
    let hidden = pkt.attr(attr::USER_PASSWORD).expect("User-Password");
    let mut buf = [0u8; codec::MAX_PASSWORD_LEN];
    let pw =
        codec::unhide_password(hidden, secret, pkt.authenticator(), &mut buf).expect("unhides");
    user.len() + pw.len()
}

fn write_accept(req: &[u8], rendered: &[u8], secret: &Secret, out: &mut [u8]) -> usize {
    let pkt = codec::decode(req).expect("decodes");
    let mut w =
        ReplyWriter::new_with_message_authenticator(out, Code::ACCESS_ACCEPT, pkt.identifier())
            .expect("room");
    w.put_raw(rendered).expect("room");
    w.copy_proxy_state(&pkt).expect("room");
    w.finish(secret, pkt.authenticator()).expect("signs")
}

fn bench(c: &mut Criterion) {
    let secret = Secret::new(b"testing123");
    let rendered = demo_accept_attributes();
    let mut req = [0u8; MAX_PACKET_LEN];
    let n = encode_access_request(&mut req, 42, &[7u8; 16], b"alice", b"alice-pass-1", &secret)
        .expect("encodes");
    let req = &req[..n];
    let mut out = [0u8; MAX_PACKET_LEN];
    // The reply must verify as a client would check it.
    let m = write_accept(req, &rendered, &secret, &mut out);
    let reply = codec::decode(&out[..m]).expect("reply decodes");
    codec::verify_reply(&reply, &[7u8; 16], &secret, true).expect("reply verifies");
    assert!(reply.message_authenticator_is_first());

    let mut g = c.benchmark_group("radius_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_verify_unhide", |b| {
        b.iter(|| open_request(black_box(req), &secret))
    });
    g.bench_function("encode_orchestrator_accept", |b| {
        b.iter(|| write_accept(black_box(req), &rendered, &secret, &mut out))
    });
    g.bench_function("request_to_accept", |b| {
        b.iter(|| {
            let k = open_request(black_box(req), &secret);
            write_accept(req, &rendered, &secret, &mut out) + k
        })
    });
    g.bench_function("client_encode_request", |b| {
        let mut buf = [0u8; 512];
        b.iter(|| {
            encode_access_request(
                &mut buf,
                42,
                black_box(&[7u8; 16]),
                b"alice",
                b"alice-pass-1",
                &secret,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
