//! An Accounting-Request (RFC 2866) as an accounting record: attributes named
//! and typed by the dictionary, and the key that recognises a retransmission
//! of the same request, even one whose Acct-Delay-Time was bumped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::codec::{Packet, attr};
use crate::accounting::{Attributes, DedupKey, Protocol, Record, Status, format_time};
use crate::dict::{DataType, Dictionary, Encrypt};

/// RFC 2866 §5.2: a client updates it on every retransmission.
const ACCT_DELAY_TIME: u8 = 41;

/// The record for a verified Accounting-Request from `addr:port`.
pub fn record(
    dict: &Dictionary,
    client: &str,
    addr: IpAddr,
    port: u16,
    pkt: &Packet<'_>,
    received_at: SystemTime,
) -> Record {
    let text = |t| {
        pkt.attr(t)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let status = pkt
        .attr(attr::ACCT_STATUS_TYPE)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map_or(Status::Other(0), |b| {
            Status::from_radius(u32::from_be_bytes(b))
        });
    Record {
        protocol: Protocol::Radius,
        client: client.to_string(),
        client_addr: addr,
        src_port: port,
        user: text(attr::USER_NAME),
        session_id: text(attr::ACCT_SESSION_ID),
        status,
        received_at,
        attributes: attributes(dict, pkt),
        dedup_key: dedup_key(addr, pkt),
    }
}

/// Identifies the request by what the appliance said, not how it framed it:
/// the sender's address and every attribute except those a retransmission
/// may change (Acct-Delay-Time, hence the authenticators). RFC 2866 §5.2
/// makes a bumped Acct-Delay-Time a new request on the wire, yet it reports
/// the same event, so it must not become a second record. The source port
/// is left out as well: an appliance that restarted its RADIUS client sends
/// its backlog from a new port.
pub fn dedup_key(addr: IpAddr, pkt: &Packet<'_>) -> DedupKey {
    let mut h = Sha256::new();
    h.update(b"portcullis radius acct v1\0");
    match addr {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(a) => h.update(a.octets()),
            None => h.update(a.octets()),
        },
    }
    h.update([pkt.code().0]);
    for (t, v) in pkt.attributes() {
        if t == ACCT_DELAY_TIME || t == attr::MESSAGE_AUTHENTICATOR {
            continue;
        }
        // Length-prefixed, so attribute boundaries cannot be shifted.
        h.update([t, v.len() as u8]);
        h.update(v);
    }
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    DedupKey(k)
}

/// Attribute name → value (an array when the attribute repeats). Names and
/// types come from the dictionary; unknown attributes keep their numbers
/// (`Attr-N`, `Vendor-V-Attr-N`) and hex values, so nothing is lost.
pub fn attributes(dict: &Dictionary, pkt: &Packet<'_>) -> Attributes {
    let mut out = Attributes::new();
    for (t, v) in pkt.attributes() {
        match t {
            attr::MESSAGE_AUTHENTICATOR => continue,
            attr::VENDOR_SPECIFIC => {
                // Standard-format VSAs are named below; others stay raw.
                if !vsa_well_formed(v) {
                    push(&mut out, "Vendor-Specific".into(), hex(v));
                }
                continue;
            }
            _ => {}
        }
        let (name, value) = match dict.attribute_by_number(0, u32::from(t)) {
            Some(a) => (a.name.to_string(), typed(dict, a, v)),
            None => (format!("Attr-{t}"), hex(v)),
        };
        push(&mut out, name, value);
    }
    for vsa in pkt.vsas() {
        let (name, value) = match dict.attribute_by_number(vsa.vendor, u32::from(vsa.vendor_type)) {
            Some(a) => (a.name.to_string(), typed(dict, a, vsa.value)),
            None => (
                format!("Vendor-{}-Attr-{}", vsa.vendor, vsa.vendor_type),
                hex(vsa.value),
            ),
        };
        push(&mut out, name, value);
    }
    out
}

