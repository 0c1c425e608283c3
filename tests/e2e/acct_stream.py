#!/usr/bin/env python3
"""Streams accounting records at a server the way appliances do, for the
end-to-end crash test: pyrad encodes the RADIUS Accounting-Requests and
checks each Accounting-Response; the PyPI tacacs_plus client sends the
TACACS+ accounting REQUESTs. Neither is our code.

  acct_stream.py --radius HOST:PORT --tacacs HOST:PORT --secret S --key K
                 [--radius-count N] [--tacacs-count M] [--deadline SECONDS]

Every record is retried until it is acknowledged, as an appliance keeps its
backlog: a RADIUS request is retransmitted unchanged (RFC 5080 duplicate) and,
every third attempt, with Acct-Delay-Time bumped (RFC 2866 §5.2: a new
Identifier-and-authenticator for the same event); a TACACS+ record is sent
again in a new session on a new connection. Every tenth record is sent once
more after its acknowledgement, as when the reply was lost.

Prints `ACK radius|tacacs ID` for each acknowledgement (the reply was valid,
so the server said the record is stored), `REACK ...` for the extra sends,
and exits 0 once every record is acknowledged, 1 at the deadline.
"""

import argparse
import os
import socket
import sys
import threading
import time

import pyrad.packet
from pyrad.client import Client
from pyrad.dictionary import Dictionary
from tacacs_plus import flags
from tacacs_plus.client import TACACSClient

HERE = os.path.dirname(os.path.abspath(__file__))
# Our own FreeRADIUS-format dictionaries; pyrad's parser reads them.
DICTIONARY = os.path.join(HERE, "..", "..", "dictionaries", "dictionary")
RESEND = 0.3  # seconds before a RADIUS retransmission
out_lock = threading.Lock()


def say(line):
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def radius_worker(addr, secret, ids, deadline):
    d = Dictionary(DICTIONARY)
    client = Client(server=addr[0], acctport=addr[1], secret=secret.encode(), dict=d)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(addr)
    for n in ids:
        sid = f"r-{n}"
        pkt = client.CreateAcctPacket()
        pkt["User-Name"] = f"user{n % 50}"
        pkt["Acct-Status-Type"] = "Start" if n % 2 == 0 else "Interim-Update"
        pkt["Acct-Session-Id"] = sid
        pkt["NAS-IP-Address"] = "192.0.2.1"
        pkt["Acct-Session-Time"] = n
        pkt["Acct-Delay-Time"] = 0
        raw = pkt.RequestPacket()
        attempt = 0
        while not send_until_acked(sock, pkt, raw):
            if time.monotonic() > deadline:
                return False
            attempt += 1
            if attempt % 3 == 0:
                pkt["Acct-Delay-Time"] = attempt
                pkt.id = (pkt.id + 1) % 256
                raw = pkt.RequestPacket()
        say(f"ACK radius {sid}")
        if n % 10 == 0:
            while not send_until_acked(sock, pkt, raw):
                if time.monotonic() > deadline:
                    return False
            say(f"REACK radius {sid}")
    return True


def send_until_acked(sock, pkt, raw):
    """One send; True once a valid reply to it arrives within RESEND."""
    try:
        sock.send(raw)
    except OSError:  # ICMP port unreachable from an earlier send
        return False
    end = time.monotonic() + RESEND
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except (socket.timeout, OSError):
            return False
        try:
            reply = pkt.CreateReply(packet=data)
        except Exception:
            continue
        if reply.code == pyrad.packet.AccountingResponse and pkt.VerifyReply(reply, data):
            return True


def tacacs_worker(addr, key, ids, deadline):
    client = TACACSClient(addr[0], addr[1], key, timeout=2)
    for n in ids:
        args = [b"service=shell", f"task_id={n}".encode(), f"cmd=show run {n}".encode()]
        while not tacacs_once(client, n, args):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # pacing between reconnects, as appliances do
        say(f"ACK tacacs {n}")
        if n % 10 == 0:
            while not tacacs_once(client, n, args):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
            say(f"REACK tacacs {n}")
    return True


def tacacs_once(client, n, args):
    try:
        r = client.account(f"user{n % 50}", flags.TAC_PLUS_ACCT_FLAG_START, arguments=args)
    except Exception:
        return False
    return r.valid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--radius", type=hostport, required=True)
    ap.add_argument("--tacacs", type=hostport, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--radius-count", type=int, default=2000)
    ap.add_argument("--tacacs-count", type=int, default=600)
    ap.add_argument("--deadline", type=float, default=180)
    a = ap.parse_args()
    deadline = time.monotonic() + a.deadline
    results = []
    threads = []

    def run(f, *args):
        results.append(f(*args))

    for w in range(4):
        ids = range(w, a.radius_count, 4)
        threads.append(threading.Thread(target=run, args=(radius_worker, a.radius, a.secret, ids, deadline)))
    for w in range(2):
        ids = range(w, a.tacacs_count, 2)
        threads.append(threading.Thread(target=run, args=(tacacs_worker, a.tacacs, a.key, ids, deadline)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    say("DONE")
    sys.exit(0 if all(results) and len(results) == len(threads) else 1)


if __name__ == "__main__":
    main()
