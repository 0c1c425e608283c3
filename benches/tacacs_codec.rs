//! The codec's share of one TACACS+ login (PAP START then shell
//! authorization), on the server side: frame and de-obfuscate the START and
//! decode it, encode and obfuscate the PASS reply, and the whole
//! authorization exchange (REQUEST in, PASS_ADD with the orchestrator AV pairs
//! of the demo's network-admin role out, taken from the demo configuration
//! itself). Obfuscation (the MD5 pad of RFC 8907 §4.5) is also measured on its
//! own at a few body sizes, since it dominates the rest.
//!
//! ```text
//! cargo bench --bench tacacs_codec
//! ```
//!
//! De-obfuscation works in place, so the decode benchmarks include copying
//! the received packet (under 100 bytes) into a scratch buffer first.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portcullis::profile::Profile;
use portcullis::tacacs::codec::{
    Action, Args, AuthenReply, AuthenService, AuthenStart, AuthenStatus, AuthenType, AuthorRequest,
    AuthorResponse, AuthorStatus, FLAG_SINGLE_CONNECT, HEADER_LEN, Header, PacketType,
    encode_packet, obfuscate, split_arg,
};

const KEY: &[u8] = b"tacacs123";
const MAX_BODY: u32 = 64 * 1024;

fn demo_shell_args() -> Vec<Box<[u8]>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/portcullis.toml");
    let loaded = portcullis::config::load(&path).expect("demo configuration loads");
    let config = loaded.config;
    let (role, _) = config
        .policy
        .role_by_name("network-admin")
        .expect("demo role network-admin");
    config
        .renderings
        .tacacs(Profile::Orchestrator, role)
        .to_vec()
}

fn header(version: u8, packet_type: PacketType) -> Header {
    Header {
        version,
        packet_type,
        seq_no: 1,
        flags: FLAG_SINGLE_CONNECT,
        session_id: 0x5eed_1234,
        length: 0,
    }
}

/// What a router sends: the PAP START of the load generator.
fn start_packet() -> Vec<u8> {
    let start = AuthenStart {
        action: Action::LOGIN,
        priv_lvl: 1,
        authen_type: AuthenType::PAP,
        authen_service: AuthenService::LOGIN,
        user: b"alice",
        port: b"tty0",
        rem_addr: b"192.0.2.1",
        data: b"alice-pass-1",
    };
    let mut out = Vec::new();
    encode_packet(
        &header(0xC1, PacketType::Authentication),
        KEY,
        &mut out,
        |b| start.encode(b),
    )
    .expect("encodes");
    out
}

/// A shell authorization request, as the load generator sends it.
fn author_packet() -> Vec<u8> {
    let req = AuthorRequest {
        authen_method: 6,
        priv_lvl: 1,
        authen_type: AuthenType::PAP,
        authen_service: AuthenService::LOGIN,
        user: b"alice",
        port: b"tty0",
        rem_addr: b"192.0.2.1",
        args: Args::EMPTY,
    };
    let args: [&[u8]; 2] = [b"service=shell", b"cmd="];
    let mut out = Vec::new();
    encode_packet(
        &header(0xC0, PacketType::Authorization),
        KEY,
        &mut out,
        |b| req.encode(&args, b),
    )
    .expect("encodes");
    out
}

/// Frames `wire` (copied into `scratch`), de-obfuscates it in place and
/// returns the header; the body is `scratch[HEADER_LEN..]`.
fn open(wire: &[u8], scratch: &mut Vec<u8>) -> Header {
    scratch.clear();
    scratch.extend_from_slice(wire);
    let (h, total) = Header::check(scratch, MAX_BODY)
        .expect("parses")
        .expect("complete");
    obfuscate(&mut scratch[HEADER_LEN..total], &h, KEY);
    h
}

/// decode + de-obfuscate a START; returns something of it so nothing is
/// optimised away.
fn decode_start(wire: &[u8], scratch: &mut Vec<u8>) -> usize {
    open(wire, scratch);
    let s = AuthenStart::decode(&scratch[HEADER_LEN..]).expect("decodes");
    s.user.len() + s.data.len()
}

fn encode_pass(req: &Header, out: &mut Vec<u8>) -> usize {
    let rh = req.reply(FLAG_SINGLE_CONNECT).expect("odd sequence");
    encode_packet(&rh, KEY, out, |b| {
        AuthenReply {
            status: AuthenStatus::PASS,
            flags: 0,
            server_msg: b"",
            data: b"",
        }
        .encode(b)
    })
    .expect("encodes");
    out.len()
}

/// REQUEST in, PASS_ADD out, with the work the service does on the args.
fn authorize(wire: &[u8], shell: &[Box<[u8]>], scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> usize {
    let h = open(wire, scratch);
    let req = AuthorRequest::decode(&scratch[HEADER_LEN..]).expect("decodes");
    let mut shell_start = false;
    for a in req.args.iter() {
        if let Some((name, value, _)) = split_arg(a) {
            shell_start |= name == b"service" && value == b"shell";
        }
    }
    assert!(shell_start);
    let rh = h.reply(FLAG_SINGLE_CONNECT).expect("odd sequence");
    encode_packet(&rh, KEY, out, |b| {
        AuthorResponse::encode(AuthorStatus::PASS_ADD, shell, b"", b"", b)
    })
    .expect("encodes");
    out.len() + req.user.len()
}

fn bench(c: &mut Criterion) {
    let shell = demo_shell_args();
    let start = start_packet();
    let author = author_packet();
    let mut scratch = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);

    // The replies must read back as a client would read them.
    let h = open(&start, &mut scratch);
    encode_pass(&h, &mut out);
    let mut back = Vec::new();
    let rh = open(&out, &mut back);
    assert_eq!(rh.seq_no, 2);
    let r = AuthenReply::decode(&back[HEADER_LEN..]).expect("reply decodes");
    assert_eq!(r.status, AuthenStatus::PASS);
    authorize(&author, &shell, &mut scratch, &mut out);
    open(&out, &mut back);
    let r = AuthorResponse::decode(&back[HEADER_LEN..]).expect("response decodes");
    assert_eq!(r.status, AuthorStatus::PASS_ADD);
    let got: Vec<&[u8]> = r.args.iter().collect();
    let want: Vec<&[u8]> = shell.iter().map(|a| &a[..]).collect();
    assert_eq!(got, want);
    assert_eq!(
        got.first().copied(),
        Some(&b"priv-lvl=15"[..]),
        "demo network-admin"
    );

    let mut g = c.benchmark_group("tacacs_codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_start", |b| {
        b.iter(|| decode_start(black_box(&start), &mut scratch))
    });
    g.bench_function("encode_pass_reply", |b| {
        b.iter(|| encode_pass(black_box(&h), &mut out))
    });
    g.bench_function("authorization_request_to_response", |b| {
        b.iter(|| authorize(black_box(&author), &shell, &mut scratch, &mut out))
    });
    g.bench_function("login_server_side", |b| {
        // Both exchanges of one login: START -> PASS, REQUEST -> PASS_ADD.
        b.iter(|| {
            let n = decode_start(black_box(&start), &mut scratch);
            let m = encode_pass(&h, &mut out);
            n + m + authorize(black_box(&author), &shell, &mut scratch, &mut out)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tacacs_obfuscate");
    for len in [16usize, 64, 256, 1024] {
        let mut body = vec![0x5au8; len];
        let h = header(0xC0, PacketType::Authorization);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
            b.iter(|| obfuscate(black_box(&mut body), &h, KEY))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
