#!/usr/bin/env python3
"""A real SAML 2.0 IdP for portcullis's end-to-end tests: pysaml2 (IdentityPython)
with xmlsec1 signing, on loopback. It reads the SP's metadata from a file at
every request (the SP starts after the IdP, since the SP's configuration
names the IdP), validates the AuthnRequest with pysaml2, shows a login form,
and answers with the HTTP-POST binding page.

    idp.py --port 0 --accounts ACCOUNTS.json --sp-metadata SP.xml
           [--sign-response] [--no-sign-assertion] [--encrypt-assertion]
           [--want-signed-requests]

Prints one JSON line when ready: entity_id, sso_url, slo_url, metadata_url,
cert_file. ACCOUNTS.json (re-read at every login):
    {"alice": {"password": "pw", "email": "...", "name": "...", "groups": [...] | null}}
"groups": null (or absent) sends no groups attribute at all.
"""
import argparse
import datetime
import functools
import html
import json
import os
import secrets
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
import saml2.entity
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, sigver, xmldsig
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_BASIC, NameID
from saml2.server import Server

PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"

# pysaml2 hard-codes 3DES-CBC for assertion encryption. Okta, ADFS and Entra
# encrypt with AES (and portcullis refuses 3DES), so this IdP does too:
# AES-256-CBC content, RSA-OAEP (mgf1p) key transport, through xmlsec1.
_AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
saml2.entity.pre_encryption_part = functools.partial(sigver.pre_encryption_part, msg_enc=_AES256_CBC)
_encrypt_assertion = sigver.SecurityContext.encrypt_assertion


def _encrypt_assertion_aes(self, statement, enc_key, template, key_type=None, node_xpath=None):
    return _encrypt_assertion(self, statement, enc_key, template, key_type="aes-256", node_xpath=node_xpath)


sigver.SecurityContext.encrypt_assertion = _encrypt_assertion_aes


