use super::*;

fn hdr(t: PacketType, seq: u8, flags: u8) -> Header {
    Header {
        version: 0xC0,
        packet_type: t,
        seq_no: seq,
        flags,
        session_id: 0x1234_5678,
        length: 0,
    }
}

#[test]
fn header_round_trip_and_framing() {
    let h = Header {
        length: 5,
        ..hdr(PacketType::Authorization, 1, FLAG_SINGLE_CONNECT)
    };
    let mut b = [0u8; HEADER_LEN];
    h.write(&mut b);
    assert_eq!(Header::parse(&b, 100).unwrap(), h);
    assert_eq!(Header::check(&b[..11], 100), Ok(None));
    assert_eq!(Header::check(&b, 100), Ok(None), "body not there yet");
    let mut full = b.to_vec();
    full.extend_from_slice(&[0; 5]);
    assert_eq!(Header::check(&full, 100), Ok(Some((h, 17))));
    assert_eq!(Header::check(&full, 4), Err(DecodeError::TooLong(5)));
    full[0] = 0xB0;
    assert_eq!(Header::parse(&full, 100), Err(DecodeError::BadVersion));
    full[0] = 0xC0;
    full[1] = 9;
    assert_eq!(Header::parse(&full, 100), Err(DecodeError::BadType(9)));
    assert_eq!(
        Header::parse(&full[..3], 100),
        Err(DecodeError::ShortHeader)
    );
}

#[test]
fn reply_sequence_rules() {
    let h = hdr(PacketType::Authentication, 1, 0);
    assert_eq!(h.reply(0).unwrap().seq_no, 2);
    assert_eq!(
        hdr(PacketType::Authentication, 2, 0).reply(0),
        Err(DecodeError::BadSequence)
    );
    assert_eq!(
        hdr(PacketType::Authentication, 255, 0).reply(0),
        Err(DecodeError::BadSequence)
    );
}

#[test]
fn obfuscation_is_an_involution_and_depends_on_everything() {
    let h = hdr(PacketType::Authentication, 1, 0);
    let plain: Vec<u8> = (0..40).collect();
    let mut b = plain.clone();
    obfuscate(&mut b, &h, b"tacacs123");
    assert_ne!(b, plain);
    let mut c = plain.clone();
    obfuscate(&mut c, &hdr(PacketType::Authentication, 3, 0), b"tacacs123");
    assert_ne!(b, c, "sequence number changes the pad");
    obfuscate(&mut b, &h, b"tacacs123");
    assert_eq!(b, plain);
}

#[test]
fn obfuscation_matches_the_rfc_construction() {
    // pad_1 = MD5(session_id, key, version, seq_no); pad_2 = MD5(..., pad_1)
    use md5::{Digest, Md5};
    let h = hdr(PacketType::Authentication, 1, 0);
    let mut m = Md5::new();
    m.update(0x1234_5678u32.to_be_bytes());
    m.update(b"k");
    m.update([0xC0, 1]);
    let p1 = m.finalize();
    let mut m = Md5::new();
    m.update(0x1234_5678u32.to_be_bytes());
    m.update(b"k");
    m.update([0xC0, 1]);
    m.update(p1);
    let p2 = m.finalize();
    let mut zeros = [0u8; 20];
    obfuscate(&mut zeros, &h, b"k");
    assert_eq!(&zeros[..16], &p1[..]);
    assert_eq!(&zeros[16..], &p2[..4]);
}

/// The pad as RFC 8907 §4.5 writes it, with the streaming `Digest` API.
fn digest_pad(body: &mut [u8], h: &Header, key: &[u8]) {
    use md5::{Digest, Md5};
    let mut base = Md5::new();
    base.update(h.session_id.to_be_bytes());
    base.update(key);
    base.update([h.version, h.seq_no]);
    let mut prev = base.clone().finalize();
    for (i, chunk) in body.chunks_mut(16).enumerate() {
        if i > 0 {
            let mut m = base.clone();
            m.update(prev);
            prev = m.finalize();
        }
        for (b, p) in chunk.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
    }
}

