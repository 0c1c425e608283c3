#!/usr/bin/env python3
"""A real SAML 2.0 service provider for portcullis's end-to-end tests: pysaml2
(IdentityPython) with xmlsec1, standing in for an appliance console whose SAML
remote authentication points at portcullis. The test drives it as a browser.

    saml_sp.py --port 0 --entity-id URL --acs URL --idp-metadata-url URL
               [--slo URL] [--sign-requests] [--want-response-signed]

URLs may be `auto...`: this SP's own address followed by the rest.
--acs is the URL the console claims (what portcullis has registered); the SP
listens on --port and the test posts the Response here, to /acs.

Endpoints (JSON answers for the test):
  GET  /login?binding=redirect|post[&relay=R]  -> the AuthnRequest (302 or POST form)
  POST /acs                                      -> {"ok": true, "ava": {...}, ...} or
                                                    {"ok": false, "error": ..., "status": ...}
  GET  /logout                                   -> 302 with our LogoutRequest to the IdP
  GET  /slo                                      -> the IdP's LogoutRequest (answered) or
                                                    LogoutResponse (recorded)
  GET  /state                                    -> {"logged_out_by_idp": n, "logout_done": n}
  GET  /metadata                                 -> this SP's metadata (for a console given by URL)

Prints one JSON line when ready: port, cert_file.
"""
import argparse
import base64
import datetime
import re
import zlib
import json
import os
import sys
import tempfile
import threading
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor


RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


