use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::*;

/// Loader over an in-memory set of files.
fn mem_loader(files: &[(&str, &str)]) -> impl FnMut(&Path) -> io::Result<String> + use<> {
    let map: HashMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    move |p: &Path| {
        map.get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn no_includes(_: &Path) -> io::Result<String> {
    Err(io::Error::new(io::ErrorKind::NotFound, "no includes"))
}

fn parse(text: &str) -> Result<Dictionary, DictError> {
    Dictionary::parse(text, Path::new("dict/dictionary"), no_includes)
}

fn parse_err(text: &str) -> String {
    parse(text).expect_err("should fail").to_string()
}

const SAMPLE: &str = "\
# comment
ATTRIBUTE\tUser-Name\t1\tstring
ATTRIBUTE\tUser-Password\t2\tstring\tencrypt=1
ATTRIBUTE\tService-Type\t6\tinteger   # trailing comment
ATTRIBUTE\tVendor-Specific\t26\tvsa
ATTRIBUTE\tTunnel-Password\t69\tstring\thas_tag,encrypt=2
ATTRIBUTE\tEvent-Timestamp\t55\tdate
VALUE\tService-Type\tLogin-User\t1
VALUE\tService-Type\tFramed-User\t2
VALUE\tService-Type\tFramed-User\t2
VENDOR\tCisco\t9
VENDOR\tUSR\t429\tformat=4,0
BEGIN-VENDOR\tCisco
ATTRIBUTE\tCisco-AVPair\t1\tstring
ATTRIBUTE\tCisco-Thing\t0x10\tbyte
VALUE\tCisco-Thing\tSixteen\t16
END-VENDOR\tCisco
ATTRIBUTE\tUSR-Big\t0x9000\tinteger\tUSR
";

#[test]
fn basic_lookups() {
    let d = parse(SAMPLE).unwrap();
    let un = d.attribute("user-name").unwrap();
    assert_eq!((un.vendor, un.number), (0, 1));
    assert_eq!(un.data_type, DataType::String);
    assert_eq!(
        d.attribute_by_number(0, 1).unwrap().name.as_ref(),
        "User-Name"
    );
    assert_eq!(
        d.attribute("USER-PASSWORD").unwrap().flags.encrypt,
        Encrypt::UserPassword
    );
    let tp = d.attribute("Tunnel-Password").unwrap();
    assert!(tp.flags.has_tag);
    assert_eq!(tp.flags.encrypt, Encrypt::TunnelPassword);

    let st = d.attribute("Service-Type").unwrap();
    assert_eq!(d.value_number(st, "framed-user"), Some(2));
    assert_eq!(d.value_name(st, 1), Some("Login-User"));
    assert_eq!(d.values(st).count(), 2);

    let av = d.attribute_by_number(9, 1).unwrap();
    assert_eq!(av.name.as_ref(), "Cisco-AVPair");
    assert_eq!(d.vendor("cisco").unwrap().id, 9);
    assert_eq!(d.vendor_by_id(9).unwrap().name.as_ref(), "Cisco");
    let th = d.attribute("cisco-thing").unwrap();
    assert_eq!((th.vendor, th.number), (9, 16));
    assert_eq!(d.value_name(th, 16), Some("Sixteen"));

    // Old-style trailing vendor name.
    let usr = d.attribute("USR-Big").unwrap();
    assert_eq!((usr.vendor, usr.number), (429, 0x9000));
    let v = d.vendor("USR").unwrap();
    assert_eq!((v.type_size, v.length_size), (4, 0));

    assert!(d.attribute("Nope").is_none());
    assert!(d.attribute_by_number(0, 3).is_none());
    assert!(d.attribute_by_number(0, 100_000).is_none());
}

#[test]
fn long_names_lookup_without_buffer() {
    let name = format!("A{}", "b".repeat(200));
    let d = parse(&format!("ATTRIBUTE {name} 1 string")).map(|_| ());
    // 201 characters exceeds the name limit.
    assert!(d.is_err());
    let name = format!("A{}", "b".repeat(127));
    let d = parse(&format!("ATTRIBUTE {name} 1 string")).unwrap();
    assert!(d.attribute(&name.to_ascii_uppercase()).is_some());
    assert!(d.attribute(&"X".repeat(300)).is_none());
}

#[test]
fn error_names_file_line_and_problem() {
    let text = "VENDOR Cisco 9\n\nBEGIN-VENDOR Cisco\n\nATTRIBUTE Cisco-AVPair 1 strng\n";
    let e = Dictionary::parse(
        text,
        Path::new("dictionaries/dictionary.cisco"),
        no_includes,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "dictionaries/dictionary.cisco:5: unknown data type \"strng\" for attribute Cisco-AVPair"
    );
    assert!(matches!(e.kind(), Some(ParseErrorKind::UnknownType { .. })));
}

#[test]
fn errors() {
    let cases: &[(&str, &str)] = &[
        ("FOO bar", "dict/dictionary:1: unknown keyword \"FOO\""),
        ("ATTRIBUTE X 1", "wrong number of fields"),
        ("ATTRIBUTE X abc string", "invalid attribute number \"abc\""),
        (
            "ATTRIBUTE X 1 string encrypt=7",
            "invalid flag \"encrypt=7\"",
        ),
        ("ATTRIBUTE Attr-1 1 string", "invalid attribute name"),
        (
            "ATTRIBUTE X 1 string\nATTRIBUTE X 2 string",
            ":2: attribute X is already defined",
        ),
        ("BEGIN-VENDOR Nobody", "unknown vendor \"Nobody\""),
        (
            "VENDOR A 1\nBEGIN-VENDOR A",
            ":2: BEGIN-VENDOR A is not closed",
        ),
        ("END-VENDOR A", "END-VENDOR without a matching BEGIN"),
        (
            "VENDOR A 1\nVENDOR B 2\nBEGIN-VENDOR A\nEND-VENDOR B",
            ":4: END-VENDOR B does not match",
        ),
        (
            "VENDOR A 1\nVENDOR A 2",
            "vendor A is already defined with id 1",
        ),
        ("VENDOR A 1 format=3,1", "invalid vendor format \"3,1\""),
        ("VENDOR A 1 format=2,1,c", "invalid vendor format"),
        ("VENDOR A 0", "vendor id 0 is out of range"),
        (
            "VALUE Nothing Foo 1",
            "dict/dictionary:1: VALUE Foo refers to undefined attribute \"Nothing\"",
        ),
        (
            "ATTRIBUTE X 1 byte\nVALUE X Big 256",
            ":2: VALUE 256 is out of range (maximum 255)",
        ),
        (
            "ATTRIBUTE X 1 string\nVALUE X Foo 1",
            "VALUEs cannot be defined for attribute X of type string",
        ),
        (
            "ATTRIBUTE X 1 integer\nVALUE X A 1\nVALUE X a 2",
            ":3: VALUE a of X is already defined as 1",
        ),
        (
            "ATTRIBUTE X 1 integer\nVALUE X A -1",
            "invalid VALUE number \"-1\"",
        ),
        (
            "ATTRIBUTE X 1 string\nATTRIBUTE Y 1.2 string",
            "attribute X cannot have sub-attributes",
        ),
        (
            "ATTRIBUTE Y 5.2 string",
            "no attribute 5 under the standard space",
        ),
        (
            "ATTRIBUTE V 26 vsa\nATTRIBUTE Y 26.77.1 string",
            "unknown vendor id 77",
        ),
        (
            "ATTRIBUTE X 241 extended\nATTRIBUTE Y 241.256 string",
            "attribute number 256 is out of range",
        ),
        (
            "VENDOR A 1\nBEGIN-VENDOR A\nATTRIBUTE X 256 string\nEND-VENDOR A",
            ":3: attribute number 256",
        ),
        ("BEGIN-TLV Nope", "unknown attribute \"Nope\""),
        (
            "ATTRIBUTE X 1 string\nBEGIN-TLV X",
            "attribute X cannot have sub-attributes",
        ),
        ("ATTRIBUTE X 1 octets[0]", "unknown data type \"octets[0]\""),
        (
            "ATTRIBUTE X 1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17 string",
            "nesting deeper than 16",
        ),
        ("$INCLUDE", "wrong number of fields"),
        ("$INCLUDE x", "dict/dictionary:1: cannot include \"dict/x\""),
    ];
    for (text, want) in cases {
        let got = parse_err(text);
        assert!(
            got.contains(want),
            "input {text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn value_before_attribute_and_aliases() {
    let d = parse(
        "VALUE Later One 1\n\
         ATTRIBUTE Old-Name 4 integer\n\
         VALUE Old-Name Old-Value 7\n\
         ATTRIBUTE Later 3 integer\n\
         ATTRIBUTE New-Name 4 integer\n\
         VALUE New-Name New-Value 7\n\
         ATTRIBUTE Later 3 short\n",
    )
    .unwrap();
    let later = d.attribute("Later").unwrap();
    assert_eq!(
        later.data_type,
        DataType::Short,
        "redefinition refines the type"
    );
    assert_eq!(d.value_number(later, "one"), Some(1));
    // Number lookups give the newest name; both names still resolve.
    assert_eq!(
        d.attribute_by_number(0, 4).unwrap().name.as_ref(),
        "New-Name"
    );
    let old = d.attribute("Old-Name").unwrap();
    let new = d.attribute("New-Name").unwrap();
    assert_eq!(d.value_name(new, 7), Some("New-Value"));
    assert_eq!(d.value_number(new, "Old-Value"), Some(7));
    assert_eq!(d.value_number(old, "New-Value"), Some(7));
}

#[test]
fn signed_values_use_wire_representation() {
    let d = parse("ATTRIBUTE Offset 1 signed\nVALUE Offset Minus-One -1\n").unwrap();
    let a = d.attribute("Offset").unwrap();
    assert_eq!(d.value_name(a, 0xffff_ffff), Some("Minus-One"));
}

#[test]
fn tlv_extended_and_evs() {
    let d = parse(
        "ATTRIBUTE Vendor-Specific 26 vsa\n\
         ATTRIBUTE Ext-1 241 extended\n\
         ATTRIBUTE EVS-1 241.26 evs\n\
         ATTRIBUTE Ext-Thing 241.1 integer\n\
         ATTRIBUTE Ext-Tlv 241.2 tlv\n\
         ATTRIBUTE Ext-Tlv-Child 241.2.3 ipaddr\n\
         VENDOR WiMAX 24757 format=1,1,c\n\
         VENDOR FR 11344\n\
         ATTRIBUTE Via-26 26.24757.7 string\n\
         BEGIN-VENDOR WiMAX\n\
         ATTRIBUTE WiMAX-Cap 1 tlv\n\
         ATTRIBUTE WiMAX-Release 1.1 string\n\
         BEGIN-TLV WiMAX-Cap\n\
         ATTRIBUTE WiMAX-Other 2 byte\n\
         END-TLV WiMAX-Cap\n\
         END-VENDOR WiMAX\n\
         BEGIN-VENDOR FR format=EVS-1\n\
         ATTRIBUTE FR-EVS-Attr 5 octets\n\
         END-VENDOR FR\n\
         ATTRIBUTE FR-EVS-Dotted 241.26.11344.6 octets\n",
    )
    .unwrap();
    let ext = d.attribute_by_number(0, 241).unwrap();
    let thing = d.sub_attribute(ext, 1).unwrap();
    assert_eq!(thing.name.as_ref(), "Ext-Thing");
    assert_eq!(d.parent(thing).unwrap().name.as_ref(), "Ext-1");
    let tlv = d.sub_attribute(ext, 2).unwrap();
    assert_eq!(
        d.sub_attribute(tlv, 3).unwrap().name.as_ref(),
        "Ext-Tlv-Child"
    );

    assert_eq!(
        d.attribute_by_number(24757, 7).unwrap().name.as_ref(),
        "Via-26"
    );
    let cap = d.attribute_by_number(24757, 1).unwrap();
    assert_eq!(
        d.sub_attribute(cap, 1).unwrap().name.as_ref(),
        "WiMAX-Release"
    );
    let other = d.sub_attribute(cap, 2).unwrap();
    assert_eq!((other.vendor, other.number), (24757, 2));
    assert!(d.vendor("WiMAX").unwrap().continuation);

    let evs = d.sub_attribute(ext, 26).unwrap();
    assert_eq!(evs.data_type, DataType::Evs);
    assert_eq!(
        d.evs_attribute(evs, 11344, 5).unwrap().name.as_ref(),
        "FR-EVS-Attr"
    );
    assert_eq!(
        d.evs_attribute(evs, 11344, 6).unwrap().name.as_ref(),
        "FR-EVS-Dotted"
    );
    // EVS attributes are not plain VSAs.
    assert!(d.attribute_by_number(11344, 5).is_none());
}

#[test]
fn flags_and_types() {
    let d = parse(
        "ATTRIBUTE A 1 octets[16] concat,array,virtual,secret,internal,future_flag=3\n\
         ATTRIBUTE B 2 String\n\
         ATTRIBUTE C 3 uint16\n\
         ATTRIBUTE D 4 float32\n\
         FLAGS internal\n\
         ATTRIBUTE E 1000 integer\n",
    )
    .unwrap();
    let a = d.attribute("A").unwrap();
    assert_eq!(a.flags.length, Some(16));
    assert!(a.flags.concat && a.flags.array && a.flags.virtual_ && a.flags.secret);
    assert!(a.flags.internal);
    assert_eq!(d.attribute("B").unwrap().data_type, DataType::String);
    assert_eq!(d.attribute("C").unwrap().data_type, DataType::Short);
    assert_eq!(
        d.attribute("D").unwrap().data_type,
        DataType::Other("float32".into())
    );
    assert!(d.attribute("E").unwrap().flags.internal);
    assert!(!d.attribute("B").unwrap().flags.internal);
}

#[test]
fn v4_keywords_are_skipped() {
    let d = parse(
        "PROTOCOL RADIUS 1\n\
         PROTOCOL DHCPv4 2\n\
         BEGIN-PROTOCOL DHCPv4\n\
         ATTRIBUTE Whatever 1 nonsense-type\n\
         VALUE Nope Nope x\n\
         END-PROTOCOL DHCPv4\n\
         BEGIN-PROTOCOL RADIUS\n\
         ATTRIBUTE User-Name 1 string\n\
         ATTRIBUTE Thing 2 struct\n\
         MEMBER Field uint8\n\
         STRUCT Sub Field 1\n\
         ENUM Some-Enum uint32\n\
         VALUE Some-Enum Foo 1\n\
         DEFINE Internal-Thing string\n\
         ALIAS Login-Name User-Name\n\
         ALIAS Other Vendor-Specific.Cisco.AVPair\n\
         END-PROTOCOL RADIUS\n",
    )
    .unwrap();
    assert!(d.attribute("Whatever").is_none());
    assert_eq!(
        d.attribute("login-name").unwrap().name.as_ref(),
        "User-Name"
    );
    assert_eq!(d.attribute("Thing").unwrap().data_type, DataType::Struct);
}

#[test]
fn includes_resolve_relative_to_including_file() {
    let mut loader = mem_loader(&[
        (
            "top/sub/dictionary.a",
            "$INCLUDE ../dictionary.b\nATTRIBUTE A 1 string\n",
        ),
        (
            "top/sub/../dictionary.b",
            "ATTRIBUTE B 2 integer\nVALUE B One 1\n",
        ),
    ]);
    let d = Dictionary::parse(
        "$INCLUDE sub/dictionary.a\n$INCLUDE- missing.optional\nVALUE B Two 2\n",
        Path::new("top/dictionary"),
        &mut loader,
    )
    .unwrap();
    let b = d.attribute("B").unwrap();
    assert_eq!(d.value_number(b, "Two"), Some(2));
    assert!(d.attribute("A").is_some());

    let mut loader = mem_loader(&[("top/dictionary.bad", "\n\nATTRIBUTE Bad 1 strng\n")]);
    let e = Dictionary::parse(
        "$INCLUDE dictionary.bad",
        Path::new("top/dictionary"),
        &mut loader,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "top/dictionary.bad:3: unknown data type \"strng\" for attribute Bad"
    );
}

#[test]
fn vendor_blocks_do_not_leak_into_includes() {
    let mut loader = mem_loader(&[("d/inc", "ATTRIBUTE Plain 7 string\n")]);
    let d = Dictionary::parse(
        "VENDOR V 5\nBEGIN-VENDOR V\n$INCLUDE inc\nEND-VENDOR V\n",
        Path::new("d/top"),
        &mut loader,
    )
    .unwrap();
    assert_eq!(d.attribute("Plain").unwrap().vendor, 0);
}

#[test]
fn include_cycles_and_depth_are_stopped() {
    let mut loader = mem_loader(&[("d/a", "$INCLUDE b\n"), ("d/b", "$INCLUDE ./a\n")]);
    let e = Dictionary::parse("$INCLUDE a\n", Path::new("d/top"), &mut loader).unwrap_err();
    assert!(
        matches!(e.kind(), Some(ParseErrorKind::IncludeCycle { .. })),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "d/b:1: include cycle: \"d/./a\" is already being read"
    );

    // Self-include through a path that is not lexically identical.
    let mut calls = 0;
    let e = Dictionary::parse("$INCLUDE x/../top\n", Path::new("d/top"), |_| {
        calls += 1;
        Ok("$INCLUDE x/../top\n".to_string())
    })
    .unwrap_err();
    assert!(
        matches!(e.kind(), Some(ParseErrorKind::IncludeCycle { .. })),
        "{e}"
    );

    // A chain of distinct names is stopped by the depth limit.
    let e = Dictionary::parse("$INCLUDE n/f\n", Path::new("top"), |_| {
        Ok("$INCLUDE n/f\n".to_string())
    })
    .unwrap_err();
    assert!(
        matches!(e.kind(), Some(ParseErrorKind::IncludeTooDeep(_))),
        "{e}"
    );
}

#[test]
fn load_missing_file_names_it() {
    let e = Dictionary::load(Path::new("/nonexistent/dictionary")).unwrap_err();
    assert!(matches!(e, DictError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/dictionary: cannot read dictionary")
    );
}

/// Small deterministic PRNG so the fuzz test is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn fuzz_parse_never_panics() {
    let mut seeds: Vec<Vec<u8>> = vec![SAMPLE.as_bytes().to_vec()];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries");
    for name in [
        "dictionary.rfc2865",
        "dictionary.microsoft",
        "dictionary.rfc6929",
    ] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            seeds.push(b);
        }
    }
    let tokens: &[&[u8]] = &[
        b"ATTRIBUTE ",
        b"VALUE ",
        b"VENDOR ",
        b"BEGIN-VENDOR ",
        b"END-VENDOR ",
        b"BEGIN-TLV ",
        b"END-TLV ",
        b"$INCLUDE ",
        b"$INCLUDE- ",
        b"BEGIN-PROTOCOL ",
        b"END-PROTOCOL ",
        b"FLAGS ",
        b"ALIAS ",
        b"26.",
        b"241.",
        b".",
        b"0x",
        b"-",
        b" tlv",
        b" evs",
        b" vsa",
        b" extended",
        b"format=",
        b"1,1,c",
        b"encrypt=",
        b"has_tag",
        b"#",
        b"\n",
        b"\t",
        b" ",
        b"\xff",
        b"\xc3\xa9",
        b"99999999999999999999",
        b"4294967295",
        b"Attr-",
        b"octets[",
        b"]",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..4000 {
        let mut data = if i % 10 == 0 {
            // Pure noise, biased towards printable bytes and newlines.
            (0..rng.below(400))
                .map(|_| match rng.below(8) {
                    0 => b'\n',
                    1 => b' ',
                    _ => (rng.next() & 0xff) as u8,
                })
                .collect()
        } else {
            seeds[rng.below(seeds.len())].clone()
        };
        // Single edits keep most of the file valid, so later lines and the
        // lookups on the result get exercised too.
        let edits = if rng.below(2) == 0 {
            1
        } else {
            1 + rng.below(8)
        };
        for _ in 0..edits {
            let pos = rng.below(data.len() + 1);
            match rng.below(5) {
                0 if !data.is_empty() => {
                    let end = (pos + rng.below(64)).min(data.len());
                    data.drain(pos.min(end)..end);
                }
                1 if pos < data.len() => data[pos] = (rng.next() & 0xff) as u8,
                2 => {
                    let t = tokens[rng.below(tokens.len())];
                    data.splice(pos..pos, t.iter().copied());
                }
                3 if !data.is_empty() => {
                    // Duplicate a slice, which reorders definitions.
                    let start = rng.below(data.len());
                    let end = (start + rng.below(200)).min(data.len());
                    let chunk = data[start..end].to_vec();
                    data.splice(pos..pos, chunk);
                }
                _ => {
                    let digit = b'0' + rng.below(10) as u8;
                    data.insert(pos, digit);
                }
            }
        }
        fuzz_parse(&data);
    }
}

fn check_common_lookups(d: &Dictionary) {
    let up = d.attribute("User-Password").expect("User-Password");
    assert_eq!((up.vendor, up.number), (0, 2));
    assert_eq!(up.flags.encrypt, Encrypt::UserPassword);

    let av = d
        .attribute_by_number(9, 1)
        .expect("Cisco vendor 9 attribute 1");
    assert_eq!(av.name.as_ref(), "Cisco-AVPair");
    assert_eq!(av.data_type, DataType::String);
    assert_eq!(d.vendor("Cisco").map(|v| v.id), Some(9));

    let send = d.attribute("MS-MPPE-Send-Key").expect("MS-MPPE-Send-Key");
    assert_eq!((send.vendor, send.number), (311, 16));
    assert_eq!(send.flags.encrypt, Encrypt::TunnelPassword);
    let ms2 = d.attribute_by_number(311, 25).expect("MS-CHAP2-Response");
    assert_eq!(ms2.name.as_ref(), "MS-CHAP2-Response");

    let tp = d.attribute("Tunnel-Password").expect("Tunnel-Password");
    assert!(tp.flags.has_tag);
    assert_eq!(tp.flags.encrypt, Encrypt::TunnelPassword);

    assert_eq!(
        d.attribute_by_number(0, 80).unwrap().name.as_ref(),
        "Message-Authenticator"
    );
    assert_eq!(
        d.attribute_by_number(0, 79).unwrap().name.as_ref(),
        "EAP-Message"
    );

    let st = d.attribute("Service-Type").unwrap();
    assert_eq!(d.value_number(st, "Framed-User"), Some(2));
    let ast = d.attribute("Acct-Status-Type").unwrap();
    assert_eq!(d.value_name(ast, 3), Some("Interim-Update"));
    let tt = d.attribute("Tunnel-Type").unwrap();
    assert_eq!(d.value_number(tt, "VLAN"), Some(13));
    let ec = d.attribute("Error-Cause").unwrap();
    assert_eq!(d.value_number(ec, "Session-Context-Not-Found"), Some(503));

    let jun = d.attribute("Juniper-Local-User-Name").unwrap();
    assert_eq!((jun.vendor, jun.number), (2636, 1));
    let aruba = d.attribute_by_number(14823, 1).unwrap();
    assert_eq!(aruba.name.as_ref(), "Aruba-User-Role");
}

#[test]
fn loads_our_dictionaries() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dictionaries/dictionary");
    let d = Dictionary::load(&path).unwrap_or_else(|e| panic!("{e}"));
    check_common_lookups(&d);

    let v6 = d.attribute("Framed-IPv6-Address").unwrap();
    assert_eq!((v6.number, &v6.data_type), (168, &DataType::Ipv6Addr));
    assert!(d.attribute("EAP-Message").unwrap().flags.concat);
    assert_eq!(d.attribute("MS-CHAP2-Success").unwrap().number, 26);
    assert_eq!(
        d.attribute("MS-CHAP-Response").unwrap().flags.length,
        Some(50)
    );
    assert_eq!(
        d.attribute("Aruba-User-Vlan").unwrap().data_type,
        DataType::Integer
    );
    assert_eq!(d.attribute("Juniper-Deny-Configuration").unwrap().number, 5);
    let nas = d.attribute("NAS-Port-Type").unwrap();
    assert_eq!(d.value_number(nas, "Ethernet"), Some(15));
    assert_eq!(d.value_name(nas, 19), Some("Wireless-802.11"));
    let atc = d.attribute("Acct-Terminate-Cause").unwrap();
    assert_eq!(d.value_number(atc, "Idle-Timeout"), Some(4));
    let ext = d.attribute_by_number(0, 245).unwrap();
    assert_eq!(ext.data_type, DataType::LongExtended);
    assert_eq!(d.sub_attribute(ext, 26).unwrap().data_type, DataType::Evs);
    // Status-Server is a packet code, never an attribute.
    assert!(d.attribute("Status-Server").is_none());
}

#[test]
fn loads_debian_freeradius_dictionaries() {
    let path = Path::new("/usr/share/freeradius/dictionary");
    assert!(
        path.exists(),
        "{} is missing: install the Debian package freeradius-common \
         (apt-get install freeradius-common) to run this test",
        path.display()
    );
    let d = Dictionary::load(path).unwrap_or_else(|e| panic!("{e}"));
    check_common_lookups(&d);
    assert!(
        d.vendors().len() > 150,
        "only {} vendors",
        d.vendors().len()
    );
    assert!(d.attributes().len() > 5000);

    // Compat names come first, so number lookups give the RFC name.
    assert_eq!(
        d.attribute_by_number(0, 4).unwrap().name.as_ref(),
        "NAS-IP-Address"
    );
    assert_eq!(d.attribute("Client-Id").unwrap().number, 4);

    let wimax = d.vendor("WiMAX").unwrap();
    assert_eq!(
        (wimax.type_size, wimax.length_size, wimax.continuation),
        (1, 1, true)
    );
    let cap = d.attribute("WiMAX-Capability").unwrap();
    let rel = d.sub_attribute(cap, 1).unwrap();
    assert_eq!(rel.name.as_ref(), "WiMAX-Release");

    let evs = d.attribute("Extended-Vendor-Specific-5").unwrap();
    let anonce = d.evs_attribute(evs, 11344, 1).unwrap();
    assert_eq!(anonce.name.as_ref(), "FreeRADIUS-802.1X-Anonce");

    let usr = d.vendor("USR").unwrap();
    assert_eq!((usr.type_size, usr.length_size), (4, 0));
    assert!(d.attribute("EAP-IKEv2-Secret").unwrap().flags.secret);
}
