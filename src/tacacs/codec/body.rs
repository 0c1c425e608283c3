//! Authentication, authorization and accounting bodies (RFC 8907 §5–§7):
//! zero-copy views for decoding, and encoders that append to a reused
//! buffer. Every decoder checks that the declared field lengths add up to
//! exactly the body length, which is also how a wrong key shows itself.

use super::error::{DecodeError, EncodeError};

/// A newtype over a wire byte with named values; unknown values survive.
macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub u8);
        impl $name {
            $($(#[$vm])* pub const $var: Self = Self($val);)*
        }
    };
}

wire_enum!(
    /// Authentication START action (§5.1).
    Action { LOGIN = 1, CHPASS = 2, SENDAUTH = 4 }
);
wire_enum!(
    /// authen_type (§5.1).
    AuthenType { ASCII = 1, PAP = 2, CHAP = 3, ARAP = 4, MSCHAP = 5, MSCHAPV2 = 6 }
);
wire_enum!(
    /// authen_service (§5.1).
    AuthenService { NONE = 0, LOGIN = 1, ENABLE = 2, PPP = 3, PT = 5, RCMD = 6, X25 = 7, NASI = 8, FWPROXY = 9 }
);
wire_enum!(
    /// Authentication REPLY status (§5.2).
    AuthenStatus { PASS = 1, FAIL = 2, GETDATA = 3, GETUSER = 4, GETPASS = 5, RESTART = 6, ERROR = 7, FOLLOW = 0x21 }
);
wire_enum!(
    /// Authorization RESPONSE status (§6.2).
    AuthorStatus { PASS_ADD = 1, PASS_REPL = 2, FAIL = 0x10, ERROR = 0x11, FOLLOW = 0x21 }
);
wire_enum!(
    /// Accounting REPLY status (§7.2).
    AcctStatus { SUCCESS = 1, ERROR = 2, FOLLOW = 0x21 }
);

/// REPLY flag: the client should not echo what the user types (§5.2).
pub const REPLY_FLAG_NOECHO: u8 = 0x01;
/// CONTINUE flag: the user aborted (§5.3).
pub const CONTINUE_FLAG_ABORT: u8 = 0x01;
/// Accounting REQUEST flags (§7.1).
pub const ACCT_FLAG_START: u8 = 0x02;
pub const ACCT_FLAG_STOP: u8 = 0x04;
pub const ACCT_FLAG_WATCHDOG: u8 = 0x08;

/// Bounds-checked reader over a body.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn fixed<const N: usize>(buf: &'a [u8]) -> Result<(&'a [u8; N], Self), DecodeError> {
        let head: &[u8; N] = buf
            .get(..N)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::ShortBody)?;
        Ok((head, Self { buf, at: N }))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::LengthMismatch)?;
        let s = self
            .buf
            .get(self.at..end)
            .ok_or(DecodeError::LengthMismatch)?;
        self.at = end;
        Ok(s)
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::LengthMismatch)
        }
    }
}

/// Argument values, in order, as `&[u8]` ("service=shell", "cmd*show").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    lens: &'a [u8],
    data: &'a [u8],
}

impl<'a> Args<'a> {
    /// No arguments: for building requests whose args are passed separately.
    pub const EMPTY: Args<'static> = Args {
        lens: &[],
        data: &[],
    };

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    pub fn iter(&self) -> ArgIter<'a> {
        ArgIter {
            lens: self.lens.iter(),
            data: self.data,
        }
    }
}

impl<'a> IntoIterator for Args<'a> {
    type Item = &'a [u8];
    type IntoIter = ArgIter<'a>;
    fn into_iter(self) -> ArgIter<'a> {
        self.iter()
    }
}

pub struct ArgIter<'a> {
    lens: std::slice::Iter<'a, u8>,
    data: &'a [u8],
}

impl<'a> Iterator for ArgIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(*self.lens.next()?);
        // Lengths were checked against the data when the body was decoded.
        let (a, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        Some(a)
    }
}

/// Splits an argument into (name, value, mandatory) at the first `=`
/// (mandatory) or `*` (optional), per §6.1.
pub fn split_arg(arg: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let i = arg.iter().position(|&b| b == b'=' || b == b'*')?;
    Some((&arg[..i], &arg[i + 1..], arg[i] == b'='))
}

fn read_args<'a>(r: &mut Reader<'a>, count: u8) -> Result<(&'a [u8], usize), DecodeError> {
    let lens = r.take(usize::from(count))?;
    let total = lens.iter().map(|&l| usize::from(l)).sum();
    Ok((lens, total))
}

// ---- authentication -------------------------------------------------------

