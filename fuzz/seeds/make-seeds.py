#!/usr/bin/env python3
"""Writes the seed inputs of the RADIUS fuzz targets (scripts/fuzz.sh passes
fuzz/seeds/<target> to each run). Deterministic: running it again rewrites
the same bytes.

radius_packet seeds are real packets signed with the fuzz target's secret
(`fuzz-shared-secret`, src/radius/codec/fuzz.rs) and, where a password is
involved, the password "password" the target tries, so the fuzzer starts
from inputs that get past every check (Message-Authenticator, password
unhiding, CHAP, MS-CHAPv2, MPPE salt decryption) instead of having to
discover HMAC-MD5 preimages. Encodings are written here from the RFCs, not
by our codec. radius_dictionary and config seeds are our own dictionaries,
a file of every directive, and the demo configuration.

    python3 fuzz/seeds/make-seeds.py
"""

import hashlib
import hmac
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
import pyrad_client as mschap  # noqa: E402  (MD4/DES/MS-CHAPv2 from RFC 2759)

SECRET = b"fuzz-shared-secret"
PASSWORD = b"password"
ZERO16 = b"\0" * 16


def md5(*parts):
    h = hashlib.md5()
    for p in parts:
        h.update(p)
    return h.digest()


def attr(t, v):
    assert len(v) <= 253
    return bytes([t, len(v) + 2]) + v


def vsa(vendor, t, v):
    return attr(26, struct.pack("!I", vendor) + bytes([t, len(v) + 2]) + v)


