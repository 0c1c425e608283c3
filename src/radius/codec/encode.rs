//! Heap-free packet writers into caller-provided buffers: replies signed with
//! Message-Authenticator (RFC 3579 §3.2, placed first per the BlastRADIUS
//! mitigations) and then the Response Authenticator (RFC 2865 §3), and
//! requests for clients and load generators (RFC 2865 §5.2, RFC 2866 §3).

use super::attr;
use super::crypto::{self, MAX_PASSWORD_LEN, Secret};
use super::error::EncodeError;
use super::reader::{
    Code, FIRST_ATTR_VALUE_OFFSET, HEADER_LEN, MAX_ATTR_VALUE_LEN, MAX_PACKET_LEN, Packet,
    walk_attributes,
};

/// Largest value of a standard-format VSA sub-attribute: 255 minus the
/// attribute header (2), Vendor-Id (4) and sub-attribute header (2).
pub const MAX_VSA_VALUE_LEN: usize = 247;

/// Attribute area bookkeeping shared by both writers. Invariant: `buf[..len]`
/// is always a header followed by well-framed attributes.
struct Frame<'b> {
    buf: &'b mut [u8],
    cap: usize,
    len: usize,
    /// Offset of the Message-Authenticator value, reserved or added by hand.
    ma: Option<usize>,
}

impl<'b> Frame<'b> {
    fn new(
        buf: &'b mut [u8],
        code: Code,
        identifier: u8,
        authenticator: &[u8; 16],
        with_ma: bool,
    ) -> Result<Self, EncodeError> {
        let cap = buf.len().min(MAX_PACKET_LEN);
        let need = HEADER_LEN + if with_ma { 18 } else { 0 };
        if cap < need {
            return Err(EncodeError::BufferFull);
        }
        buf[0] = code.0;
        buf[1] = identifier;
        buf[4..HEADER_LEN].copy_from_slice(authenticator);
        let mut f = Frame {
            buf,
            cap,
            len: HEADER_LEN,
            ma: None,
        };
        if with_ma {
            // Reserving the slot up front keeps MA first without shifting
            // attributes later; its value stays zero until signing.
            f.buf[HEADER_LEN] = attr::MESSAGE_AUTHENTICATOR;
            f.buf[HEADER_LEN + 1] = 18;
            f.buf[FIRST_ATTR_VALUE_OFFSET..FIRST_ATTR_VALUE_OFFSET + 16].fill(0);
            f.len = need;
            f.ma = Some(FIRST_ATTR_VALUE_OFFSET);
        }
        Ok(f)
    }

    fn reserve(&mut self, n: usize) -> Result<usize, EncodeError> {
        if n > self.cap - self.len {
            return Err(EncodeError::BufferFull);
        }
        let at = self.len;
        self.len += n;
        Ok(at)
    }

    fn put(&mut self, typ: u8, value: &[u8]) -> Result<(), EncodeError> {
        if value.len() > MAX_ATTR_VALUE_LEN {
            return Err(EncodeError::ValueTooLong(value.len()));
        }
        if typ == attr::MESSAGE_AUTHENTICATOR && (self.ma.is_some() || value.len() != 16) {
            return Err(EncodeError::MessageAuthenticator);
        }
        let at = self.reserve(2 + value.len())?;
        self.buf[at] = typ;
        self.buf[at + 1] = (2 + value.len()) as u8;
        self.buf[at + 2..self.len].copy_from_slice(value);
        if typ == attr::MESSAGE_AUTHENTICATOR {
            self.ma = Some(at + 2);
        }
        Ok(())
    }

    fn put_vsa(&mut self, vendor: u32, vendor_type: u8, value: &[u8]) -> Result<(), EncodeError> {
        if value.len() > MAX_VSA_VALUE_LEN {
            return Err(EncodeError::ValueTooLong(value.len()));
        }
        let at = self.reserve(8 + value.len())?;
        let b = &mut self.buf[at..self.len];
        b[0] = attr::VENDOR_SPECIFIC;
        b[1] = (8 + value.len()) as u8;
        b[2..6].copy_from_slice(&vendor.to_be_bytes());
        b[6] = vendor_type;
        b[7] = (2 + value.len()) as u8;
        b[8..].copy_from_slice(value);
        Ok(())
    }

