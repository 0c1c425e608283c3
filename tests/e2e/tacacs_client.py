#!/usr/bin/env python3
"""Drives the PyPI tacacs_plus client (an implementation nobody on this team
wrote) for the end-to-end tests. One operation per invocation; prints one
JSON object.

  tacacs_client.py HOST PORT KEY ascii USER PASSWORD
  tacacs_client.py HOST PORT KEY pap USER PASSWORD
  tacacs_client.py HOST PORT KEY enable USER PASSWORD PRIV_LVL
  tacacs_client.py HOST PORT KEY author USER ARG [ARG ...]
  tacacs_client.py HOST PORT KEY acct start|stop USER
"""
import json
import sys

import tacacs_plus.client
from tacacs_plus.authentication import TACACSAuthenticationStart
from tacacs_plus.client import TACACSClient
from tacacs_plus import flags


class EnableStart(TACACSAuthenticationStart):
    """The client's own START packet, for service ENABLE (RFC 8907 5.1),
    which its authenticate() does not offer."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.service = 0x02  # TAC_PLUS_AUTHEN_SVC_ENABLE

host, port, key, op = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
args = sys.argv[5:]
client = TACACSClient(host, port, key, timeout=10)
try:
    if op in ("ascii", "pap"):
        kind = flags.TAC_PLUS_AUTHEN_TYPE_ASCII if op == "ascii" else flags.TAC_PLUS_AUTHEN_TYPE_PAP
        r = client.authenticate(args[0], args[1], authen_type=kind)
        out = {"valid": r.valid, "status": r.human_status, "server_msg": r.server_msg.decode(errors="replace")}
    elif op == "enable":
        tacacs_plus.client.TACACSAuthenticationStart = EnableStart
        r = client.authenticate(args[0], args[1], priv_lvl=int(args[2]),
                                authen_type=flags.TAC_PLUS_AUTHEN_TYPE_ASCII)
        out = {"valid": r.valid, "status": r.human_status, "server_msg": r.server_msg.decode(errors="replace")}
    elif op == "author":
        r = client.authorize(args[0], arguments=[a.encode() for a in args[1:]])
        out = {
            "valid": r.valid,
            "status": r.human_status,
            "args": [a.decode(errors="replace") for a in r.arguments],
            "server_msg": r.server_msg.decode(errors="replace"),
        }
    elif op == "acct":
        flag = flags.TAC_PLUS_ACCT_FLAG_START if args[0] == "start" else flags.TAC_PLUS_ACCT_FLAG_STOP
        r = client.account(args[1], flag, arguments=[b"service=shell", b"task_id=42"])
        out = {"valid": r.valid, "status": r.human_status}
    else:
        raise SystemExit(f"unknown op {op}")
except Exception as e:  # the server closing on us is a result too
    out = {"valid": False, "error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
