//! Plain data describing dictionary entries.

use std::fmt;

/// Index of an attribute inside its [`Dictionary`](super::Dictionary).
///
/// Stable for the lifetime of the dictionary; cheap to copy and store in
/// decoded packets instead of a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(super) u32);

impl AttrId {
    /// Position in [`Dictionary::attributes`](super::Dictionary::attributes).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Wire data type of an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataType {
    String,
    Octets,
    /// IPv4 address (`ipaddr`, `ipv4addr`).
    IpAddr,
    Ipv6Addr,
    Ipv6Prefix,
    Ipv4Prefix,
    /// 32-bit unsigned (`integer`, `uint32`).
    Integer,
    /// 8-bit unsigned (`byte`, `uint8`).
    Byte,
    /// 16-bit unsigned (`short`, `uint16`).
    Short,
    /// 32-bit signed (`signed`, `int32`).
    Signed,
    /// 64-bit unsigned (`integer64`, `uint64`).
    Integer64,
    Date,
    /// MAC address (`ether`, `ethernet`).
    Ether,
    /// IPv6 interface id.
    Ifid,
    /// IPv4 or IPv6 address, chosen by length.
    ComboIp,
    /// Ascend binary filter.
    Abinary,
    Tlv,
    /// Vendor-Specific (26): children are keyed by vendor id.
    Vsa,
    /// Extended-Vendor-Specific (RFC 6929): children keyed by vendor id.
    Evs,
    /// RFC 6929 extended attribute space (241-244).
    Extended,
    /// RFC 6929 long extended attribute space (245-246).
    LongExtended,
    Struct,
    /// A type name that FreeRADIUS knows but we do not decode specially
    /// (e.g. `bool`, `float32`, `timeval`); kept verbatim, lowercased.
    Other(Box<str>),
}

impl DataType {
    /// Parse a dictionary type name; `None` if it is not a known type name.
    ///
    /// Case-insensitive because shipped dictionaries contain e.g. `String`.
    pub fn from_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let t = match lower.as_str() {
            "string" => Self::String,
            "octets" => Self::Octets,
            "ipaddr" | "ipv4addr" => Self::IpAddr,
            "ipv6addr" => Self::Ipv6Addr,
            "ipv6prefix" => Self::Ipv6Prefix,
            "ipv4prefix" | "cidr" => Self::Ipv4Prefix,
            "integer" | "uint32" => Self::Integer,
            "byte" | "uint8" => Self::Byte,
            "short" | "uint16" => Self::Short,
            "signed" | "int32" => Self::Signed,
            "integer64" | "uint64" => Self::Integer64,
            "date" => Self::Date,
            "ether" | "ethernet" => Self::Ether,
            "ifid" => Self::Ifid,
            "combo-ip" | "combo-ipaddr" => Self::ComboIp,
            "abinary" => Self::Abinary,
            "tlv" => Self::Tlv,
            "vsa" => Self::Vsa,
            "evs" => Self::Evs,
            "extended" => Self::Extended,
            "long-extended" => Self::LongExtended,
            "struct" => Self::Struct,
            // Legitimate in some FreeRADIUS version, but nothing we encode
            // differently from opaque bytes today.
            "bool" | "boolean" | "int8" | "int16" | "int64" | "float32" | "float64" | "timeval"
            | "time_delta" | "size" | "group" | "union" | "vendor" | "combo-ipprefix"
            | "combo-ip-prefix" | "decimal" | "attribute" => Self::Other(lower.into()),
            _ => return None,
        };
        Some(t)
    }

    /// Whether `VALUE` names may be attached to this type.
    pub(super) fn takes_values(&self) -> bool {
        // Octets is allowed because some vendor dictionaries name fixed
        // octet strings; FreeRADIUS accepts it for the same reason.
        matches!(
            self,
            Self::Integer
                | Self::Byte
                | Self::Short
                | Self::Signed
                | Self::Integer64
                | Self::Date
                | Self::Octets
                | Self::Other(_)
        )
    }

    /// Largest `VALUE` number representable on the wire for this type.
    pub(super) fn max_value(&self) -> u64 {
        match self {
            Self::Byte => u8::MAX.into(),
            Self::Short => u16::MAX.into(),
            Self::Integer | Self::Signed | Self::Date => u32::MAX.into(),
            _ => u64::MAX,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::String => "string",
            Self::Octets => "octets",
            Self::IpAddr => "ipaddr",
            Self::Ipv6Addr => "ipv6addr",
            Self::Ipv6Prefix => "ipv6prefix",
            Self::Ipv4Prefix => "ipv4prefix",
            Self::Integer => "integer",
            Self::Byte => "byte",
            Self::Short => "short",
            Self::Signed => "signed",
            Self::Integer64 => "integer64",
            Self::Date => "date",
            Self::Ether => "ether",
            Self::Ifid => "ifid",
            Self::ComboIp => "combo-ip",
            Self::Abinary => "abinary",
            Self::Tlv => "tlv",
            Self::Vsa => "vsa",
            Self::Evs => "evs",
            Self::Extended => "extended",
            Self::LongExtended => "long-extended",
            Self::Struct => "struct",
            Self::Other(s) => s,
        };
        f.write_str(s)
    }
}

/// How an attribute's value is obfuscated on the wire (`encrypt=N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encrypt {
    #[default]
    None,
    /// `encrypt=1`: RFC 2865 section 5.2 (User-Password).
    UserPassword,
    /// `encrypt=2`: RFC 2868 section 3.5 salted (Tunnel-Password, MS-MPPE keys).
    TunnelPassword,
    /// `encrypt=3`: Ascend's proprietary scheme.
    AscendSecret,
}

/// Options from the fourth column of an `ATTRIBUTE` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrFlags {
    pub encrypt: Encrypt,
    /// RFC 2868 tag octet precedes the value.
    pub has_tag: bool,
    /// Several values packed into one attribute.
    pub array: bool,
    /// Long values are split over consecutive attributes and joined on receipt.
    pub concat: bool,
    /// Computed by the server, never on the wire.
    pub virtual_: bool,
    /// Server-internal (from `FLAGS internal` or the `internal` flag).
    pub internal: bool,
    /// Value must not be logged.
    pub secret: bool,
    /// Fixed length from `octets[N]`.
    pub length: Option<u32>,
}

/// An attribute definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub id: AttrId,
    pub name: Box<str>,
    /// 0 for standard attributes; for TLV children the vendor of the parent.
    pub vendor: u32,
    /// Number within its parent (or within the vendor / standard space).
    pub number: u32,
    /// TLV, extended or EVS container this attribute lives in.
    pub parent: Option<AttrId>,
    pub data_type: DataType,
    pub flags: AttrFlags,
}

/// A `VENDOR` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    pub name: Box<str>,
    pub id: u32,
    /// Octets of the vendor attribute type field (1, 2 or 4).
    pub type_size: u8,
    /// Octets of the vendor attribute length field (0, 1 or 2).
    pub length_size: u8,
    /// WiMAX-style continuation octet after the length.
    pub continuation: bool,
}