    fn put_raw(&mut self, encoded: &[u8]) -> Result<(), EncodeError> {
        let raw_ma = walk_attributes(encoded, 0).map_err(|_| EncodeError::BadRawAttributes)?;
        if raw_ma.is_some() && self.ma.is_some() {
            return Err(EncodeError::MessageAuthenticator);
        }
        let at = self.reserve(encoded.len())?;
        self.buf[at..self.len].copy_from_slice(encoded);
        if let Some(o) = raw_ma {
            self.ma = Some(at + o);
        }
        Ok(())
    }

    fn set_length(&mut self) {
        // len <= cap <= 4096, so it fits the 16-bit field.
        self.buf[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
    }

    /// Writes `auth` into the header and, if there is a Message-Authenticator,
    /// signs it over the packet as it now stands.
    fn sign_ma(&mut self, auth: &[u8; 16], secret: &Secret) {
        self.buf[4..HEADER_LEN].copy_from_slice(auth);
        if let Some(o) = self.ma {
            let mac = crypto::message_authenticator(&self.buf[..self.len], o, auth, secret.hmac());
            self.buf[o..o + 16].copy_from_slice(&mac);
        }
    }
}

macro_rules! attribute_methods {
    () => {
        /// Appends an attribute; `value` at most 253 bytes. A hand-added
        /// Message-Authenticator (16 zero bytes) is signed by `finish`.
        pub fn put(&mut self, typ: u8, value: &[u8]) -> Result<(), EncodeError> {
            self.f.put(typ, value)
        }

        /// Appends a 4-byte integer attribute.
        pub fn put_u32(&mut self, typ: u8, value: u32) -> Result<(), EncodeError> {
            self.f.put(typ, &value.to_be_bytes())
        }

        /// Appends a standard-format Vendor-Specific attribute holding one
        /// sub-attribute; `value` at most 247 bytes.
        pub fn put_vsa(
            &mut self,
            vendor: u32,
            vendor_type: u8,
            value: &[u8],
        ) -> Result<(), EncodeError> {
            self.f.put_vsa(vendor, vendor_type, value)
        }

        /// Splices pre-encoded attributes (type, length, value...), e.g. reply
        /// attributes rendered once at config load. Framing is re-checked so
        /// the writer can never emit a malformed packet.
        pub fn put_raw(&mut self, encoded: &[u8]) -> Result<(), EncodeError> {
            self.f.put_raw(encoded)
        }

        /// Bytes written so far, header included.
        pub fn written(&self) -> usize {
            self.f.len
        }

        /// Bytes still available before the buffer or 4096-byte limit.
        pub fn remaining(&self) -> usize {
            self.f.cap - self.f.len
        }
    };
}

/// Builds a reply (Access-Accept/Reject/Challenge, Accounting-Response,
/// CoA/Disconnect ACK/NAK) in place.
pub struct ReplyWriter<'b> {
    f: Frame<'b>,
}

impl<'b> ReplyWriter<'b> {
    /// Starts a reply without Message-Authenticator.
    pub fn new(buf: &'b mut [u8], code: Code, identifier: u8) -> Result<Self, EncodeError> {
        Ok(Self {
            f: Frame::new(buf, code, identifier, &[0; 16], false)?,
        })
    }

