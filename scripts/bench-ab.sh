#!/usr/bin/env bash
# Before and after: portcullis at another revision against the working tree,
# the same load from the same generator, runs interleaved (old, new, old,
# new, ...). For a change that should not move throughput (a restructuring),
# this is the direct comparison; the reference servers are in
# bench-radius.sh and bench-tacacs.sh.
#
#   scripts/bench-ab.sh REV          # e.g. scripts/bench-ab.sh 99315f0
#
# Each server pinned to SERVER_CPU (default 1), the generator to LOAD_CPU
# (default 0). Per round and side: RADIUS PAP (cached credential,
# Message-Authenticator, OUTSTANDING in flight), TACACS+ single-connect and
# TACACS+ a connection per session, DURATION s each. Prints every run and
# the medians with new/old ratios; raw JSON lines in target/bench-ab/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
rev=${1:?usage: scripts/bench-ab.sh REV}

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
OUTSTANDING=${OUTSTANDING:-32}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

out=$repo/target/bench-ab
work=$(mktemp -d)
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
log() { echo "bench-ab: $*" >&2; }

old_src=$out/src-$rev
if [ ! -d "$old_src" ]; then
	mkdir -p "$old_src"
	git archive "$rev" | tar -x -C "$old_src"
fi
log "building $rev and the working tree (release)"
(cd "$old_src" && CARGO_TARGET_DIR=$out/target-old cargo build --release --quiet --bin portcullis)
cargo build --release --quiet --bin portcullis --bin portcullis-load
load=$repo/target/release/portcullis-load

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# pc_config, start_portcullis, pc_addr: one server per side, each in its
# own scratch folder.
source "$repo/scripts/bench-lib.sh"
declare -A radius tacacs
for side in old new; do
	work_side=$work/$side
	mkdir -p "$work_side"
	(
		work=$work_side
		pc_config 0 >"$work/pc.toml"
	)
	if [ "$side" = old ]; then portcullis=$out/target-old/release/portcullis; else portcullis=$repo/target/release/portcullis; fi
	saved_work=$work
	work=$work_side
	start_portcullis "$work/pc.toml"
	pids+=("$pc_pid")
	radius[$side]=$(pc_addr radius_auth)
	tacacs[$side]=$(pc_addr tacacs)
	work=$saved_work
done

run() {
	local label=$1
	shift
	taskset -c "$LOAD_CPU" "$load" "$@" --duration "$DURATION" | tail -n 1 |
		python3 -c 'import json,sys; r=json.load(sys.stdin); r["label"]=sys.argv[1]; print(json.dumps(r))' "$label" >>"$results"
	tail -n 1 "$results" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   %-16s %8.0f/s  p99 %7.0f us" % (r["label"], r["rps"], r["p99_us"]))' >&2
}

log "$ROUNDS rounds x ${DURATION}s per side and load"
for r in $(seq 1 "$ROUNDS"); do
	for side in old new; do
		run "$side-radius" radius --secret testing123 --server "${radius[$side]}" --outstanding "$OUTSTANDING"
		run "$side-tacacs-single" tacacs --key tacacs123 --server "${tacacs[$side]}" --connections "$CONNECTIONS"
		run "$side-tacacs-session" tacacs --key tacacs123 --server "${tacacs[$side]}" --connections "$CONNECTIONS" --per-session
	done
done

python3 - "$results" "$rev" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"medians over {len(rows) // 6} rounds; old = {sys.argv[2]}, new = working tree")
for load in ("radius", "tacacs-single", "tacacs-session"):
    m = {s: statistics.median(r["rps"] for r in rows if r["label"] == f"{s}-{load}") for s in ("old", "new")}
    print(f"  {load:15} old {m['old']:9,.0f}/s  new {m['new']:9,.0f}/s  new/old {m['new'] / m['old']:.3f}")
PY
