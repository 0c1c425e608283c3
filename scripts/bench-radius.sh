#!/usr/bin/env bash
# RADIUS side by side: FreeRADIUS 3.2 (the reference of
# ../shared/reference/freeradius) and portcullis, the same load from the same
# generator (target/release/portcullis-load), on the same machine, runs
# interleaved. Each server is pinned to ONE core (SERVER_CPU, default 1), the
# generator to another (LOAD_CPU, default 0).
#
#   scripts/bench-radius.sh            # about 2 minutes after the release build
#
# Measures, in order:
#   1. ROUNDS x (FreeRADIUS run, portcullis run): PAP Access-Requests with
#      Message-Authenticator, OUTSTANDING in flight (closed loop), DURATION s
#      each, after one warm-up request (portcullis's credential cache warm).
#      Medians, the ratio, latency percentiles, and each server's CPU use
#      (a server below ~95% was not the bottleneck: read the rate as a floor).
#   2. Each server at half of its own median peak (open loop, --rate): p99.
#   3. 512 outstanding: requests lost and kernel drops on the server port
#      (/proc/net/udp), both servers.
#   4. The cold path: COLD_USERS distinct users, each asked once, so every
#      request runs argon2 (bounded by argon2 on one core; reported as is).
#   5. portcullis's resident memory with 100,000 users configured (all
#      sharing ONE argon2 hash, which is fine for a memory measurement),
#      after start and after some load.
#
# Needs: Debian freeradius + freeradius-utils (installed if missing), python3,
# taskset. Every server it starts is stopped on exit. Raw JSON lines are kept
# in target/bench-radius/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUTSTANDING=${OUTSTANDING:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
SIDE_DURATION=${SIDE_DURATION:-5}   # half-peak, 512-outstanding, memory runs
COLD_USERS=${COLD_USERS:-500}
COLD_DURATION=${COLD_DURATION:-10}
MEM_USERS=${MEM_USERS:-100000}
FR_REF=${FR_REF:-$repo/../shared/reference/freeradius}
FR_PORT=18120                       # fixed by the reference's start.sh
PC_PORT=${PC_PORT:-28120}
SECRET=testing123

out=$repo/target/bench-radius
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
export FR_RUN=$work/freeradius
pc_pid=

