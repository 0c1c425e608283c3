#!/usr/bin/env python3
"""Drives two or more portcullis nodes the way appliances drive a primary
and a secondary server, for the shared-store tests. pyrad (not our code)
encodes every RADIUS request and verifies every reply.

  store_load.py acct --servers H:P[,H:P...] --secret S --count N [--deadline S]
      Accounting-Requests (one session id per record, r-N). Record N goes
      first to server N % len(servers); a request unanswered within RESEND
      is retransmitted unchanged (same socket, so the same source port,
      Identifier and authenticator: an RFC 5080 duplicate) to the next
      server, and a server that missed a reply is skipped from then on, as
      appliances mark a server dead. Every fifth record is sent once more
      to the other server after its acknowledgement (a lost reply).
      Prints `ACK r-N SECONDS` (time since start) per acknowledgement and
      `DONE` at the end; exits 0 once every record is acknowledged.

  store_load.py auth --servers H:P --secret S --user U --password P --seconds T
      PAP Access-Requests back to back for T seconds, each waiting at most
      1 s and never retried. Prints one JSON line {"accept": n, "reject": n,
      "timeout": n}.
"""

import argparse
import json
import socket
import sys
import threading
import time
import os

import pyrad.packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary

HERE = os.path.dirname(os.path.abspath(__file__))
DICTIONARY = os.path.join(HERE, "..", "..", "dictionaries", "dictionary")
RESEND = 0.5
out_lock = threading.Lock()
START = time.monotonic()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def await_reply(sock, pkt, timeout):
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(4096)
        except (socket.timeout, OSError):
            return None
        try:
            reply = pkt.CreateReply(packet=data)
        except Exception:
            continue
        if reply.id == pkt.id and pkt.VerifyReply(reply, data):
            return reply


def acct_worker(servers, secret, ids, deadline, alive, results):
    d = Dictionary(DICTIONARY)
    client = Client(server=servers[0][0], secret=secret.encode(), dict=d)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    ok = True
    for n in ids:
        pkt = client.CreateAcctPacket()
        pkt["User-Name"] = f"user{n % 50}"
        pkt["Acct-Status-Type"] = "Start" if n % 2 == 0 else "Interim-Update"
        pkt["Acct-Session-Id"] = f"r-{n}"
        pkt["NAS-IP-Address"] = "192.0.2.1"
        pkt["Acct-Session-Time"] = n
        raw = pkt.RequestPacket()
        i = n % len(servers)
        acked_by = None
        while acked_by is None:
            if time.monotonic() > deadline:
                ok = False
                break
            # The first server still thought alive, from this record's own.
            order = [(i + k) % len(servers) for k in range(len(servers))]
            live = [j for j in order if alive[j]] or order
            j = live[0]
            try:
                sock.sendto(raw, servers[j])
            except OSError:
                pass
            if await_reply(sock, pkt, RESEND) is not None:
                acked_by = j
            else:
                alive[j] = False
                i = j + 1
                # Keep trying: once every server looked dead, all get a chance again.
                if not any(alive):
                    for k in range(len(alive)):
                        alive[k] = True
        if acked_by is None:
            break
        say(f"ACK r-{n} {time.monotonic() - START:.3f}")
        if n % 5 == 0 and len(servers) > 1:
            other = (acked_by + 1) % len(servers)
            if alive[other]:
                sock.sendto(raw, servers[other])
                if await_reply(sock, pkt, RESEND) is not None:
                    say(f"REACK r-{n}")
    results.append(ok)


def acct(a):
    servers = [hostport(s) for s in a.servers.split(",")]
    deadline = time.monotonic() + a.deadline
    alive = [True] * len(servers)
    results = []
    threads = [
        threading.Thread(target=acct_worker,
                         args=(servers, a.secret, range(w, a.count, a.workers), deadline, alive, results))
        for w in range(a.workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say("DONE")
    return 0 if all(results) and len(results) == len(threads) else 1


def auth(a):
    server = hostport(a.servers.split(",")[0])
    client = Client(server=server[0], authport=server[1], secret=a.secret.encode(),
                    dict=Dictionary(DICTIONARY), retries=1, timeout=1, enforce_ma=True)
    counts = {"accept": 0, "reject": 0, "timeout": 0}
    end = time.monotonic() + a.seconds
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    while time.monotonic() < end:
        pkt = client.CreateAuthPacket(code=pyrad.packet.AccessRequest, User_Name=a.user)
        pkt["User-Password"] = pkt.PwCrypt(a.password)
        raw = pkt.RequestPacket()
        sock.sendto(raw, server)
        reply = await_reply(sock, pkt, 1.0)
        if reply is None:
            counts["timeout"] += 1
        elif reply.code == pyrad.packet.AccessAccept:
            counts["accept"] += 1
        else:
            counts["reject"] += 1
    say(json.dumps(counts))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["acct", "auth"])
    ap.add_argument("--servers", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--deadline", type=float, default=60)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    sys.exit(acct(a) if a.mode == "acct" else auth(a))


if __name__ == "__main__":
    main()
