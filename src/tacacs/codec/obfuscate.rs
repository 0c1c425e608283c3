//! Body obfuscation (RFC 8907 §4.5): XOR with an MD5 pseudo-pad chained
//! from (session_id, key, version, seq_no). The same call hides and reveals.

use md5::{Digest, Md5};

use super::header::Header;

/// XORs `body` in place with the pad for `header` and `key`. No allocation:
/// the pad is made 16 bytes at a time.
pub fn obfuscate(body: &mut [u8], header: &Header, key: &[u8]) {
    let mut base = Md5::new();
    base.update(header.session_id.to_be_bytes());
    base.update(key);
    base.update([header.version, header.seq_no]);
    let mut prev = base.clone().finalize();
    for (i, chunk) in body.chunks_mut(16).enumerate() {
        if i > 0 {
            let mut h = base.clone();
            h.update(prev);
            prev = h.finalize();
        }
        for (b, p) in chunk.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
    }
}
