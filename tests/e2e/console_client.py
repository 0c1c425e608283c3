#!/usr/bin/env python3
"""A console's side of portcullis's OAuth and JWT modes, with libraries
nobody on the team wrote: authlib (OAuth client, OIDC ID token checks) and
PyJWT (JWT mode). A scripted browser (requests, no redirects followed
blindly) logs the person in at portcullis. Prints one JSON object."""

import argparse
import json
import re
import sys
import time
from urllib.parse import parse_qs, urljoin, urlparse

import jwt as pyjwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.jose import JsonWebKey
from authlib.jose import jwt as jose_jwt
from authlib.oidc.core import CodeIDToken, IDToken


def browse(b, url, user, password, stop, via=None):
    """Follows redirects until one points at `stop`; logs in on the way.
    Returns the final URL, or a dict describing the page it ended on."""
    for _ in range(20):
        r = b.get(url, allow_redirects=False)
        if r.is_redirect:
            url = urljoin(url, r.headers["Location"])
            if url.startswith(stop):
                return url
            continue
        m = re.search(r'name="rid" value="([^"]+)"', r.text)
        if r.status_code == 200 and via and via in r.text:
            url = urljoin(url, via)
            via = None
            continue
        if r.status_code == 200 and m and user:
            r = b.post(
                urljoin(url, "/oauth2/login"),
                data={"rid": m.group(1), "username": user, "password": password},
                allow_redirects=False,
            )
            user = None
            if r.is_redirect:
                url = urljoin(url, r.headers["Location"])
                if url.startswith(stop):
                    return url
                continue
        return {"status": r.status_code, "page": r.text[:4000]}
    return {"status": 0, "page": "redirect loop"}


def meta(base):
    return requests.get(base + "/.well-known/openid-configuration", timeout=10).json()


def verify_id_token(m, token, client_id, nonce=None, code=True):
    keys = JsonWebKey.import_key_set(requests.get(m["jwks_uri"], timeout=10).json())
    opts = {"iss": {"essential": True, "value": m["issuer"]}, "aud": {"essential": True, "value": client_id}}
    params = {"client_id": client_id}
    if nonce:
        params["nonce"] = nonce
    claims = jose_jwt.decode(
        token, keys, claims_cls=CodeIDToken if code else IDToken,
        claims_options=opts, claims_params=params)
    claims.validate(leeway=5)
    return dict(claims)


def client(a, m):
    return OAuth2Session(
        a.client_id, a.client_secret, scope=a.scope, redirect_uri=a.redirect_uri,
        code_challenge_method="S256", token_endpoint_auth_method=a.auth_method)


def cmd_login(a):
    m = meta(a.base)
    c = client(a, m)
    verifier = generate_token(64)
    nonce = generate_token(20)
    uri, state = c.create_authorization_url(
        m["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
    b = requests.Session()
    landed = browse(b, uri, a.user, a.password, a.redirect_uri, a.via)
    if isinstance(landed, dict):
        return {"page": landed}
    q = parse_qs(urlparse(landed).query)
    if "error" in q:
        return {"error": q["error"][0], "state_ok": q.get("state", [""])[0] == state}
    try:
        tok = c.fetch_token(m["token_endpoint"], authorization_response=landed,
                            code_verifier=verifier, state=state)
    except OAuthError as e:
        return {"token_error": e.error}
    claims = verify_id_token(m, tok["id_token"], a.client_id, nonce=nonce)
    return {"claims": claims, "refresh_token": tok.get("refresh_token"),
            "access_token": tok["access_token"], "id_token": tok["id_token"],
            "code": q["code"][0], "issuer": m["issuer"]}


def cmd_refresh(a):
    m = meta(a.base)
    c = client(a, m)
    try:
        tok = c.refresh_token(m["token_endpoint"], refresh_token=a.token)
    except OAuthError as e:
        return {"error": e.error}
    claims = verify_id_token(m, tok["id_token"], a.client_id, code=False)
    return {"claims": claims, "refresh_token": tok.get("refresh_token"),
            "access_token": tok["access_token"]}


def cmd_userinfo(a):
    m = meta(a.base)
    r = requests.get(m["userinfo_endpoint"], headers={"Authorization": "Bearer " + a.token}, timeout=10)
    return {"status": r.status_code, "body": r.json() if r.status_code == 200 else None}


def cmd_revoke(a):
    m = meta(a.base)
    c = client(a, m)
    r = c.revoke_token(m["revocation_endpoint"], token=a.token)
    return {"status": r.status_code}


def cmd_jwt(a):
    """JWT mode: the console's consuming URL gets the tokens; PyJWT checks
    them with the HMAC secret or the JWKS, within a validation window."""
    b = requests.Session()
    state = generate_token(16)
    start = a.base + "/console/" + a.console + "/jwt?state=" + state
    landed = browse(b, start, a.user, a.password, a.consume_url)
    if isinstance(landed, dict):
        return {"page": landed}
    q = {k: v[0] for k, v in parse_qs(urlparse(landed).query).items()}
    window = a.window * 60
    opts = {"require": ["iss", "aud", "exp", "iat", "nbf"]}
    if a.alg.startswith("HS"):
        key = a.secret.encode()
    else:
        key = pyjwt.PyJWKClient(a.jwks_url).get_signing_key_from_jwt(q["id_token"]).key
    out = {"params": sorted(q.keys()), "state_ok": q.get("state") == state,
           "token_type": q.get("token_type"), "expires_in": q.get("expires_in")}
    for name in ("id_token", "access_token"):
        claims = pyjwt.decode(q[name], key, algorithms=[a.alg], audience=a.audience,
                              issuer=a.issuer, leeway=window, options=opts)
        if claims["exp"] - window > time.time() + 86400:
            raise SystemExit("exp beyond the validation window")
        out[name] = claims
    # A wrong key must not verify.
    try:
        pyjwt.decode(q["id_token"], b"x" * 40 if a.alg.startswith("HS") else "wrong",
                     algorithms=[a.alg], audience=a.audience)
        out["wrong_key_accepted"] = True
    except Exception:
        out["wrong_key_accepted"] = False
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.add_argument("--base", required=True)
    p.add_argument("--client-id", default="orchestrator")
    p.add_argument("--client-secret", default="orchestrator-secret-1")
    p.add_argument("--redirect-uri", default="http://127.0.0.1:9600/gms/rest/authentication/oauth/redirect")
    p.add_argument("--scope", default="openid offline_access email")
    p.add_argument("--auth-method", default="client_secret_basic")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--via", help="a login page link to follow instead of the form")
    p.add_argument("--token")
    p.add_argument("--console", default="orchestrator-jwt")
    p.add_argument("--consume-url", default="http://127.0.0.1:9601/jwt/consume")
    p.add_argument("--alg", default="HS256")
    p.add_argument("--secret", default="orchestrator-jwt-secret-1-0123456789")
    p.add_argument("--jwks-url")
    p.add_argument("--audience", default="orchestrator-jwt")
    p.add_argument("--issuer")
    p.add_argument("--window", type=int, default=2, help="validation window, minutes")
    a = p.parse_args()
    f = {"login": cmd_login, "refresh": cmd_refresh, "userinfo": cmd_userinfo,
         "revoke": cmd_revoke, "jwt": cmd_jwt}[a.command]
    print(json.dumps(f(a)))


if __name__ == "__main__":
    sys.exit(main())