#[test]
fn obfuscation_matches_the_digest_construction_for_all_lengths() {
    // Key lengths put the prefix (4 + key + 2 bytes) on both sides of every
    // block boundary, with and without room for the chained pad and MD5's
    // length in the last block; body lengths cover partial last chunks.
    let key_bytes: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    for key_len in (0..=140).chain([185, 186, 200]) {
        let key = &key_bytes[..key_len];
        for (version, seq) in [(0xC0, 1), (0xC1, 2), (0xC0, 255)] {
            let h = Header {
                version,
                seq_no: seq,
                session_id: 0x9abc_def0 ^ key_len as u32,
                ..hdr(PacketType::Authorization, 1, 0)
            };
            for body_len in [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257] {
                let plain: Vec<u8> = (0..body_len).map(|i| (i * 13) as u8).collect();
                let mut ours = plain.clone();
                obfuscate(&mut ours, &h, key);
                let mut theirs = plain.clone();
                digest_pad(&mut theirs, &h, key);
                assert_eq!(ours, theirs, "key {key_len} body {body_len} seq {seq}");
            }
        }
    }
}
#[test]
fn authen_start_round_trip_and_bad_lengths() {
    let s = AuthenStart {
        action: Action::LOGIN,
        priv_lvl: 1,
        authen_type: AuthenType::PAP,
        authen_service: AuthenService::LOGIN,
        user: b"alice",
        port: b"tty0",
        rem_addr: b"10.0.0.1",
        data: b"alice-pass-1",
    };
    let mut out = Vec::new();
    s.encode(&mut out).unwrap();
    assert_eq!(AuthenStart::decode(&out).unwrap(), s);
    assert_eq!(
        AuthenStart::decode(&out[..out.len() - 1]),
        Err(DecodeError::LengthMismatch)
    );
    let mut longer = out.clone();
    longer.push(0);
    assert_eq!(
        AuthenStart::decode(&longer),
        Err(DecodeError::LengthMismatch)
    );
    assert_eq!(AuthenStart::decode(&out[..7]), Err(DecodeError::ShortBody));
}

#[test]
fn continue_and_reply_round_trip() {
    let c = AuthenContinue {
        flags: CONTINUE_FLAG_ABORT,
        user_msg: b"secret",
        data: b"",
    };
    let mut out = Vec::new();
    c.encode(&mut out).unwrap();
    let d = AuthenContinue::decode(&out).unwrap();
    assert_eq!(d, c);
    assert!(d.aborted());
    let r = AuthenReply {
        status: AuthenStatus::GETPASS,
        flags: REPLY_FLAG_NOECHO,
        server_msg: b"Password: ",
        data: b"",
    };
    out.clear();
    r.encode(&mut out).unwrap();
    assert_eq!(AuthenReply::decode(&out).unwrap(), r);
}

#[test]
fn authorization_round_trip_with_args() {
    let req = AuthorRequest {
        authen_method: 6,
        priv_lvl: 1,
        authen_type: AuthenType::ASCII,
        authen_service: AuthenService::LOGIN,
        user: b"bob",
        port: b"",
        rem_addr: b"",
        args: Args::EMPTY,
    };
    let args: [&[u8]; 3] = [b"service=shell", b"cmd=show", b"cmd-arg=version"];
    let mut out = Vec::new();
    req.encode(&args, &mut out).unwrap();
    let d = AuthorRequest::decode(&out).unwrap();
    assert_eq!(d.user, b"bob");
    let got: Vec<&[u8]> = d.args.iter().collect();
    assert_eq!(got, args);
    assert_eq!(
        split_arg(b"cmd*show"),
        Some((&b"cmd"[..], &b"show"[..], false))
    );
    assert_eq!(
        split_arg(b"priv-lvl=7"),
        Some((&b"priv-lvl"[..], &b"7"[..], true))
    );
    assert_eq!(split_arg(b"nothing"), None);

    out.clear();
    AuthorResponse::encode(
        AuthorStatus::PASS_ADD,
        &["priv-lvl=7", "role=manager"],
        b"",
        b"",
        &mut out,
    )
    .unwrap();
    let r = AuthorResponse::decode(&out).unwrap();
    assert_eq!(r.status, AuthorStatus::PASS_ADD);
    let got: Vec<&[u8]> = r.args.iter().collect();
    assert_eq!(got, [&b"priv-lvl=7"[..], &b"role=manager"[..]]);
    // An argument length that runs past the body is caught.
    let mut bad = out.clone();
    bad[6] = 200;
    assert_eq!(
        AuthorResponse::decode(&bad),
        Err(DecodeError::LengthMismatch)
    );
}

