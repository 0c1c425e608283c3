//! Attribute type numbers the codec itself relies on or that callers commonly
//! need: RFC 2865 §5, RFC 2866 §5, RFC 2869 §5, RFC 3579 §3 and the Microsoft
//! vendor-specific attributes of RFC 2548 §2. Not a dictionary.

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_PROTOCOL: u8 = 7;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_SESSION_ID: u8 = 44;
pub const CHAP_CHALLENGE: u8 = 60;
pub const NAS_PORT_TYPE: u8 = 61;
pub const EAP_MESSAGE: u8 = 79;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// Vendor-Id of Microsoft (RFC 2548).
pub const VENDOR_MICROSOFT: u32 = 311;

/// Microsoft vendor types (RFC 2548 §2).
pub mod ms {
    pub const CHAP_RESPONSE: u8 = 1;
    pub const CHAP_ERROR: u8 = 2;
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    pub const CHAP_CHALLENGE: u8 = 11;
    pub const CHAP_MPPE_KEYS: u8 = 12;
    pub const MPPE_SEND_KEY: u8 = 16;
    pub const MPPE_RECV_KEY: u8 = 17;
    pub const CHAP2_RESPONSE: u8 = 25;
    pub const CHAP2_SUCCESS: u8 = 26;
}
