//! Zero-copy decoding of RADIUS packets (RFC 2865 §3 header, §5 attribute
//! framing, §5.26 Vendor-Specific; RFC 3579 §3.2 Message-Authenticator).
//! Framing is validated once in `decode`, so the iterators never see garbage.

use core::fmt;

use super::attr;
use super::error::DecodeError;

/// Fixed header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Largest packet RFC 2865 §3 allows.
pub const MAX_PACKET_LEN: usize = 4096;
/// Largest value of a single attribute (length octet covers type and length).
pub const MAX_ATTR_VALUE_LEN: usize = 253;
/// Offset of the Message-Authenticator value when it is the first attribute.
pub(super) const FIRST_ATTR_VALUE_OFFSET: usize = HEADER_LEN + 2;

/// RADIUS packet code. A newtype rather than an enum so that unknown codes
/// survive decoding and the policy layer decides what to do with them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u8);

impl Code {
    pub const ACCESS_REQUEST: Self = Self(1);
    pub const ACCESS_ACCEPT: Self = Self(2);
    pub const ACCESS_REJECT: Self = Self(3);
    pub const ACCOUNTING_REQUEST: Self = Self(4);
    pub const ACCOUNTING_RESPONSE: Self = Self(5);
    pub const ACCESS_CHALLENGE: Self = Self(11);
    pub const STATUS_SERVER: Self = Self(12);
    pub const STATUS_CLIENT: Self = Self(13);
    pub const DISCONNECT_REQUEST: Self = Self(40);
    pub const DISCONNECT_ACK: Self = Self(41);
    pub const DISCONNECT_NAK: Self = Self(42);
    pub const COA_REQUEST: Self = Self(43);
    pub const COA_ACK: Self = Self(44);
    pub const COA_NAK: Self = Self(45);

    /// RFC name, or "Unknown".
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "Access-Request",
            2 => "Access-Accept",
            3 => "Access-Reject",
            4 => "Accounting-Request",
            5 => "Accounting-Response",
            11 => "Access-Challenge",
            12 => "Status-Server",
            13 => "Status-Client",
            40 => "Disconnect-Request",
            41 => "Disconnect-ACK",
            42 => "Disconnect-NAK",
            43 => "CoA-Request",
            44 => "CoA-ACK",
            45 => "CoA-NAK",
            _ => "Unknown",
        }
    }

    /// Requests whose Request Authenticator is an MD5 over the packet
    /// (RFC 2866 §3, RFC 5176 §2.3) rather than a random nonce. Their
    /// Message-Authenticator is also computed over a zeroed authenticator.
    pub fn has_computed_request_authenticator(self) -> bool {
        matches!(self.0, 4 | 40 | 43)
    }

    /// Codes a client sends and a server answers.
    pub fn is_request(self) -> bool {
        matches!(self.0, 1 | 4 | 12 | 13 | 40 | 43)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({} {})", self.0, self.name())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A framed RADIUS packet borrowed from the receive buffer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Exactly `Length` bytes; trailing datagram padding is cut off.
    bytes: &'a [u8],
    /// Offset of the Message-Authenticator *value* within `bytes`.
    ma_offset: Option<u16>,
}

/// Parses the header and validates every attribute's framing.
///
/// Never panics and never allocates. Bytes beyond the Length field are
/// ignored (RFC 2865 §3); a datagram shorter than Length is rejected.
pub fn decode(buf: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Err(DecodeError::TooShort(buf.len()));
    };
    let length = u16::from_be_bytes([header[2], header[3]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&len) {
        return Err(DecodeError::BadLength(length));
    }
    let Some(bytes) = buf.get(..len) else {
        return Err(DecodeError::Truncated {
            length,
            received: buf.len(),
        });
    };
    let ma = walk_attributes(bytes, HEADER_LEN)?;
    Ok(Packet {
        bytes,
        // len <= 4096, so every offset fits u16.
        ma_offset: ma.map(|o| o as u16),
    })
}

/// Validates attribute framing in `buf[start..]` and returns the offset of the
/// Message-Authenticator value, if present. Offsets in errors are relative to
/// `buf`, which for a packet means relative to the start of the header.
pub(super) fn walk_attributes(buf: &[u8], start: usize) -> Result<Option<usize>, DecodeError> {
    let mut pos = start;
    let mut ma = None;
    while pos < buf.len() {
        let offset = pos as u16;
        let (typ, alen) = match buf.get(pos..pos + 2) {
            Some(&[t, l]) => (t, usize::from(l)),
            _ => return Err(DecodeError::AttrTooShort { offset }),
        };
        if alen < 2 {
            return Err(DecodeError::AttrTooShort { offset });
        }
        if alen > buf.len() - pos {
            return Err(DecodeError::AttrOverrun { offset });
        }
        if typ == attr::MESSAGE_AUTHENTICATOR {
            if alen != 18 {
                return Err(DecodeError::BadMessageAuthenticatorLength { offset });
            }
            if ma.is_some() {
                return Err(DecodeError::DuplicateMessageAuthenticator);
            }
            ma = Some(pos + 2);
        }
        pos += alen;
    }
    Ok(ma)
}