cleanup() {
	set +e
	if [ -n "$pc_pid" ] && kill -0 "$pc_pid" 2>/dev/null; then
		kill -TERM "$pc_pid"
		wait "$pc_pid" 2>/dev/null
	fi
	[ -f "$FR_RUN/freeradius.pid" ] && "$FR_REF/stop.sh" >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

# --- prerequisites ------------------------------------------------------------

if ! command -v freeradius >/dev/null || ! command -v radclient >/dev/null; then
	log "installing freeradius freeradius-utils"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq freeradius freeradius-utils >/dev/null
fi
# Debian starts a system FreeRADIUS on 1812; it must not compete for CPU.
if pgrep -x freeradius >/dev/null; then
	for pid in $(pgrep -x freeradius); do
		if ! grep -qs "$FR_RUN" "/proc/$pid/cmdline"; then
			log "stopping system freeradius pid $pid"
			(service freeradius stop || kill -TERM "$pid") >/dev/null 2>&1 || true
		fi
	done
fi

log "building release binaries"
cargo build --release --quiet --bin portcullis --bin portcullis-load
load=$repo/target/release/portcullis-load
portcullis=$repo/target/release/portcullis
hz=$(getconf CLK_TCK)

# --- helpers -------------------------------------------------------------------

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
cpu_lines() { grep -E "^cpu($SERVER_CPU|$LOAD_CPU) " /proc/stat; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# run_load LABEL PID ARGS...: one generator run on LOAD_CPU; appends its JSON
# line, with the label and the server's CPU share, to $results.
run_load() {
	local label=$1 pid=$2
	shift 2
	local t0 t1 w0 w1 s0 s1 json
	t0=$(cpu_ticks "$pid")
	s0=$(cpu_lines)
	w0=$(date +%s%N)
	json=$(taskset -c "$LOAD_CPU" "$load" radius --secret "$SECRET" "$@" | tail -n 1)
	w1=$(date +%s%N)
	s1=$(cpu_lines)
	t1=$(cpu_ticks "$pid")
	python3 - "$label" "$t0" "$t1" "$hz" "$w0" "$w1" "$s0" "$s1" "$SERVER_CPU" "$json" >>"$results" <<'EOF'
import json, sys
label, t0, t1, hz, w0, w1, s0, s1, scpu, line = sys.argv[1:]
hz, wall = int(hz), (int(w1) - int(w0)) / 1e9
r = json.loads(line)
r["label"] = label
# The server process (all threads), in cores, over the generator's whole
# run. Kernel work done in softirq context (loopback delivery) is not in it.
r["server_cpu"] = (int(t1) - int(t0)) / hz / wall
# /proc/stat per CPU: user nice system idle iowait irq softirq steal ...
parse = lambda text: {l.split()[0]: list(map(int, l.split()[1:9])) for l in text.splitlines()}
a, b = parse(s0), parse(s1)
d = {c: [y - x for x, y in zip(a[c], b[c])] for c in a}
v = d["cpu" + scpu]
# How busy the server's core was: the server, softirqs, anything else.
r["server_core_busy"] = (sum(v) - v[3] - v[4]) / sum(v) if sum(v) else 0.0
# CPU time of whatever is neither server, generator nor interrupt work, in
# cores: other processes on this shared machine.
busy = sum(sum(x) - x[3] - x[4] - x[5] - x[6] for x in d.values()) / hz / wall
r["others_cpu"] = max(0.0, busy - r["server_cpu"] - (r.get("generator_cpu") or 0))
print(json.dumps(r))
EOF
	tail -n 1 "$results" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   %-20s %8.0f/s  p50 %7.0f µs  p99 %8.0f µs  lost %d  bad %d  CPU: server %3.0f%% (its core %3.0f%% busy), generator %3.0f%%, others %3.0f%%"
      % (r["label"], r["rps"], r["p50_us"], r["p99_us"], r["lost"], r["bad"],
         100 * r["server_cpu"], 100 * r["server_core_busy"], 100 * (r.get("generator_cpu") or 0),
         100 * r["others_cpu"]))' >&2
}

# pc_config, start_portcullis, pc_addr.
source "$repo/scripts/bench-lib.sh"

stop_portcullis() {
	kill -TERM "$pc_pid"
	wait "$pc_pid" 2>/dev/null || true
	pc_pid=
}

pc_metric() {
	curl -s "http://$(pc_addr http)/metrics" | awk -v s="$1" '$1 == s {print $2}'
}

# --- 1. interleaved peak runs ----------------------------------------------------

log "starting FreeRADIUS (CPU $SERVER_CPU) and portcullis (CPU $SERVER_CPU)"
FR_CPUS=$SERVER_CPU "$FR_REF/start.sh" >&2
fr_pid=$(cat "$FR_RUN/freeradius.pid")
pc_config "$PC_PORT" >"$work/pc.toml"
start_portcullis "$work/pc.toml"

# FreeRADIUS 3.2.1 signs replies with the Response Authenticator only (no
# Message-Authenticator); the generator accepts that from it and verifies
# whatever is present. portcullis's replies must carry a valid one.
fr_args=(--server "127.0.0.1:$FR_PORT" --reply-ma-optional)
pc_args=(--server "127.0.0.1:$PC_PORT")

log "peak: $ROUNDS rounds x ${DURATION}s, $OUTSTANDING outstanding"
for r in $(seq 1 "$ROUNDS"); do
	run_load "freeradius-peak" "$fr_pid" "${fr_args[@]}" --outstanding "$OUTSTANDING" --duration "$DURATION"
	run_load "portcullis-peak" "$pc_pid" "${pc_args[@]}" --outstanding "$OUTSTANDING" --duration "$DURATION"
done

median_rps() {
	python3 - "$1" "$results" <<'EOF'
import json, statistics, sys
label, path = sys.argv[1:]
print(round(statistics.median(r["rps"] for r in map(json.loads, open(path)) if r["label"] == label)))
EOF
}

# --- 2. half of peak, open loop ---------------------------------------------------

fr_half=$(( $(median_rps freeradius-peak) / 2 ))
pc_half=$(( $(median_rps portcullis-peak) / 2 ))
log "half of peak: FreeRADIUS ${fr_half}/s, portcullis ${pc_half}/s (open loop)"
run_load "freeradius-half" "$fr_pid" "${fr_args[@]}" --rate "$fr_half" --outstanding 256 --duration "$SIDE_DURATION"
run_load "portcullis-half" "$pc_pid" "${pc_args[@]}" --rate "$pc_half" --outstanding 256 --duration "$SIDE_DURATION"

# --- 3. 512 outstanding: kernel drops ----------------------------------------------

log "512 outstanding"
run_load "freeradius-512" "$fr_pid" "${fr_args[@]}" --outstanding 512 --duration "$SIDE_DURATION"
run_load "portcullis-512" "$pc_pid" "${pc_args[@]}" --outstanding 512 --duration "$SIDE_DURATION"

"$FR_REF/stop.sh" >/dev/null
stop_portcullis

# --- 4. cold path -------------------------------------------------------------------

log "cold path: hashing $COLD_USERS users"
{ pc_config "$PC_PORT"; "$load" radius-users --count "$COLD_USERS"; } >"$work/pc-cold.toml"
start_portcullis "$work/pc-cold.toml"
# Each user asked once (--max-requests), so no request can hit the cache.
run_load "portcullis-cold" "$pc_pid" "${pc_args[@]}" --users "$COLD_USERS" --max-requests "$COLD_USERS" \
	--warmup 0 --outstanding "$OUTSTANDING" --duration "$COLD_DURATION" --timeout-ms 10000 --retries 0
cold_argon2=$(pc_metric portcullis_argon2_verifications_total)
cold_hits=$(pc_metric portcullis_credential_cache_hits_total)
stop_portcullis

# --- 5. memory with 100k users --------------------------------------------------------

log "memory: $MEM_USERS users"
{ pc_config "$PC_PORT"; "$load" radius-users --count "$MEM_USERS" --shared-password pw-shared; } >"$work/pc-mem.toml"
start_portcullis "$work/pc-mem.toml"
rss_start=$(rss_kib "$pc_pid")
run_load "portcullis-mem-load" "$pc_pid" "${pc_args[@]}" --user user00042 --password pw-shared \
	--outstanding "$OUTSTANDING" --duration "$SIDE_DURATION"
rss_load=$(rss_kib "$pc_pid")
stop_portcullis

# --- summary ---------------------------------------------------------------------

python3 - "$results" "$ROUNDS" "$DURATION" "$OUTSTANDING" "$SERVER_CPU" "$LOAD_CPU" \
	"$COLD_USERS" "$cold_argon2" "$cold_hits" "$MEM_USERS" "$rss_start" "$rss_load" <<'EOF'
import json, statistics, sys
(path, rounds, duration, outstanding, scpu, lcpu, cold_users, cold_argon2, cold_hits,
 mem_users, rss_start, rss_load) = sys.argv[1:]
rs = [json.loads(l) for l in open(path)]
by = lambda label: [r for r in rs if r["label"] == label]
med = lambda label, k: statistics.median(r[k] for r in by(label))
one = lambda label: by(label)[0]
fr, pc = "freeradius-peak", "portcullis-peak"
print()
print(f"RADIUS PAP + Message-Authenticator, {outstanding} outstanding, {rounds} interleaved rounds of {duration} s;")
print(f"each server pinned to CPU {scpu}, load generator (portcullis-load) on CPU {lcpu}")
print()
print(f"{'':34} {'FreeRADIUS 3.2':>16} {'portcullis':>16}")
row = lambda name, a, b: print(f"{name:34} {a:>16} {b:>16}")
row("Access-Accepts/s, median", f"{med(fr, 'rps'):,.0f}", f"{med(pc, 'rps'):,.0f}")
row("  per round", " ".join(f"{r['rps']/1000:.1f}k" for r in by(fr)), " ".join(f"{r['rps']/1000:.1f}k" for r in by(pc)))
row("  ratio portcullis / FreeRADIUS", "", f"{med(pc, 'rps') / med(fr, 'rps'):.2f}x")
for k, n in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
    row(f"latency {n} at peak (µs), median", f"{med(fr, k):,.0f}", f"{med(pc, k):,.0f}")
row("server CPU during peak runs, median", f"{100 * med(fr, 'server_cpu'):.0f}%", f"{100 * med(pc, 'server_cpu'):.0f}%")
row("  the server's core busy (with softirq)", f"{100 * med(fr, 'server_core_busy'):.0f}%", f"{100 * med(pc, 'server_core_busy'):.0f}%")
row("generator CPU during peak runs, median", f"{100 * med(fr, 'generator_cpu'):.0f}%", f"{100 * med(pc, 'generator_cpu'):.0f}%")
row("other processes' CPU, median (cores)", f"{med(fr, 'others_cpu'):.2f}", f"{med(pc, 'others_cpu'):.2f}")
row("lost / bad replies (all peak runs)", f"{sum(r['lost'] for r in by(fr))} / {sum(r['bad'] for r in by(fr))}",
    f"{sum(r['lost'] for r in by(pc))} / {sum(r['bad'] for r in by(pc))}")
h_fr, h_pc = one("freeradius-half"), one("portcullis-half")
row("half of own peak, open loop (/s)", f"{h_fr['target_rate']:,.0f}", f"{h_pc['target_rate']:,.0f}")
row("  p50 / p99 / p99.9 (µs)", f"{h_fr['p50_us']:.0f}/{h_fr['p99_us']:.0f}/{h_fr['p999_us']:.0f}",
    f"{h_pc['p50_us']:.0f}/{h_pc['p99_us']:.0f}/{h_pc['p999_us']:.0f}")
o_fr, o_pc = one("freeradius-512"), one("portcullis-512")
row("512 outstanding: Accepts/s", f"{o_fr['rps']:,.0f}", f"{o_pc['rps']:,.0f}")
drops = lambda r: "n/a" if r["server_kernel_drops"] is None else str(r["server_kernel_drops"])
row("  kernel drops (server port) / lost", f"{drops(o_fr)} / {o_fr['lost']}", f"{drops(o_pc)} / {o_pc['lost']}")
c = one("portcullis-cold")
print()
print(f"portcullis cold path ({cold_users} distinct users, every request a cache miss -> argon2 on one core):")
print(f"  {c['rps']:,.1f} Accepts/s over {c['duration_s']:.1f} s ({c['ok']} accepted), p50 {c['p50_us']/1000:,.0f} ms, "
      f"p99 {c['p99_us']/1000:,.0f} ms, lost {c['lost']}, server CPU {100 * c['server_cpu']:.0f}%;")
print(f"  argon2 verifications {cold_argon2}, credential-cache hits {cold_hits}")
m = one("portcullis-mem-load")
print(f"portcullis resident memory with {int(mem_users):,} users: {int(rss_start)/1024:,.0f} MiB after start, "
      f"{int(rss_load)/1024:,.0f} MiB after {m['duration_s']:.0f} s at {m['rps']:,.0f} Accepts/s")
print()
print(f"raw results: {path}")
EOF
