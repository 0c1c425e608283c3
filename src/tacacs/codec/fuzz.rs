//! Fuzz entry: arbitrary bytes as a packet, decoded as every body kind with
//! and without de-obfuscation; anything that decodes must re-encode to the
//! same bytes.

use super::body::*;
use super::header::{HEADER_LEN, Header, PacketType};
use super::obfuscate::obfuscate;

const KEY: &[u8] = b"fuzz-key";

pub fn fuzz_decode(data: &[u8]) {
    let Ok(Some((h, total))) = Header::check(data, 1 << 20) else {
        let _ = Header::parse(data, u32::MAX);
        return;
    };
    let mut body = data[HEADER_LEN..total].to_vec();
    bodies(&h, &body);
    obfuscate(&mut body, &h, KEY);
    bodies(&h, &body);
    let _ = h.reply(0);
}

fn bodies(h: &Header, body: &[u8]) {
    let mut out = Vec::new();
    match h.packet_type {
        PacketType::Authentication => {
            if let Ok(s) = AuthenStart::decode(body) {
                s.encode(&mut out).unwrap();
                assert_eq!(out, body);
            }
            out.clear();
            if let Ok(c) = AuthenContinue::decode(body) {
                c.encode(&mut out).unwrap();
                assert_eq!(out, body);
            }
            out.clear();
            if let Ok(r) = AuthenReply::decode(body) {
                r.encode(&mut out).unwrap();
                assert_eq!(out, body);
            }
        }
        PacketType::Authorization => {
            if let Ok(r) = AuthorRequest::decode(body) {
                let args: Vec<&[u8]> = r.args.iter().collect();
                for a in &args {
                    let _ = split_arg(a);
                }
                r.encode(&args, &mut out).unwrap();
                assert_eq!(out, body);
            }
            out.clear();
            if let Ok(r) = AuthorResponse::decode(body) {
                let args: Vec<&[u8]> = r.args.iter().collect();
                AuthorResponse::encode(r.status, &args, r.server_msg, r.data, &mut out).unwrap();
                assert_eq!(out, body);
            }
        }
        PacketType::Accounting => {
            if let Ok(r) = AcctRequest::decode(body) {
                let args: Vec<&[u8]> = r.args.iter().collect();
                r.encode(&args, &mut out).unwrap();
                assert_eq!(out, body);
            }
            out.clear();
            if let Ok(r) = AcctReply::decode(body) {
                r.encode(&mut out).unwrap();
                assert_eq!(out, body);
            }
        }
    }
}
