#!/usr/bin/env python3
"""An independent RADIUS client for the end-to-end tests, built on pyrad.

pyrad (not our code) encodes the requests, adds the Message-Authenticator
and verifies every reply's Response Authenticator and Message-Authenticator.
MS-CHAPv2 (RFC 2759) is computed here, from the RFC, in pure Python: OpenSSL 3
no longer offers MD4 to hashlib, so MD4 (RFC 1320) and single DES (FIPS 46-3)
are written out below and checked against the RFC 2759 section 9.2 test
vectors before every MS-CHAPv2 use.

Usage:
    pyrad_client.py --server HOST:PORT --secret S [--bind ADDR] [--timeout T]
                    ACTION [USER PASSWORD]

Actions:
    pap USER PASSWORD        Access-Request with User-Password
    pap-no-ma USER PASSWORD  the same without Message-Authenticator
    mschapv2 USER PASSWORD   MS-CHAP-Challenge + MS-CHAP2-Response; checks the
                             MS-CHAP2-Success authenticator response
    status                   Status-Server
    duplicate USER PASSWORD  one Access-Request datagram sent twice from one
                             socket (the second after the first reply)

Prints one JSON object: "result" is "accept", "reject", "other" or
"timeout" (no valid reply within --timeout; exactly one send), plus what was
received. Exits 0 whatever the result; a broken helper exits non-zero.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

import pyrad.packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

HERE = os.path.dirname(os.path.abspath(__file__))
# Our own FreeRADIUS-format dictionaries; pyrad's parser reads them.
DICTIONARY = os.path.join(HERE, "..", "..", "dictionaries", "dictionary")

# ---------------------------------------------------------------------------
# MD4 (RFC 1320)


def _rotl(x, n):
    x &= 0xFFFFFFFF
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def md4(data):
    msg = bytearray(data)
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bit_len)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476

    def f(x, y, z):
        return (x & y) | (~x & z)

    def g(x, y, z):
        return (x & y) | (x & z) | (y & z)

    def h(x, y, z):
        return x ^ y ^ z

    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):
            a = _rotl(a + f(b, c, d) + x[i], 3)
            d = _rotl(d + f(a, b, c) + x[i + 1], 7)
            c = _rotl(c + f(d, a, b) + x[i + 2], 11)
            b = _rotl(b + f(c, d, a) + x[i + 3], 19)
        for i in (0, 1, 2, 3):
            a = _rotl(a + g(b, c, d) + x[i] + 0x5A827999, 3)
            d = _rotl(d + g(a, b, c) + x[i + 4] + 0x5A827999, 5)
            c = _rotl(c + g(d, a, b) + x[i + 8] + 0x5A827999, 9)
            b = _rotl(b + g(c, d, a) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):
            a = _rotl(a + h(b, c, d) + x[i] + 0x6ED9EBA1, 3)
            d = _rotl(d + h(a, b, c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = _rotl(c + h(d, a, b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = _rotl(b + h(c, d, a) + x[i + 12] + 0x6ED9EBA1, 15)
        a = (a + aa) & 0xFFFFFFFF
        b = (b + bb) & 0xFFFFFFFF
        c = (c + cc) & 0xFFFFFFFF
        d = (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


# ---------------------------------------------------------------------------
# DES, encryption of one block (FIPS 46-3). Tables are 1-based bit positions
# counted from the most significant bit, as the standard prints them.

_IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
       62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
       57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7]
_FP = [40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
       38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
       36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
       34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25]
_E = [32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13,
      12, 13, 14, 15, 16, 17, 16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25,
      24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1]
_P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25]
_PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
        10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
        14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4]
_PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
        23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
        44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32]
_SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1]
_S = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
     0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
     15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
     3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
     13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
     13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
     1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
     13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
     3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
     14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
     11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
     10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
     4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
     13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
     6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
     1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
     2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
]


def _permute(value, table, width):
    out = 0
    for pos in table:
        out = (out << 1) | ((value >> (width - pos)) & 1)
    return out


def des_encrypt(key8, block8):
    """Single-DES encryption of one 8-byte block; parity bits are ignored."""
    key = int.from_bytes(key8, "big")
    cd = _permute(key, _PC1, 64)
    c, d = cd >> 28, cd & 0x0FFFFFFF
    subkeys = []
    for s in _SHIFTS:
        c = ((c << s) | (c >> (28 - s))) & 0x0FFFFFFF
        d = ((d << s) | (d >> (28 - s))) & 0x0FFFFFFF
        subkeys.append(_permute((c << 28) | d, _PC2, 56))
    block = _permute(int.from_bytes(block8, "big"), _IP, 64)
    left, right = block >> 32, block & 0xFFFFFFFF
    for k in subkeys:
        x = _permute(right, _E, 32) ^ k
        out = 0
        for i in range(8):
            six = (x >> (42 - 6 * i)) & 0x3F
            row = ((six & 0x20) >> 4) | (six & 1)
            col = (six >> 1) & 0xF
            out = (out << 4) | _S[i][row * 16 + col]
        left, right = right, left ^ _permute(out, _P, 32)
    return _permute((right << 32) | left, _FP, 64).to_bytes(8, "big")


# ---------------------------------------------------------------------------
# MS-CHAPv2 (RFC 2759 section 8)

_MAGIC1 = b"Magic server to client signing constant"
_MAGIC2 = b"Pad to make it do more than one iteration"


def _sha1(*parts):
    import hashlib

    h = hashlib.sha1()
    for p in parts:
        h.update(p)
    return h.digest()


def challenge_hash(peer_challenge, auth_challenge, user):
    return _sha1(peer_challenge, auth_challenge, user)[:8]


def nt_password_hash(password):
    return md4(password.encode("utf-16-le"))


def _des_key(seven):
    """Spreads 56 key bits over 8 bytes, 7 bits each (parity bit left 0)."""
    bits = int.from_bytes(seven, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def challenge_response(challenge, password_hash):
    z = password_hash + b"\0" * 5
    return b"".join(des_encrypt(_des_key(z[i:i + 7]), challenge) for i in (0, 7, 14))


def generate_nt_response(auth_challenge, peer_challenge, user, password):
    ch = challenge_hash(peer_challenge, auth_challenge, user)
    return challenge_response(ch, nt_password_hash(password))


def authenticator_response(password, nt_response, peer_challenge, auth_challenge, user):
    hash_hash = md4(nt_password_hash(password))
    digest = _sha1(hash_hash, nt_response, _MAGIC1)
    ch = challenge_hash(peer_challenge, auth_challenge, user)
    return "S=" + _sha1(digest, ch, _MAGIC2).hex().upper()


def self_test():
    """RFC 2759 section 9.2, and RFC 1320 appendix A.5 for MD4."""
    assert md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    # FIPS 81 / classic DES known answer: "Now is t" under 0123456789ABCDEF.
    assert des_encrypt(bytes.fromhex("0123456789abcdef"), b"Now is t").hex() == "3fa40e8a984d4815"
    user = b"User"
    password = "clientPass"
    auth = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
    peer = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
    assert challenge_hash(peer, auth, user).hex().upper() == "D02E4386BCE91226"
    assert nt_password_hash(password).hex().upper() == "44EBBA8D5312B8D611474411F56989AE"
    nt = generate_nt_response(auth, peer, user, password)
    assert nt.hex().upper() == "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF", nt.hex()
    assert authenticator_response(password, nt, peer, auth, user) == \
        "S=407A5589115FD0D6209F510FE9C04566932CDA56"


# ---------------------------------------------------------------------------
# RADIUS


def describe(reply):
    """The JSON view of a verified reply."""
    code = reply.code
    result = {
        pyrad.packet.AccessAccept: "accept",
        pyrad.packet.AccessReject: "reject",
    }.get(code, "other")
    raw = reply.raw_packet
    attrs = []
    for key in reply.keys():
        name = key if isinstance(key, str) else str(key)
        for v in reply[key]:
            attrs.append([name, v.hex() if isinstance(v, bytes) else str(v)])
    return {
        "result": result,
        "code": code,
        "id": reply.id,
        # Type 80, length 18 straight after the 20-byte header.
        "ma_first": len(raw) >= 22 and raw[20] == 80 and raw[21] == 18,
        "ma_count": sum(1 for k in reply.keys() if k == "Message-Authenticator"),
        "cisco_avpair": [str(v) for v in reply.get("Cisco-AVPair", [])],
        "attributes": attrs,
        "raw": raw.hex(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--bind", default=None, help="local address to send from")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("action")
    ap.add_argument("user", nargs="?")
    ap.add_argument("password", nargs="?")
    args = ap.parse_args()

    host, port = args.server.rsplit(":", 1)
    port = int(port)
    secret = args.secret.encode()
    client = Client(server=host, authport=port, secret=secret,
                    dict=Dictionary(DICTIONARY), retries=1,
                    timeout=args.timeout, enforce_ma=True)
    if args.bind:
        client.bind((args.bind, 0))

    out = {}
    if args.action == "status":
        pkt = client.CreateAuthPacket(code=pyrad.packet.StatusServer)
    elif args.action in ("pap", "pap-no-ma", "duplicate"):
        kw = {"message_authenticator": False} if args.action == "pap-no-ma" else {}
        pkt = client.CreateAuthPacket(code=pyrad.packet.AccessRequest,
                                      User_Name=args.user, **kw)
        pkt["User-Password"] = pkt.PwCrypt(args.password)
    elif args.action == "mschapv2":
        self_test()
        auth_challenge = os.urandom(16)
        peer_challenge = os.urandom(16)
        user = args.user.encode()
        nt = generate_nt_response(auth_challenge, peer_challenge, user, args.password)
        ident = 7
        # Ident, Flags, Peer-Challenge, 8 reserved zero bytes, NT-Response.
        response = bytes([ident, 0]) + peer_challenge + b"\0" * 8 + nt
        pkt = client.CreateAuthPacket(code=pyrad.packet.AccessRequest,
                                      User_Name=args.user)
        pkt["MS-CHAP-Challenge"] = auth_challenge
        pkt["MS-CHAP2-Response"] = response
        expected = bytes([ident]) + authenticator_response(
            args.password, nt, peer_challenge, auth_challenge, user).encode()
        out["expected_mschap2_success"] = expected.hex()
    else:
        ap.error("unknown action " + args.action)

    if args.action == "duplicate":
        out.update(duplicate(client, pkt, host, port, args.timeout))
    else:
        try:
            reply = client.SendPacket(pkt)
            out.update(describe(reply))
        except Timeout:
            out["result"] = "timeout"
        if args.action == "mschapv2" and out["result"] != "timeout":
            got = [v for k, v in out["attributes"] if k == "MS-CHAP2-Success"]
            out["mschap2_success"] = got
            out["mschap2_success_ok"] = got == [out["expected_mschap2_success"]]
    print(json.dumps(out))


def duplicate(client, pkt, host, port, timeout):
    """Sends the very same datagram twice from one socket, waiting for the
    first reply before retransmitting, so the server sees a retransmission
    (same source port, Identifier and Request Authenticator)."""
    raw = pkt.RequestPacket()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    replies = []
    for _ in range(2):
        sock.sendto(raw, (host, port))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"result": "timeout", "replies": [r.hex() for r in replies]}
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            reply = pkt.CreateReply(packet=data)
            if pkt.VerifyReply(reply, data, enforce_ma=True):
                replies.append(data)
                break
    out = describe(pkt.CreateReply(packet=replies[0]))
    out["replies"] = [r.hex() for r in replies]
    return out


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("self-test failed: %r" % (e,), file=sys.stderr)
        sys.exit(2)