def hide_password(pw, auth):
    """RFC 2865 section 5.2."""
    padded = max(16, (len(pw) + 15) // 16 * 16)
    pw = pw + b"\0" * (padded - len(pw))
    out, prev = b"", auth
    for i in range(0, len(pw), 16):
        block = bytes(a ^ b for a, b in zip(pw[i:i + 16], md5(SECRET, prev)))
        out += block
        prev = block
    return out


def salt_encrypt(key, salt, req_auth):
    """RFC 2548 section 2.4.2 (MS-MPPE-Send-Key / Recv-Key)."""
    plain = bytes([len(key)]) + key
    plain += b"\0" * (-len(plain) % 16)
    salt = struct.pack("!H", salt | 0x8000)
    out, prev = b"", req_auth + salt
    for i in range(0, len(plain), 16):
        block = bytes(a ^ b for a, b in zip(plain[i:i + 16], md5(SECRET, prev)))
        out += block
        prev = block
    return salt + out


def request(code, ident, auth, attrs, ma=True):
    """Access-Request / Status-Server: random authenticator, MA first."""
    body = b"".join(attrs)
    if ma:
        body = attr(80, ZERO16) + body
    hdr = struct.pack("!BBH", code, ident, 20 + len(body))
    if ma:
        mac = hmac.new(SECRET, hdr + auth + body, "md5").digest()
        body = attr(80, mac) + body[18:]
    return hdr + auth + body


def computed_request(code, ident, attrs, ma=True):
    """Accounting / CoA / Disconnect: MA over a zero authenticator, then
    the Request Authenticator over the packet (RFC 2866 section 3, RFC 5176)."""
    body = b"".join(attrs)
    if ma:
        body = attr(80, ZERO16) + body
    hdr = struct.pack("!BBH", code, ident, 20 + len(body))
    if ma:
        mac = hmac.new(SECRET, hdr + ZERO16 + body, "md5").digest()
        body = attr(80, mac) + body[18:]
    return hdr + md5(hdr, ZERO16, body, SECRET) + body


def reply(code, ident, req_auth, attrs):
    """A server's reply: MA first (over the request authenticator), then
    the Response Authenticator."""
    body = attr(80, ZERO16) + b"".join(attrs)
    hdr = struct.pack("!BBH", code, ident, 20 + len(body))
    mac = hmac.new(SECRET, hdr + req_auth + body, "md5").digest()
    body = attr(80, mac) + body[18:]
    return hdr + md5(hdr, req_auth, body, SECRET) + body


def auth_of(n):
    return md5(b"seed authenticator", bytes([n]))


def radius_packets():
    a = auth_of(1)
    user = attr(1, b"bob")
    nas = attr(4, bytes([192, 0, 2, 1]))
    seeds = {
        "pap_ma_first": request(1, 1, a, [user, attr(2, hide_password(PASSWORD, a)), nas]),
        "pap_no_ma": request(1, 2, a, [user, attr(2, hide_password(PASSWORD, a))], ma=False),
        "pap_128_byte_password": request(
            1, 3, a, [user, attr(2, hide_password(b"p" * 128, a))]),
        "status_server": request(12, 4, auth_of(4), []),
        "proxy_state": request(1, 5, a, [
            user, attr(2, hide_password(PASSWORD, a)),
            attr(33, b"proxy-state-one"), attr(33, b"\x00\x01\x02"),
        ]),
        "eap_identity": request(1, 6, a, [user, attr(79, b"\x02\x01\x00\x08\x01bob")]),
    }

    # CHAP (RFC 1994 section 4.1, RFC 2865 section 5.3): with CHAP-Challenge,
    # and with the Request Authenticator as the challenge.
    challenge = md5(b"chap challenge")
    ident = 0x2A
    seeds["chap_challenge"] = request(1, 7, a, [
        user, attr(3, bytes([ident]) + md5(bytes([ident]), PASSWORD, challenge)),
        attr(60, challenge),
    ])
    seeds["chap_authenticator"] = request(1, 8, a, [
        user, attr(3, bytes([ident]) + md5(bytes([ident]), PASSWORD, a)),
    ])

    # MS-CHAPv2 (RFC 2759, RFC 2548 section 2.3.2).
    auth_ch = md5(b"authenticator challenge")
    peer_ch = md5(b"peer challenge")
    nt = mschap.generate_nt_response(auth_ch, peer_ch, b"bob", PASSWORD.decode())
    response = bytes([1, 0]) + peer_ch + ZERO16[:8] + nt
    seeds["mschapv2"] = request(1, 9, a, [
        user, vsa(311, 11, auth_ch), vsa(311, 25, response),
    ])

    # Accounting and dynamic authorization.
    seeds["accounting_start"] = computed_request(4, 10, [
        user, attr(40, struct.pack("!I", 1)), attr(44, b"session-0001"), nas,
    ])
    seeds["disconnect_request"] = computed_request(40, 11, [user, attr(44, b"session-0001")])
    seeds["coa_request"] = computed_request(43, 12, [user, vsa(9, 1, b"subscriber:command=reauthenticate")])

    # What portcullis answers an orchestrator with, plus the MS-CHAPv2
    # extras (MS-CHAP2-Success, salt-encrypted MPPE keys, policy, types).
    avpairs = [vsa(9, 1, s) for s in (
        b"LOGIN:priv-lvl=15", b"LOGIN:rbac-roles=OverlayAdmin", b"LOGIN:rbac-aag=Global")]
    success = bytes([1]) + mschap.authenticator_response(
        PASSWORD.decode(), nt, peer_ch, auth_ch, b"bob").encode()
    seeds["access_accept_orchestrator"] = reply(2, 1, a, [attr(6, struct.pack("!I", 6))] + avpairs)
    seeds["access_accept_mschapv2"] = reply(2, 9, a, [attr(6, struct.pack("!I", 6))] + avpairs + [
        vsa(311, 26, success),
        vsa(311, 16, salt_encrypt(md5(b"send key"), 0x1234, a)),
        vsa(311, 17, salt_encrypt(md5(b"recv key"), 0x1235, a)),
        vsa(311, 7, struct.pack("!I", 1)),
        vsa(311, 8, struct.pack("!I", 6)),
    ])
    seeds["access_reject"] = reply(3, 2, a, [attr(18, b"Authentication failed")])

    # Framing corners: bytes past Length (ignored by RFC 2865 section 3),
    # Vendor-Specific payloads that are not type/length sub-attributes, an
    # empty attribute, and a packet at the 4096-byte limit.
    seeds["trailing_bytes"] = seeds["pap_ma_first"] + b"\xde\xad\xbe\xef" * 4
    seeds["odd_vendor_specific"] = request(1, 13, a, [
        user,
        attr(26, struct.pack("!I", 429) + struct.pack("!I", 0x9801) + b"usr"),  # 4-byte type
        attr(26, struct.pack("!I", 9)),  # vendor id only
        attr(26, struct.pack("!I", 311) + bytes([11, 1])),  # sub-length too short
        attr(30, b""),
    ])
    big = [attr(25, bytes([i]) * 253) for i in range(15)]
    body_len = 18 + sum(map(len, big))
    big.append(attr(25, b"x" * (4096 - 20 - body_len - 2)))
    seeds["max_length"] = request(1, 14, a, big)
    assert len(seeds["max_length"]) == 4096
    return seeds


DIRECTIVES = """\
# Every directive the loader knows, plus a few it must refuse.
VENDOR\tExample\t32473
VENDOR\tWide\t5000\tformat=2,2
VENDOR\tNoLength\t5001\tformat=1,0
ATTRIBUTE\tUser-Name\t1\tstring
ATTRIBUTE\tUser-Password\t2\tstring\tencrypt=1
ATTRIBUTE\tTunnel-Password\t69\tstring\thas_tag,encrypt=2
ATTRIBUTE\tTunnel-Type\t64\tinteger\thas_tag
VALUE\tTunnel-Type\tPPTP\t1
VALUE\tTunnel-Type\tL2TP\t3
ATTRIBUTE\tFramed-IP-Address\t8\tipaddr
ATTRIBUTE\tFramed-IPv6-Prefix\t97\tipv6prefix
ATTRIBUTE\tEvent-Timestamp\t55\tdate
ATTRIBUTE\tExtended-Attribute-1\t241\textended
ATTRIBUTE\tFrag-Status\t241.1\tinteger
ATTRIBUTE\tExtended-Vendor-Specific-1\t241.26\tevs
BEGIN-VENDOR\tExample
ATTRIBUTE\tExample-Role\t1\tstring
ATTRIBUTE\tExample-Level\t2\tinteger
VALUE\tExample-Level\tAdmin\t15
ATTRIBUTE\tExample-Group\t3\ttlv
ATTRIBUTE\tExample-Group-Name\t3.1\tstring
ATTRIBUTE\tExample-Blob\t4\toctets[16]
END-VENDOR\tExample
BEGIN-VENDOR\tExample\tformat=Extended-Vendor-Specific-1
ATTRIBUTE\tExample-Extended\t1\tstring
END-VENDOR\tExample
BEGIN-VENDOR\tWide
ATTRIBUTE\tWide-Thing\t300\tinteger
END-VENDOR\tWide
"""

# Inputs the loader must refuse, one mistake each (a whole file stops at
# its first error, so they are kept apart from the file above).
REFUSED = {
    "refused-number": "ATTRIBUTE\tBroken\tnot-a-number\tstring\n",
    "refused-include": "$INCLUDE dictionary.local\n$INCLUDE- dictionary.optional\n",
    "refused-unclosed-vendor": "VENDOR\tX\t1\nBEGIN-VENDOR\tX\nATTRIBUTE\tX-A\t1\tstring\n",
    "refused-value-before-attribute": "VALUE\tNope\tOne\t1\n",
}

CONFIG_VARIANT = """\
[server]
data_dir = "/tmp/portcullis-fuzz"
auth_order = "remote-first"
credential_cache_ttl = 0
argon2_threads = 2
argon2_queue = 8

[listen]
radius_auth = "[::1]:1812"
tacacs = "127.0.0.1:49"

[radius]
dictionary_dir = "dictionaries"
workers = 2
recv_buffer = 1048576
duplicate_window = 0

[[client]]
name = "core-switches"
cidrs = ["10.1.0.0/16", "2001:db8::/32", "192.0.2.7"]
radius_secret = { env = "PORTCULLIS_RADIUS_SECRET" }
tacacs_key = { file = "/run/secrets/tacacs" }
profile = "cisco-ios"
require_message_authenticator = false
allow_unencrypted_tacacs = true

[[role]]
name = "ops"
priv_lvl = 0
tacacs_role = "monitor"
[role.commands]
default = "deny"
rule = [{ action = "permit", match = "show conf* *" }]

[[group]]
name = "ops"

[[mapping]]
group = "all-users"
role = "ops"

[[user]]
name = "dave"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$fPdvAIzHsCzp5f5c7ZOqiA$R1cvJZ3/iOuCLjoAlNti9heuVIRGhMPbjWq2ACM/48E"
groups = ["ops", "undefined-group"]
enabled = true
"""


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    mschap.self_test()
    for name, data in radius_packets().items():
        write("radius_packet", name + ".bin", data)
        # The accounting target needs packets with attributes to type.
        if name in ("accounting_start", "odd_vendor_specific", "proxy_state",
                    "access_accept_orchestrator", "coa_request"):
            write("radius_accounting", name + ".bin", data)
    for name in ("dictionary.rfc2865", "dictionary.rfc2868", "dictionary.rfc6929",
                 "dictionary.microsoft", "dictionary.cisco", "dictionary.aruba"):
        with open(os.path.join(REPO, "dictionaries", name), "rb") as f:
            write("radius_dictionary", name, f.read())
    write("radius_dictionary", "every-directive", DIRECTIVES.encode())
    for name, text in REFUSED.items():
        write("radius_dictionary", name, text.encode())
    with open(os.path.join(REPO, "examples", "portcullis.toml"), "rb") as f:
        write("config", "demo.toml", f.read())
    write("config", "variant.toml", CONFIG_VARIANT.encode())


if __name__ == "__main__":
    main()