/// Whether `v` is vendor id + 1-octet type/length sub-attributes, the format
/// [`Packet::vsas`] yields.
fn vsa_well_formed(v: &[u8]) -> bool {
    let Some(mut rest) = v.get(4..) else {
        return false;
    };
    if rest.is_empty() {
        return false;
    }
    while let [_, len, ..] = rest {
        let len = usize::from(*len);
        if len < 2 || len > rest.len() {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}

/// Values are never arrays by themselves, so an array means repeats.
fn push(out: &mut Attributes, name: String, value: Value) {
    match out.get_mut(&name) {
        None => {
            out.insert(name, value);
        }
        Some(Value::Array(a)) => a.push(value),
        Some(prev) => {
            let first = prev.take();
            *prev = Value::Array(vec![first, value]);
        }
    }
}

fn typed(dict: &Dictionary, a: &crate::dict::Attribute, v: &[u8]) -> Value {
    if a.flags.encrypt != Encrypt::None || a.flags.secret {
        return Value::String("(hidden)".into());
    }
    // RFC 2868 §3: a tag octet (0x01-0x1f) may precede a tagged value.
    let v = match (a.flags.has_tag, v.first()) {
        (true, Some(&tag)) if tag <= 0x1f && !matches!(a.data_type, DataType::Integer) => &v[1..],
        _ => v,
    };
    let int = |n: u64| match dict.value_name(a, n) {
        Some(name) => Value::String(name.to_string()),
        None => Value::from(n),
    };
    match (&a.data_type, v.len()) {
        (DataType::String, _) => Value::String(String::from_utf8_lossy(v).into_owned()),
        (DataType::Integer, 4) if a.flags.has_tag => {
            // Tagged integers give the tag the first of their four octets.
            int(u64::from(u32::from_be_bytes([0, v[1], v[2], v[3]])))
        }
        (DataType::Integer, 4) => int(u64::from(u32::from_be_bytes(
            v.try_into().unwrap_or_default(),
        ))),
        (DataType::Byte, 1) => int(u64::from(v[0])),
        (DataType::Short, 2) => int(u64::from(u16::from_be_bytes([v[0], v[1]]))),
        (DataType::Signed, 4) => Value::from(i32::from_be_bytes(v.try_into().unwrap_or_default())),
        (DataType::Integer64, 8) => {
            Value::from(u64::from_be_bytes(v.try_into().unwrap_or_default()))
        }
        (DataType::Date, 4) => {
            let secs = u32::from_be_bytes(v.try_into().unwrap_or_default());
            Value::String(format_time(
                UNIX_EPOCH + Duration::from_secs(u64::from(secs)),
            ))
        }
        (DataType::IpAddr | DataType::ComboIp, 4) => {
            Value::String(Ipv4Addr::from(<[u8; 4]>::try_from(v).unwrap_or_default()).to_string())
        }
        (DataType::Ipv6Addr | DataType::ComboIp, 16) => {
            Value::String(Ipv6Addr::from(<[u8; 16]>::try_from(v).unwrap_or_default()).to_string())
        }
        (DataType::Ipv6Prefix, 2..=18) if v[1] <= 128 => {
            let mut a = [0u8; 16];
            a[..v.len() - 2].copy_from_slice(&v[2..]);
            Value::String(format!("{}/{}", Ipv6Addr::from(a), v[1]))
        }
        (DataType::Ipv4Prefix, 6) if v[1] & 0x3f <= 32 => {
            let a = Ipv4Addr::new(v[2], v[3], v[4], v[5]);
            Value::String(format!("{a}/{}", v[1] & 0x3f))
        }
        (DataType::Ether, 6) => Value::String(
            v.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => hex(v),
    }
}

fn hex(v: &[u8]) -> Value {
    let mut s = String::with_capacity(2 + 2 * v.len());
    s.push_str("0x");
    for b in v {
        s.push_str(&format!("{b:02x}"));
    }
    Value::String(s)
}

/// Fuzz entry: any packet that decodes becomes a record without panicking,
/// whatever its attributes claim about their types and lengths.
pub fn fuzz_record(data: &[u8]) {
    if let Ok(pkt) = super::codec::decode(data) {
        let dict = crate::dict::builtin();
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let r = record(&dict, "fuzz", addr, 1813, &pkt, UNIX_EPOCH);
        let _ = serde_json::to_string(&r.attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::codec::{Code, RequestWriter, Secret, decode};

    const ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    /// An Accounting-Request with `delay` as Acct-Delay-Time and `id`.
    fn packet(buf: &mut [u8], id: u8, delay: u32, extra: &[(u8, &[u8])]) -> usize {
        let secret = Secret::new(b"testing123");
        let mut w = RequestWriter::new(buf, Code::ACCOUNTING_REQUEST, id, &[0; 16]).unwrap();
        w.put(attr::USER_NAME, b"alice").unwrap();
        w.put_u32(attr::ACCT_STATUS_TYPE, 1).unwrap();
        w.put(attr::ACCT_SESSION_ID, b"s-1").unwrap();
        w.put_u32(ACCT_DELAY_TIME, delay).unwrap();
        w.put(attr::FRAMED_IP_ADDRESS, &[198, 51, 100, 7]).unwrap();
        w.put_vsa(9, 1, b"vrf=blue").unwrap();
        w.put_vsa(9, 1, b"connect-progress=up").unwrap();
        for (t, v) in extra {
            w.put(*t, v).unwrap();
        }
        w.finish(&secret).unwrap()
    }

    #[test]
    fn record_names_and_types_attributes() {
        let mut buf = [0u8; 512];
        let n = packet(&mut buf, 7, 0, &[(55, &1_700_000_000u32.to_be_bytes())]);
        let pkt = decode(&buf[..n]).unwrap();
        let r = record(
            &crate::dict::builtin(),
            "edge",
            ADDR,
            1813,
            &pkt,
            UNIX_EPOCH,
        );
        assert_eq!((r.user.as_str(), r.session_id.as_str()), ("alice", "s-1"));
        assert_eq!(r.status, Status::Start);
        let a = &r.attributes;
        assert_eq!(a["Acct-Status-Type"], "Start");
        assert_eq!(a["Framed-IP-Address"], "198.51.100.7");
        assert_eq!(a["Acct-Delay-Time"], 0);
        assert_eq!(a["Event-Timestamp"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(
            a["Cisco-AVPair"],
            serde_json::json!(["vrf=blue", "connect-progress=up"])
        );
    }

    #[test]
    fn dedup_key_survives_a_bumped_delay_but_not_a_different_event() {
        let (mut a, mut b, mut c) = ([0u8; 512], [0u8; 512], [0u8; 512]);
        let na = packet(&mut a, 7, 0, &[]);
        // A retransmission per RFC 2866 §5.2: new Identifier, new delay,
        // hence a new Request Authenticator.
        let nb = packet(&mut b, 8, 5, &[]);
        let nc = packet(&mut c, 7, 0, &[(46, &60u32.to_be_bytes())]);
        let (pa, pb, pc) = (
            decode(&a[..na]).unwrap(),
            decode(&b[..nb]).unwrap(),
            decode(&c[..nc]).unwrap(),
        );
        assert_ne!(pa.authenticator(), pb.authenticator());
        assert_eq!(dedup_key(ADDR, &pa), dedup_key(ADDR, &pb));
        assert_ne!(dedup_key(ADDR, &pa), dedup_key(ADDR, &pc));
        // Another appliance sending the same attributes is another record.
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert_ne!(dedup_key(ADDR, &pa), dedup_key(other, &pa));
        // An IPv4-mapped source is the same appliance.
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(dedup_key(ADDR, &pa), dedup_key(mapped, &pa));
    }

    #[test]
    fn malformed_values_fall_back_to_hex_and_hidden_stays_hidden() {
        let mut buf = [0u8; 512];
        // Framed-IP-Address of 3 octets, User-Password (encrypt=1) present,
        // an unknown attribute 250.
        let n = packet(
            &mut buf,
            1,
            0,
            &[(8, &[1, 2, 3]), (2, b"secretsecret1234"), (250, b"\x01")],
        );
        let pkt = decode(&buf[..n]).unwrap();
        let a = attributes(&crate::dict::builtin(), &pkt);
        assert_eq!(
            a["Framed-IP-Address"],
            serde_json::json!(["198.51.100.7", "0x010203"])
        );
        assert_eq!(a["User-Password"], "(hidden)");
        assert_eq!(a["Attr-250"], "0x01");
    }
}
