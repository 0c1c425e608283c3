#!/usr/bin/env bash
# Reloads under load: PAP Access-Requests at RATE/s (open loop) while the
# configuration is reloaded RELOADS times, GAP seconds apart, one of the
# reloads invalid (refused, the old table stays). Every request must be
# answered: a reload must neither drop requests in flight nor send every
# login back to argon2.
#
#   scripts/reload-under-load.sh                 # the working tree
#   PORTCULLIS=path/to/portcullis scripts/reload-under-load.sh   # another build
#
# Prints the generator's result (lost = requests unanswered after its
# retries) and the server's reload counters. Loopback only; the server is
# pinned to SERVER_CPU (default 1), the generator to LOAD_CPU (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
RATE=${RATE:-4000}
RELOADS=${RELOADS:-11}
GAP=${GAP:-0.6}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin portcullis --bin portcullis-load
portcullis=${PORTCULLIS:-$repo/target/release/portcullis}
load=$repo/target/release/portcullis-load
work=$(mktemp -d)
pc_pid=
trap '[ -n "$pc_pid" ] && kill "$pc_pid" 2>/dev/null; rm -rf "$work"' EXIT
source "$repo/scripts/bench-lib.sh"

pc_config 0 >"$work/valid.toml"
cp "$work/valid.toml" "$work/pc.toml"
start_portcullis "$work/pc.toml"
radius=$(pc_addr radius_auth)
http=$(pc_addr http)
duration=$(python3 -c "print($RELOADS * $GAP + 2)")

taskset -c "$LOAD_CPU" "$load" radius --server "$radius" --rate "$RATE" \
	--outstanding 4096 --duration "$duration" --timeout-ms 1000 --retries 2 \
	>"$work/load.out" &
load_pid=$!
sleep 1
for k in $(seq 1 "$RELOADS"); do
	if [ "$k" -eq $(((RELOADS + 1) / 2)) ]; then
		echo 'this is not TOML [' >"$work/pc.toml"
	else
		# Each valid reload changes the table a little (a new rbac-aag
		# for the helpdesk role), so each is a new generation.
		sed "s|rbac_aag = \"Asia-Admin\"|rbac_aag = \"Asia-Admin-$k\"|" "$work/valid.toml" >"$work/pc.toml"
	fi
	kill -HUP "$pc_pid"
	sleep "$GAP"
done
wait "$load_pid"
echo "generator:"
sed 's/^/  /' "$work/load.out"
echo "server:"
curl -s "http://$http/metrics" | grep -E '^portcullis_(config_reloads_total|config_generation|argon2_verifications_total|credential_cache_(hits|misses)_total) ' | sed 's/^/  /'