    /// Starts a reply whose first attribute is Message-Authenticator.
    pub fn new_with_message_authenticator(
        buf: &'b mut [u8],
        code: Code,
        identifier: u8,
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            f: Frame::new(buf, code, identifier, &[0; 16], true)?,
        })
    }

    attribute_methods!();

    /// Copies every Proxy-State of the request, in order (RFC 2865 §5.33).
    pub fn copy_proxy_state(&mut self, request: &Packet<'_>) -> Result<(), EncodeError> {
        for v in request.attrs(attr::PROXY_STATE) {
            self.f.put(attr::PROXY_STATE, v)?;
        }
        Ok(())
    }

    /// Fills Length, signs Message-Authenticator (computed with the request
    /// authenticator in the header, RFC 3579 §3.2), then writes the Response
    /// Authenticator. Returns the packet length: send `&buf[..n]`.
    pub fn finish(
        mut self,
        secret: &Secret,
        request_authenticator: &[u8; 16],
    ) -> Result<usize, EncodeError> {
        let f = &mut self.f;
        f.set_length();
        f.sign_ma(request_authenticator, secret);
        let ra = crypto::response_authenticator(&f.buf[..f.len], request_authenticator, secret);
        f.buf[4..HEADER_LEN].copy_from_slice(&ra);
        Ok(f.len)
    }
}

/// Builds a request, for clients, proxies and load generators.
pub struct RequestWriter<'b> {
    f: Frame<'b>,
}

impl<'b> RequestWriter<'b> {
    /// Starts a request. `authenticator` must be unpredictable for
    /// Access-Request and Status-Server (the caller owns the RNG); for
    /// Accounting/CoA/Disconnect requests it is replaced by `finish`.
    pub fn new(
        buf: &'b mut [u8],
        code: Code,
        identifier: u8,
        authenticator: &[u8; 16],
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            f: Frame::new(buf, code, identifier, authenticator, false)?,
        })
    }

    /// As `new`, with Message-Authenticator reserved as the first attribute.
    pub fn new_with_message_authenticator(
        buf: &'b mut [u8],
        code: Code,
        identifier: u8,
        authenticator: &[u8; 16],
    ) -> Result<Self, EncodeError> {
        Ok(Self {
            f: Frame::new(buf, code, identifier, authenticator, true)?,
        })
    }

    attribute_methods!();

    /// Appends User-Password hidden with the header's authenticator.
    pub fn put_user_password(
        &mut self,
        password: &[u8],
        secret: &Secret,
    ) -> Result<(), EncodeError> {
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&self.f.buf[4..HEADER_LEN]);
        let mut hidden = [0u8; MAX_PASSWORD_LEN];
        let hidden = crypto::hide_password(password, secret, &auth, &mut hidden)?;
        self.f.put(attr::USER_PASSWORD, hidden)
    }

    /// Fills Length and signs: for Accounting/CoA/Disconnect requests the
    /// Message-Authenticator over a zeroed authenticator, then the computed
    /// Request Authenticator (RFC 2866 §3, RFC 5176 §3.5); otherwise the
    /// Message-Authenticator over the caller's authenticator.
    pub fn finish(mut self, secret: &Secret) -> Result<usize, EncodeError> {
        let f = &mut self.f;
        f.set_length();
        if Code(f.buf[0]).has_computed_request_authenticator() {
            f.sign_ma(&[0; 16], secret);
            let ra = crypto::accounting_request_authenticator(&f.buf[..f.len], secret);
            f.buf[4..HEADER_LEN].copy_from_slice(&ra);
        } else {
            let mut auth = [0u8; 16];
            auth.copy_from_slice(&f.buf[4..HEADER_LEN]);
            f.sign_ma(&auth, secret);
        }
        Ok(f.len)
    }

    /// Fills Length only, leaving authenticator and any Message-Authenticator
    /// exactly as written: for re-encoding and crafting test packets.
    pub fn finish_unsigned(mut self) -> usize {
        self.f.set_length();
        self.f.len
    }
}

/// Encodes a complete Access-Request: Message-Authenticator first, User-Name,
/// hidden User-Password. `authenticator` must come from a CSPRNG.
pub fn encode_access_request(
    buf: &mut [u8],
    identifier: u8,
    authenticator: &[u8; 16],
    user_name: &[u8],
    password: &[u8],
    secret: &Secret,
) -> Result<usize, EncodeError> {
    let mut w = RequestWriter::new_with_message_authenticator(
        buf,
        Code::ACCESS_REQUEST,
        identifier,
        authenticator,
    )?;
    w.put(attr::USER_NAME, user_name)?;
    w.put_user_password(password, secret)?;
    w.finish(secret)
}
