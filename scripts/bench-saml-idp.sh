#!/usr/bin/env bash
# SAML IdP side by side: portcullis (release build, demo configuration,
# console orchestrator-saml) and pysaml2's IdP (tests/saml-idp/idp.py,
# xmlsec1 signing), the same pysaml2 SP's AuthnRequests, the same client,
# in the same run (scripts/bench-saml-idp.py says what is measured).
#
#   scripts/bench-saml-idp.sh              # SECONDS=10 per measurement
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
SERVER_CPU=${SERVER_CPU:-1}
portcullis=${PORTCULLIS:-$repo/target/release/portcullis}
trap 'kill ${pc_pid:-} ${idp_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=scripts/bench-lib.sh
. "$repo/scripts/bench-lib.sh"
[ -x "$portcullis" ] || cargo build --release --bin portcullis
pc_config >"$work/pc.toml"
start_portcullis "$work/pc.toml"
http=$(pc_addr http)
echo '{"alice": {"password": "alice-pass-1", "email": "alice@example.net", "name": "Alice", "groups": ["netadmins"]}}' >"$work/accounts.json"
taskset -c "$SERVER_CPU" python3 "$repo/tests/saml-idp/idp.py" --port 0 --accounts "$work/accounts.json" \
	--sp-metadata "$work/sp.xml" --sign-response >"$work/idp.ready" 2>"$work/idp.log" &
idp_pid=$!
for _ in $(seq 1 100); do [ -s "$work/idp.ready" ] && break; sleep 0.1; done
idp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata_url"].rsplit("/",1)[0])' "$work/idp.ready")
PYTHONWARNINGS=ignore python3 "$repo/scripts/bench-saml-idp.py" --portcullis "http://$http" --pysaml2 "$idp" \
	--pysaml2-sp-md "$work/sp.xml" --seconds "${SECONDS_EACH:-10}"