/// Authentication START (§5.1), client to server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenStart<'a> {
    pub action: Action,
    pub priv_lvl: u8,
    pub authen_type: AuthenType,
    pub authen_service: AuthenService,
    pub user: &'a [u8],
    pub port: &'a [u8],
    pub rem_addr: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> AuthenStart<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<8>(body)?;
        let s = Self {
            action: Action(h[0]),
            priv_lvl: h[1],
            authen_type: AuthenType(h[2]),
            authen_service: AuthenService(h[3]),
            user: r.take(usize::from(h[4]))?,
            port: r.take(usize::from(h[5]))?,
            rem_addr: r.take(usize::from(h[6]))?,
            data: r.take(usize::from(h[7]))?,
        };
        r.end()?;
        Ok(s)
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[
            self.action.0,
            self.priv_lvl,
            self.authen_type.0,
            self.authen_service.0,
            len8(self.user)?,
            len8(self.port)?,
            len8(self.rem_addr)?,
            len8(self.data)?,
        ]);
        for f in [self.user, self.port, self.rem_addr, self.data] {
            out.extend_from_slice(f);
        }
        Ok(())
    }
}

/// Authentication REPLY (§5.2), server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenReply<'a> {
    pub status: AuthenStatus,
    pub flags: u8,
    pub server_msg: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> AuthenReply<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<6>(body)?;
        let s = Self {
            status: AuthenStatus(h[0]),
            flags: h[1],
            server_msg: r.take(usize::from(u16::from_be_bytes([h[2], h[3]])))?,
            data: r.take(usize::from(u16::from_be_bytes([h[4], h[5]])))?,
        };
        r.end()?;
        Ok(s)
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[self.status.0, self.flags]);
        out.extend_from_slice(&len16(self.server_msg)?);
        out.extend_from_slice(&len16(self.data)?);
        out.extend_from_slice(self.server_msg);
        out.extend_from_slice(self.data);
        Ok(())
    }
}

/// Authentication CONTINUE (§5.3), client to server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenContinue<'a> {
    pub flags: u8,
    pub user_msg: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> AuthenContinue<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<5>(body)?;
        let s = Self {
            user_msg: r.take(usize::from(u16::from_be_bytes([h[0], h[1]])))?,
            data: r.take(usize::from(u16::from_be_bytes([h[2], h[3]])))?,
            flags: h[4],
        };
        r.end()?;
        Ok(s)
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&len16(self.user_msg)?);
        out.extend_from_slice(&len16(self.data)?);
        out.push(self.flags);
        out.extend_from_slice(self.user_msg);
        out.extend_from_slice(self.data);
        Ok(())
    }

    pub fn aborted(&self) -> bool {
        self.flags & CONTINUE_FLAG_ABORT != 0
    }
}

// ---- authorization --------------------------------------------------------

/// Authorization REQUEST (§6.1), client to server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorRequest<'a> {
    pub authen_method: u8,
    pub priv_lvl: u8,
    pub authen_type: AuthenType,
    pub authen_service: AuthenService,
    pub user: &'a [u8],
    pub port: &'a [u8],
    pub rem_addr: &'a [u8],
    pub args: Args<'a>,
}

impl<'a> AuthorRequest<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<8>(body)?;
        let (lens, total) = read_args(&mut r, h[7])?;
        let user = r.take(usize::from(h[4]))?;
        let port = r.take(usize::from(h[5]))?;
        let rem_addr = r.take(usize::from(h[6]))?;
        let data = r.take(total)?;
        r.end()?;
        Ok(Self {
            authen_method: h[0],
            priv_lvl: h[1],
            authen_type: AuthenType(h[2]),
            authen_service: AuthenService(h[3]),
            user,
            port,
            rem_addr,
            args: Args { lens, data },
        })
    }

    /// Client direction; `args` as byte strings.
    pub fn encode(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[
            self.authen_method,
            self.priv_lvl,
            self.authen_type.0,
            self.authen_service.0,
            len8(self.user)?,
            len8(self.port)?,
            len8(self.rem_addr)?,
            count8(args.len())?,
        ]);
        for a in args {
            out.push(len8(a)?);
        }
        for f in [self.user, self.port, self.rem_addr] {
            out.extend_from_slice(f);
        }
        for a in args {
            out.extend_from_slice(a);
        }
        Ok(())
    }
}

/// Authorization RESPONSE (§6.2), server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorResponse<'a> {
    pub status: AuthorStatus,
    pub server_msg: &'a [u8],
    pub data: &'a [u8],
    pub args: Args<'a>,
}

