#!/usr/bin/env bash
# Installs what the test suite needs beyond cargo: independent RADIUS and
# TACACS+ clients (Debian freeradius-utils, PyPI pyrad and tacacs_plus), the
# Debian FreeRADIUS dictionaries (real-world input for our dictionary loader),
# a real OpenID Provider (npm oidc-provider, pinned by tests/idp/package-lock.json),
# a real SAML IdP (PyPI pysaml2 with Debian's xmlsec1, tests/saml-idp/; xmlsec1
# also signs the SAML corpus in tests/data/saml/), a real LDAP server (Debian
# slapd and ldap-utils, started by the tests themselves),
# Debian postgresql (the shared store's tests start their own clusters),
# and cargo-fuzz for the fuzz smoke runs. Idempotent: it only installs what is
# missing, so a second run costs seconds.
set -euo pipefail

need_apt=()
command -v radclient >/dev/null 2>&1 || need_apt+=(freeradius-utils)
[ -f /usr/share/freeradius/dictionary ] || need_apt+=(freeradius-common)
command -v xmlsec1 >/dev/null 2>&1 || need_apt+=(xmlsec1)
# Debian postgresql for the shared-store tests (each test runs its own
# cluster, as the `postgres` user the package creates when tests run as root).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-test-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# A real OpenLDAP server and its tools for the directory tests, which start
# their own slapd on loopback. The package's own server must not run: no
# configuration is generated (debconf), and invoke-rc.d is told not to start
# it while the package installs.
if ! [ -x /usr/sbin/slapd ] || ! command -v ldapmodify >/dev/null 2>&1; then
    echo "install-test-deps: apt-get install slapd ldap-utils"
    export DEBIAN_FRONTEND=noninteractive
    echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

py_missing=()
python3 -c 'import pyrad' 2>/dev/null || py_missing+=("pyrad==2.6.0")
python3 -c 'import tacacs_plus' 2>/dev/null || py_missing+=("tacacs_plus==2.6")
python3 -c 'import saml2' 2>/dev/null || py_missing+=("pysaml2==7.5.5")
# pysaml2 is also the console (SP) of portcullis's SAML IdP (tests/e2e/saml_sp.py).
# The console side of portcullis's OAuth and JWT modes (tests/e2e/console.rs).
python3 -c 'import authlib' 2>/dev/null || py_missing+=("authlib==1.3.2")
python3 -c 'import jwt' 2>/dev/null || py_missing+=("PyJWT==2.10.1")
if [ ${#py_missing[@]} -gt 0 ]; then
    echo "install-test-deps: pip install ${py_missing[*]}"
    python3 -m pip install --quiet --disable-pip-version-check "${py_missing[@]}"
fi

# A real OpenID Provider (npm oidc-provider) for the OIDC interop tests.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: apt-get install nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
"$(dirname "$0")/../tests/idp/install.sh"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "install-test-deps: cargo install cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi
echo "install-test-deps: ok"
