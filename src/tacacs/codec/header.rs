//! The 12-byte packet header (RFC 8907 §4.1) and whole-packet framing for a
//! TCP byte stream.

use super::error::DecodeError;

pub const HEADER_LEN: usize = 12;
/// The body is sent in the clear (only when the client is configured so).
pub const FLAG_UNENCRYPTED: u8 = 0x01;
/// Several sessions may share this connection (§4.3).
pub const FLAG_SINGLE_CONNECT: u8 = 0x04;

const MAJOR: u8 = 0xC;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    Authentication,
    Authorization,
    Accounting,
}

impl PacketType {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Authentication),
            2 => Some(Self::Authorization),
            3 => Some(Self::Accounting),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Self::Authentication => 1,
            Self::Authorization => 2,
            Self::Accounting => 3,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Accounting => "accounting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The whole version byte (0xC0 default, 0xC1 minor version one).
    pub version: u8,
    pub packet_type: PacketType,
    pub seq_no: u8,
    pub flags: u8,
    pub session_id: u32,
    pub length: u32,
}

impl Header {
    /// Parses a header from the first 12 bytes, refusing bodies longer than
    /// `max_body` before anyone buffers them.
    pub fn parse(buf: &[u8], max_body: u32) -> Result<Self, DecodeError> {
        let h: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(DecodeError::ShortHeader)?;
        if h[0] >> 4 != MAJOR || h[0] & 0x0f > 1 {
            return Err(DecodeError::BadVersion);
        }
        let packet_type = PacketType::from_u8(h[1]).ok_or(DecodeError::BadType(h[1]))?;
        let length = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        if length > max_body {
            return Err(DecodeError::TooLong(length));
        }
        Ok(Self {
            version: h[0],
            packet_type,
            seq_no: h[2],
            flags: h[3],
            session_id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            length,
        })
    }

    /// For a stream: `Ok(None)` while the packet is incomplete, else the
    /// header and the total packet size (header + body).
    pub fn check(buf: &[u8], max_body: u32) -> Result<Option<(Self, usize)>, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = Self::parse(buf, max_body)?;
        let total = HEADER_LEN + h.length as usize;
        Ok((buf.len() >= total).then_some((h, total)))
    }

    pub fn write(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = self.version;
        out[1] = self.packet_type.as_u8();
        out[2] = self.seq_no;
        out[3] = self.flags;
        out[4..8].copy_from_slice(&self.session_id.to_be_bytes());
        out[8..12].copy_from_slice(&self.length.to_be_bytes());
    }

    pub fn unencrypted(&self) -> bool {
        self.flags & FLAG_UNENCRYPTED != 0
    }

    pub fn single_connect(&self) -> bool {
        self.flags & FLAG_SINGLE_CONNECT != 0
    }

    /// The header of the server's reply: same session, next sequence number
    /// (§4.1: clients send odd, servers even; 255 cannot be answered).
    pub fn reply(&self, flags: u8) -> Result<Self, DecodeError> {
        if self.seq_no.is_multiple_of(2) || self.seq_no == u8::MAX {
            return Err(DecodeError::BadSequence);
        }
        Ok(Self {
            version: self.version,
            packet_type: self.packet_type,
            seq_no: self.seq_no + 1,
            flags,
            session_id: self.session_id,
            length: 0,
        })
    }
}