impl<'a> Packet<'a> {
    pub fn code(&self) -> Code {
        Code(self.bytes[0])
    }

    pub fn identifier(&self) -> u8 {
        self.bytes[1]
    }

    /// Value of the Length field (also `as_bytes().len()`).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the packet carries no attributes.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == HEADER_LEN
    }

    pub fn authenticator(&self) -> &'a [u8; 16] {
        // Length was checked >= 20 in `decode`.
        self.bytes[4..HEADER_LEN].try_into().unwrap_or(&[0; 16])
    }

    /// The packet as framed by its Length field.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The encoded attribute area after the header.
    pub fn attribute_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// All attributes in wire order as `(type, value)`.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            rest: self.attribute_bytes(),
        }
    }

    /// Value of the first attribute of this type.
    pub fn attr(&self, typ: u8) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.0 == typ).map(|a| a.1)
    }

    /// Values of every attribute of this type, in order (e.g. Proxy-State, Class).
    pub fn attrs(&self, typ: u8) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attributes().filter(move |a| a.0 == typ).map(|a| a.1)
    }

    /// Standard-format Vendor-Specific sub-attributes (RFC 2865 §5.26).
    pub fn vsas(&self) -> Vsas<'a> {
        Vsas {
            attrs: self.attributes(),
            vendor: 0,
            sub: &[],
        }
    }

    /// First standard-format VSA value with this vendor and vendor type.
    pub fn vsa(&self, vendor: u32, vendor_type: u8) -> Option<&'a [u8]> {
        self.vsas()
            .find(|v| v.vendor == vendor && v.vendor_type == vendor_type)
            .map(|v| v.value)
    }

    /// Raw Vendor-Specific payloads as `(vendor id, bytes after the id)`, for
    /// vendors whose sub-attribute format is not the 1-byte type/length one.
    pub fn vendor_specific(&self) -> impl Iterator<Item = (u32, &'a [u8])> + 'a {
        self.attrs(attr::VENDOR_SPECIFIC).filter_map(split_vendor)
    }

    /// Offset of the Message-Authenticator value within `as_bytes()`.
    pub fn message_authenticator_offset(&self) -> Option<usize> {
        self.ma_offset.map(usize::from)
    }

    /// The received Message-Authenticator value.
    pub fn message_authenticator(&self) -> Option<&'a [u8; 16]> {
        let o = self.message_authenticator_offset()?;
        self.bytes.get(o..o + 16)?.try_into().ok()
    }

    /// Whether Message-Authenticator is the first attribute, as the BlastRADIUS
    /// mitigations recommend senders do.
    pub fn message_authenticator_is_first(&self) -> bool {
        self.message_authenticator_offset() == Some(FIRST_ATTR_VALUE_OFFSET)
    }
}

impl fmt::Debug for Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("code", &self.code())
            .field("identifier", &self.identifier())
            .field("length", &self.len())
            .field("attributes", &self.attributes().count())
            .finish()
    }
}

fn split_vendor(v: &[u8]) -> Option<(u32, &[u8])> {
    let (id, rest) = v.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*id), rest))
}

/// Iterator over `(type, value)` of validated attribute bytes.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Attributes<'a> {
    /// Iterates pre-encoded attribute bytes. Stops at the first framing error,
    /// so feed it only bytes that `decode` (or the writer) has validated.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (typ, value, rest) = split_tlv(self.rest)?;
        self.rest = rest;
        Some((typ, value))
    }
}

/// Splits one type/length/value off `buf`; None on empty or bad framing.
fn split_tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let &[typ, len, ..] = buf else { return None };
    let len = usize::from(len);
    if len < 2 || len > buf.len() {
        return None;
    }
    let (tlv, rest) = buf.split_at(len);
    Some((typ, &tlv[2..], rest))
}

/// One standard-format vendor sub-attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vsa<'a> {
    pub vendor: u32,
    pub vendor_type: u8,
    pub value: &'a [u8],
}

/// Iterator over VSA sub-attributes across all Vendor-Specific attributes.
/// A Vendor-Specific attribute whose payload does not parse completely as
/// 1-byte type/1-byte length sub-attributes is skipped as a whole, so that a
/// vendor using another format never yields half-parsed garbage.
#[derive(Clone, Debug)]
pub struct Vsas<'a> {
    attrs: Attributes<'a>,
    vendor: u32,
    sub: &'a [u8],
}

impl<'a> Iterator for Vsas<'a> {
    type Item = Vsa<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((vendor_type, value, rest)) = split_tlv(self.sub) {
                self.sub = rest;
                return Some(Vsa {
                    vendor: self.vendor,
                    vendor_type,
                    value,
                });
            }
            let (typ, value) = self.attrs.next()?;
            if typ != attr::VENDOR_SPECIFIC {
                continue;
            }
            let Some((vendor, subs)) = split_vendor(value) else {
                continue;
            };
            if subs.is_empty() || !well_framed(subs) {
                continue;
            }
            self.vendor = vendor;
            self.sub = subs;
        }
    }
}

fn well_framed(mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        match split_tlv(buf) {
            Some((_, _, rest)) => buf = rest,
            None => return false,
        }
    }
    true
}