#[test]
fn accounting_round_trip() {
    let req = AcctRequest {
        flags: ACCT_FLAG_START,
        authen_method: 6,
        priv_lvl: 15,
        authen_type: AuthenType::PAP,
        authen_service: AuthenService::LOGIN,
        user: b"alice",
        port: b"tty1",
        rem_addr: b"192.0.2.9",
        args: Args::EMPTY,
    };
    let args: [&[u8]; 2] = [b"task_id=7", b"service=shell"];
    let mut out = Vec::new();
    req.encode(&args, &mut out).unwrap();
    let d = AcctRequest::decode(&out).unwrap();
    assert_eq!(d.flags, ACCT_FLAG_START);
    assert_eq!(d.args.len(), 2);
    out.clear();
    let rep = AcctReply {
        status: AcctStatus::SUCCESS,
        server_msg: b"",
        data: b"",
    };
    rep.encode(&mut out).unwrap();
    assert_eq!(AcctReply::decode(&out).unwrap(), rep);
}

#[test]
fn whole_packet_encode_then_decode() {
    let h = hdr(PacketType::Authentication, 2, 0);
    let mut out = Vec::new();
    encode_packet(&h, b"tacacs123", &mut out, |b| {
        AuthenReply {
            status: AuthenStatus::PASS,
            flags: 0,
            server_msg: b"welcome",
            data: b"",
        }
        .encode(b)
    })
    .unwrap();
    let (ph, total) = Header::check(&out, 1024).unwrap().unwrap();
    assert_eq!(total, out.len());
    let mut body = out[HEADER_LEN..].to_vec();
    obfuscate(&mut body, &ph, b"tacacs123");
    assert_eq!(AuthenReply::decode(&body).unwrap().server_msg, b"welcome");
    // The wrong key shows as inconsistent lengths, not as garbage accepted.
    let mut body = out[HEADER_LEN..].to_vec();
    obfuscate(&mut body, &ph, b"wrong-key");
    assert!(AuthenReply::decode(&body).is_err());
}

#[test]
fn fields_too_long_are_errors_not_truncation() {
    let long = vec![b'a'; 256];
    let s = AuthenStart {
        action: Action::LOGIN,
        priv_lvl: 1,
        authen_type: AuthenType::PAP,
        authen_service: AuthenService::LOGIN,
        user: &long,
        port: b"",
        rem_addr: b"",
        data: b"",
    };
    assert_eq!(s.encode(&mut Vec::new()), Err(EncodeError::FieldTooLong));
}

#[test]
fn fuzz_hook_survives_random_and_mutated_inputs() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut valid = Vec::new();
    encode_packet(
        &hdr(PacketType::Authorization, 1, 0),
        b"fuzz-key",
        &mut valid,
        |b| {
            AuthorRequest {
                authen_method: 1,
                priv_lvl: 1,
                authen_type: AuthenType::PAP,
                authen_service: AuthenService::LOGIN,
                user: b"u",
                port: b"p",
                rem_addr: b"r",
                args: Args::EMPTY,
            }
            .encode(&[b"service=shell"], b)
        },
    )
    .unwrap();
    fuzz_decode(&valid);
    for _ in 0..5000 {
        let mut v = valid.clone();
        let n = (next() % 4) as usize + 1;
        for _ in 0..n {
            let i = (next() as usize) % v.len();
            v[i] = next() as u8;
        }
        if next() % 3 == 0 {
            v.truncate((next() as usize) % (v.len() + 1));
        }
        fuzz_decode(&v);
        let len = (next() % 64) as usize;
        let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        fuzz_decode(&random);
    }
}