impl<'a> AuthorResponse<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<6>(body)?;
        let (lens, total) = read_args(&mut r, h[1])?;
        let server_msg = r.take(usize::from(u16::from_be_bytes([h[2], h[3]])))?;
        let data = r.take(usize::from(u16::from_be_bytes([h[4], h[5]])))?;
        let args = r.take(total)?;
        r.end()?;
        Ok(Self {
            status: AuthorStatus(h[0]),
            server_msg,
            data,
            args: Args { lens, data: args },
        })
    }

    /// Server direction: `args` given as strings so pre-rendered AV pairs
    /// can be passed without copying.
    pub fn encode<S: AsRef<[u8]>>(
        status: AuthorStatus,
        args: &[S],
        server_msg: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        out.push(status.0);
        out.push(count8(args.len())?);
        out.extend_from_slice(&len16(server_msg)?);
        out.extend_from_slice(&len16(data)?);
        for a in args {
            out.push(len8(a.as_ref())?);
        }
        out.extend_from_slice(server_msg);
        out.extend_from_slice(data);
        for a in args {
            out.extend_from_slice(a.as_ref());
        }
        Ok(())
    }
}

// ---- accounting -----------------------------------------------------------

/// Accounting REQUEST (§7.1), client to server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcctRequest<'a> {
    pub flags: u8,
    pub authen_method: u8,
    pub priv_lvl: u8,
    pub authen_type: AuthenType,
    pub authen_service: AuthenService,
    pub user: &'a [u8],
    pub port: &'a [u8],
    pub rem_addr: &'a [u8],
    pub args: Args<'a>,
}

impl<'a> AcctRequest<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<9>(body)?;
        let (lens, total) = read_args(&mut r, h[8])?;
        let user = r.take(usize::from(h[5]))?;
        let port = r.take(usize::from(h[6]))?;
        let rem_addr = r.take(usize::from(h[7]))?;
        let data = r.take(total)?;
        r.end()?;
        Ok(Self {
            flags: h[0],
            authen_method: h[1],
            priv_lvl: h[2],
            authen_type: AuthenType(h[3]),
            authen_service: AuthenService(h[4]),
            user,
            port,
            rem_addr,
            args: Args { lens, data },
        })
    }

    pub fn encode(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&[
            self.flags,
            self.authen_method,
            self.priv_lvl,
            self.authen_type.0,
            self.authen_service.0,
            len8(self.user)?,
            len8(self.port)?,
            len8(self.rem_addr)?,
            count8(args.len())?,
        ]);
        for a in args {
            out.push(len8(a)?);
        }
        for f in [self.user, self.port, self.rem_addr] {
            out.extend_from_slice(f);
        }
        for a in args {
            out.extend_from_slice(a);
        }
        Ok(())
    }
}

/// Accounting REPLY (§7.2), server to client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcctReply<'a> {
    pub status: AcctStatus,
    pub server_msg: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> AcctReply<'a> {
    pub fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (h, mut r) = Reader::fixed::<5>(body)?;
        let s = Self {
            server_msg: r.take(usize::from(u16::from_be_bytes([h[0], h[1]])))?,
            data: r.take(usize::from(u16::from_be_bytes([h[2], h[3]])))?,
            status: AcctStatus(h[4]),
        };
        r.end()?;
        Ok(s)
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(&len16(self.server_msg)?);
        out.extend_from_slice(&len16(self.data)?);
        out.push(self.status.0);
        out.extend_from_slice(self.server_msg);
        out.extend_from_slice(self.data);
        Ok(())
    }
}

fn len8(f: &[u8]) -> Result<u8, EncodeError> {
    u8::try_from(f.len()).map_err(|_| EncodeError::FieldTooLong)
}

fn len16(f: &[u8]) -> Result<[u8; 2], EncodeError> {
    u16::try_from(f.len())
        .map(u16::to_be_bytes)
        .map_err(|_| EncodeError::FieldTooLong)
}

fn count8(n: usize) -> Result<u8, EncodeError> {
    u8::try_from(n).map_err(|_| EncodeError::TooManyArgs)
}

// ---- whole packets ----------------------------------------------------------

use super::header::{HEADER_LEN, Header};
use super::obfuscate::obfuscate;

/// Frames a body written by `write_body` into `out` (cleared first): header,
/// body, then obfuscation with `key` unless the header says unencrypted.
pub fn encode_packet(
    header: &Header,
    key: &[u8],
    out: &mut Vec<u8>,
    write_body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    write_body(out)?;
    let body_len = u32::try_from(out.len() - HEADER_LEN).map_err(|_| EncodeError::FieldTooLong)?;
    let h = Header {
        length: body_len,
        ..*header
    };
    let mut hb = [0u8; HEADER_LEN];
    h.write(&mut hb);
    out[..HEADER_LEN].copy_from_slice(&hb);
    if !h.unencrypted() {
        obfuscate(&mut out[HEADER_LEN..], &h, key);
    }
    Ok(())
}