def make_key(d):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "saml-test-sp")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    kf, cf = os.path.join(d, "sp-key.pem"), os.path.join(d, "sp-cert.pem")
    with open(kf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cf, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return kf, cf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--entity-id", required=True)
    ap.add_argument("--acs", required=True)
    ap.add_argument("--slo")
    ap.add_argument("--idp-metadata-url", required=True)
    ap.add_argument("--sign-requests", action="store_true")
    ap.add_argument("--want-response-signed", action="store_true")
    args = ap.parse_args()

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    # `auto`: this SP's own address (for a console registered after it starts).
    for k in ("entity_id", "acs", "slo"):
        v = getattr(args, k)
        if v and v.startswith("auto"):
            setattr(args, k, base + v[len("auto"):])
    tmp = tempfile.mkdtemp(prefix="saml-sp-")
    key_file, cert_file = make_key(tmp)
    with urllib.request.urlopen(args.idp_metadata_url, timeout=10) as r:
        idp_md = r.read().decode()
    md_file = os.path.join(tmp, "idp.xml")
    with open(md_file, "w") as f:
        f.write(idp_md)
    endpoints = {"assertion_consumer_service": [(args.acs, BINDING_HTTP_POST)]}
    if args.slo:
        endpoints["single_logout_service"] = [(args.slo, BINDING_HTTP_REDIRECT)]
    conf = {
        "entityid": args.entity_id,
        "service": {"sp": {
            "endpoints": endpoints,
            "want_response_signed": args.want_response_signed,
            "want_assertions_signed": True,
            "authn_requests_signed": args.sign_requests,
            "logout_requests_signed": args.sign_requests,
            "logout_responses_signed": args.sign_requests,
            "allow_unsolicited": True,
            "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        }},
        "key_file": key_file,
        "cert_file": cert_file,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "accepted_time_diff": 5,
        "allow_unknown_attributes": True,
        # portcullis refuses SHA-1 signatures, as it should.
        "signing_algorithm": RSA_SHA256,
        "digest_algorithm": SHA256,
        "metadata": {"local": [md_file]},
    }
    c = SPConfig()
    c.load(conf)
    client = Saml2Client(config=c)
    httpd.sp = {"client": client, "outstanding": {}, "lock": threading.Lock(),
                "name_id": None, "logged_out_by_idp": 0, "logout_done": 0,
                "metadata": str(entity_descriptor(c)), "logout_request_id": None}
    print(json.dumps({"port": httpd.server_address[1], "cert_file": cert_file,
                      "entity_id": args.entity_id, "acs": args.acs, "slo": args.slo}), flush=True)
    httpd.serve_forever()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        sys.stderr.write("sp: " + fmt % a + "\n")

    def send(self, code, body, ctype="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def json(self, obj, code=200):
        return self.send(code, json.dumps(obj))

    def http_info(self, info):
        loc = dict(info.get("headers", [])).get("Location")
        if loc:
            return self.send(302, "", "text/plain", [("Location", loc)])
        return self.send(200, info["data"], "text/html; charset=utf-8")

    def do_GET(self):
        st = self.server.sp
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        client = st["client"]
        try:
            if url.path == "/login":
                binding = BINDING_HTTP_POST if q.get("binding") == "post" else BINDING_HTTP_REDIRECT
                reqid, info = client.prepare_for_authenticate(relay_state=q.get("relay", ""),
                                                              binding=binding, sigalg=RSA_SHA256,
                                                              digest_alg=SHA256)
                with st["lock"]:
                    st["outstanding"][reqid] = "/"
                return self.http_info(info)
            if url.path == "/logout":
                res = client.global_logout(st["name_id"], sign_alg=RSA_SHA256)
                for _entity, (binding, info) in res.items():
                    loc = dict(info.get("headers", [])).get("Location", "")
                    sent = parse_qs(urlparse(loc).query).get("SAMLRequest")
                    if sent:
                        xml = zlib.decompress(base64.b64decode(sent[0]), -15).decode()
                        with st["lock"]:
                            st["logout_request_id"] = re.search(r' ID="([^"]+)"', xml).group(1)
                    return self.http_info(info)
                return self.json({"error": "nothing to log out"}, 400)
            if url.path == "/slo":
                if "SAMLResponse" in q:
                    r = client.parse_logout_request_response(q["SAMLResponse"], BINDING_HTTP_REDIRECT)
                    with st["lock"]:
                        st["logout_done"] += 1
                    return self.json({"logged_out": True,
                                      "in_response_to": r.response.in_response_to,
                                      "request_id": st["logout_request_id"],
                                      "status": r.response.status.status_code.value,
                                      "issuer": r.response.issuer.text})
                if "SAMLRequest" in q:
                    info = client.handle_logout_request(
                        q["SAMLRequest"], st["name_id"], BINDING_HTTP_REDIRECT, sign_alg=RSA_SHA256,
                        relay_state=q.get("RelayState"), sigalg=q.get("SigAlg"),
                        signature=q.get("Signature"))
                    with st["lock"]:
                        st["logged_out_by_idp"] += 1
                    return self.http_info(info)
            if url.path == "/metadata":
                return self.send(200, st["metadata"], "application/samlmetadata+xml")
            if url.path == "/state":
                with st["lock"]:
                    return self.json({"logged_out_by_idp": st["logged_out_by_idp"],
                                      "logout_done": st["logout_done"]})
            return self.json({"error": "not found"}, 404)
        except Exception as e:  # a test SP: say what went wrong, to the test
            traceback.print_exc()
            return self.json({"error": f"{type(e).__name__}: {e}"}, 400)

    def do_POST(self):
        st = self.server.sp
        if urlparse(self.path).path != "/acs":
            return self.json({"error": "not found"}, 404)
        n = int(self.headers.get("Content-Length", "0"))
        f = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
        raw = base64.b64decode(f.get("SAMLResponse", "")).decode(errors="replace")
        try:
            with st["lock"]:
                outstanding = dict(st["outstanding"])
            resp = st["client"].parse_authn_request_response(
                f["SAMLResponse"], BINDING_HTTP_POST, outstanding=outstanding)
            if resp is None:
                return self.json({"ok": False, "error": "no response", "xml": raw})
            a = resp.assertion
            st["name_id"] = resp.name_id
            return self.json({
                "ok": True,
                "ava": resp.ava,
                "name_id": resp.name_id.text,
                "in_response_to": resp.in_response_to,
                "issuer": resp.issuer(),
                "audience": [x.text for r in a.conditions.audience_restriction for x in r.audience],
                "session_index": a.authn_statement[0].session_index,
                "relay_state": f.get("RelayState"),
                "response_signed": resp.response.signature is not None,
                "assertion_signed": a.signature is not None,
                "xml": raw,
            })
        except Exception as e:
            status = None
            if "RequestDenied" in raw:
                status = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
            return self.json({"ok": False, "error": f"{type(e).__name__}: {e}",
                              "status": status, "assertion": "Assertion" in raw, "xml": raw})


if __name__ == "__main__":
    main()