def make_key(d):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "saml-test-idp")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    kf, cf = os.path.join(d, "idp-key.pem"), os.path.join(d, "idp-cert.pem")
    with open(kf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cf, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return kf, cf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--accounts", required=True)
    ap.add_argument("--sp-metadata", required=True)
    ap.add_argument("--sign-response", action="store_true")
    ap.add_argument("--no-sign-assertion", action="store_true")
    ap.add_argument("--encrypt-assertion", action="store_true")
    ap.add_argument("--want-signed-requests", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="saml-idp-")
    key_file, cert_file = make_key(tmp)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    conf = {
        "entityid": f"{base}/metadata",
        "service": {"idp": {
            "endpoints": {
                "single_sign_on_service": [(f"{base}/sso", BINDING_HTTP_REDIRECT)],
                "single_logout_service": [(f"{base}/slo", BINDING_HTTP_REDIRECT)],
            },
            # Attribute names go on the wire as given (no OID conversion).
            "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                   "name_form": NAME_FORMAT_BASIC}},
            "want_authn_requests_signed": args.want_signed_requests,
            "name_id_format": [
                "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
                "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            ],
        }},
        "key_file": key_file,
        "cert_file": cert_file,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "metadata": {},
    }
    httpd.idp = {"conf": conf, "args": args, "pending": {}, "lock": threading.Lock(), "base": base}
    print(json.dumps({"entity_id": conf["entityid"], "sso_url": f"{base}/sso", "slo_url": f"{base}/slo",
                      "metadata_url": f"{base}/metadata", "cert_file": cert_file}), flush=True)
    httpd.serve_forever()


def server_for(state):
    """A pysaml2 Server over the SP metadata as it is now."""
    conf = dict(state["conf"])
    if os.path.exists(state["args"].sp_metadata):
        conf["metadata"] = {"local": [state["args"].sp_metadata]}
    c = IdPConfig()
    c.load(conf)
    return Server(config=c)


def page(title, body):
    return (f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        sys.stderr.write("idp: " + fmt % a + "\n")

    def send(self, code, body, ctype="text/html; charset=utf-8"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        state = self.server.idp
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/metadata":
                md = entity_descriptor(server_for(state).config)
                return self.send(200, str(md), "application/samlmetadata+xml")
            if url.path == "/sso":
                return self.sso(state, q)
            if url.path == "/slo":
                if "SAMLRequest" in q:
                    req = server_for(state).parse_logout_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
                    self.log_message("logout request for %s", req.message.name_id.text)
                return self.send(200, page("Logged out", "<p>logged out</p>"))
            return self.send(404, "not found", "text/plain")
        except Exception as e:  # a test IdP: say what went wrong, to the test
            return self.send(400, f"{type(e).__name__}: {e}", "text/plain")

    def sso(self, state, q):
        if "SAMLRequest" not in q:
            return self.send(400, "SAMLRequest missing", "text/plain")
        srv = server_for(state)
        # With want_authn_requests_signed, pysaml2 checks the redirect
        # binding's signature over the query (SAMLRequest, RelayState, SigAlg).
        req = srv.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                      relay_state=q.get("RelayState"), sigalg=q.get("SigAlg"),
                                      signature=q.get("Signature"))
        if req is None:
            return self.send(400, "AuthnRequest refused", "text/plain")
        msg = req.message
        key = secrets.token_urlsafe(16)
        fmt = msg.name_id_policy.format if msg.name_id_policy is not None else None
        with state["lock"]:
            state["pending"][key] = {"id": msg.id, "sp": msg.issuer.text,
                                     "acs": msg.assertion_consumer_service_url,
                                     "format": fmt, "relay": q.get("RelayState", "")}
        form = ('<form method="post" action="/login">'
                f'<input type="hidden" name="key" value="{key}">'
                '<label>User <input name="username" value=""></label>'
                '<label>Password <input name="password" type="password" value=""></label>'
                '<button type="submit">Log in</button></form>')
        return self.send(200, page("Test IdP login", form))

    def do_POST(self):
        state = self.server.idp
        if urlparse(self.path).path != "/login":
            return self.send(404, "not found", "text/plain")
        n = int(self.headers.get("Content-Length", "0"))
        f = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
        with state["lock"]:
            pend = state["pending"].pop(f.get("key", ""), None)
        if pend is None:
            return self.send(400, "unknown login", "text/plain")
        with open(state["args"].accounts) as fh:
            accounts = json.load(fh)
        user = accounts.get(f.get("username", ""))
        if user is None or user.get("password") != f.get("password"):
            with state["lock"]:
                state["pending"][f.get("key", "")] = pend
            return self.send(401, page("Login failed", "<p>wrong user name or password</p>"))
        try:
            return self.answer(state, pend, f["username"], user)
        except Exception as e:
            return self.send(500, f"{type(e).__name__}: {e}", "text/plain")

    def answer(self, state, pend, username, user):
        args = state["args"]
        srv = server_for(state)
        identity = {"email": [user["email"]], "displayName": [user["name"]]}
        if user.get("groups") is not None:
            identity["groups"] = list(user["groups"])
        fmt = pend["format"] or "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
        if fmt.endswith(":persistent"):
            text = "p-" + username
        elif fmt.endswith(":emailAddress"):
            text = user["email"]
        else:
            text = username
        resp = srv.create_authn_response(
            identity=identity,
            in_response_to=pend["id"],
            destination=pend["acs"],
            sp_entity_id=pend["sp"],
            name_id=NameID(format=fmt, text=text),
            authn={"class_ref": PASSWORD, "authn_auth": state["conf"]["entityid"]},
            sign_response=args.sign_response,
            sign_assertion=not args.no_sign_assertion,
            sign_alg=xmldsig.SIG_RSA_SHA256,
            digest_alg=xmldsig.DIGEST_SHA256,
            encrypt_assertion=args.encrypt_assertion,
            encrypt_cert_assertion=None,
        )
        http_args = srv.apply_binding(BINDING_HTTP_POST, str(resp), pend["acs"], pend["relay"],
                                      response=True)
        body = http_args["data"]
        return self.send(200, body if isinstance(body, str) else body.decode())


if __name__ == "__main__":
    main()
