#!/usr/bin/env bash
# Attributes an open-loop TACACS+ run's latency tail: portcullis on the demo
# configuration pinned to SERVER_CPU, the generator on LOAD_CPU with
# --trace, and (when tracefs is writable: root) the kernel's sched_switch
# events over the same run, so each episode of slow logins can be matched
# with whatever held each core at the time (scripts/tacacs-tail.py).
#
#   scripts/tacacs-tail.sh [RATE] [SECONDS]      # default 37000/s for 5 s
#
# Files are kept in target/tacacs-tail/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
RATE=${1:-37000}
SECS=${2:-5}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
out=$repo/target/tacacs-tail
mkdir -p "$out"
work=$(mktemp -d /tmp/portcullis-tail.XXXXXX)
tfs=/sys/kernel/tracing
pid=
traced=
cleanup() {
	set +e
	[ -n "$traced" ] && { echo 0 >"$tfs/tracing_on"; echo 0 >"$tfs/events/sched/sched_switch/enable"; echo local >"$tfs/trace_clock"; }
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet --bin portcullis --bin portcullis-load
bin=${CARGO_TARGET_DIR:-$repo/target}/release
portcullis=$bin/portcullis
# pc_config, start_portcullis, pc_addr.
source "$repo/scripts/bench-lib.sh"
pc_config >"$work/pc.toml"
start_portcullis "$work/pc.toml"
pid=$pc_pid
addr=$(pc_addr tacacs)

if [ -w "$tfs/tracing_on" ]; then
	echo 0 >"$tfs/tracing_on"
	echo >"$tfs/trace"
	echo 65536 >"$tfs/buffer_size_kb"
	# The generator's --trace times are CLOCK_MONOTONIC.
	echo mono >"$tfs/trace_clock"
	echo 1 >"$tfs/events/sched/sched_switch/enable"
	traced=1
else
	echo "tracefs not writable: timeline only, no per-core attribution" >&2
fi
gen=(taskset -c "$LOAD_CPU" "$bin/portcullis-load" tacacs --server "$addr" --rate "$RATE"
	--connections 256 --duration "$SECS" --trace "$out/logins.csv")
if [ -n "$traced" ]; then
	# Tracing starts after the generator's warm-up would be ideal; the
	# buffer is large enough for both.
	echo 1 >"$tfs/tracing_on"
fi
"${gen[@]}" | tail -n 1 >"$out/result.json"
if [ -n "$traced" ]; then
	echo 0 >"$tfs/tracing_on"
	cat "$tfs/trace" >"$out/sched.txt"
fi
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f logins/s, p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs" % (r["rps"], r["p50_us"], r["p99_us"], r["p999_us"]))' "$out/result.json"
python3 scripts/tacacs-tail.py "$out/logins.csv" ${traced:+"$out/sched.txt"}
