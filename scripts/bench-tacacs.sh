#!/usr/bin/env bash
# TACACS+ side by side: tac_plus-ng (Marc Huber's event-driven-servers, the
# reference of ../shared/reference/tac_plus-ng) and portcullis, the same load
# from the same generator (portcullis-load tacacs), on the same machine, runs
# interleaved. Each server is pinned to ONE core (SERVER_CPU, default 1), the
# generator to another (LOAD_CPU, default 0).
#
#   scripts/bench-tacacs.sh            # about 9 minutes after the release build
#   ROUNDS=1 DURATION=3 HALF_ROUNDS=1 SIDE_DURATION=3 RT_PASS=0 scripts/bench-tacacs.sh
#                                      # a quick check, about a minute
#
# One login, for both servers: a PAP authentication START for alice
# (alice-pass-1) answered PASS, then a shell authorization (service=shell
# cmd=) answered PASS_ADD with priv-lvl=15, role=admin,
# rbac-roles=OverlayAdmin, rbac-aag=Global; the generator checks every reply
# (session, sequence number, de-obfuscated body, status, those four AV
# pairs). tac_plus-ng compares a cleartext password from its configuration
# (`password login = clear ...`, `password pap = login`). portcullis holds an
# argon2id hash: the first login (the generator's warm-up) runs argon2 and
# every later one is answered from its verified-credential cache, its normal
# warm path (RADIUS's bench-radius.sh measures the cold path).
#
# Measures, in order:
#   1. ROUNDS x (tac_plus-ng run, portcullis run) in single-connection mode
#      (each of CONNECTIONS connections carries one login after another),
#      then the same with a new TCP connection per session (two per login):
#      closed loop, CONNECTIONS logins in flight, DURATION s each. Medians,
#      the ratio, latency, and each server's CPU use (all its processes; a
#      server below ~95% was not the bottleneck: read the rate as a floor)
#      and the generator's (near 100%: the generator set the pace).
#   2. Each server at half of its own median peak, both modes (open loop,
#      --rate; latency from the scheduled start, both exchanges): HALF_ROUNDS
#      interleaved rounds, median p99. Then (RT_PASS=1, the default, when
#      chrt is allowed) the same again with both servers and the generator
#      under SCHED_FIFO: on this VM, threads outside the benchmark (the
#      sandbox's agent at nice -10, the kernel's kdamond) take a pinned core
#      for several milliseconds now and then, and at a steady rate every such
#      stall becomes a queue that later logins wait behind. The FIFO pass
#      shows the servers' own tail; the default pass is what an ordinary
#      deployment on this machine would see.
#
# Every generator run first opens all its connections (single-connect) and
# runs --warmup-secs of the same load unmeasured (see portcullis-load).
#
# On loopback the kernel's TCP work for a packet runs on the sender's core,
# so the generator's core also carries the servers' receive side, and in
# per-session mode the whole TCP handshake (connect is most of the
# generator's cost there). Both servers get the same help.
#
# Needs: python3, taskset, ss, and tac_plus-ng (built with the reference's
# build.sh from TP_SRC if TAC_PLUS_NG is missing). Every server it starts is
# stopped on exit. Raw JSON lines are kept in target/bench-tacacs/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
SIDE_DURATION=${SIDE_DURATION:-5}     # half-peak runs
HALF_ROUNDS=${HALF_ROUNDS:-3}
RT_PASS=${RT_PASS:-1}
HALF_CAP=${HALF_CAP:-256}             # logins in flight at most, open loop
TP_REF=${TP_REF:-$repo/../shared/reference/tac_plus-ng}
TP_SRC=${TP_SRC:-/work/.mirror/MarcJHuber+event-driven-servers/repo}
TP_BUILD=${TP_BUILD:-/tmp/portcullis-peers/tac_plus-ng-build}
TAC_PLUS_NG=${TAC_PLUS_NG:-$TP_BUILD/inst/sbin/tac_plus-ng}
TP_RADIUS_DICT=${TP_RADIUS_DICT:-$TP_BUILD/src/tac_plus-ng/sample/radius-dict.cfg}
TP_ADDR=127.0.0.1:14949             # fixed by the reference's configuration
KEY=tacacs123
target_dir=${CARGO_TARGET_DIR:-$repo/target}

out=$repo/target/bench-tacacs
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d /tmp/portcullis-bench-tacacs.XXXXXX)
export TP_RUN=$work/tac_plus-ng
pc_pid=

cleanup() {
	set +e
	if [ -n "$pc_pid" ] && kill -0 "$pc_pid" 2>/dev/null; then
		kill -TERM "$pc_pid"
		wait "$pc_pid" 2>/dev/null
	fi
	[ -f "$TP_RUN/tac_plus-ng.pid" ] && "$TP_REF/stop.sh" >/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

# --- prerequisites ------------------------------------------------------------

if [ ! -x "$TAC_PLUS_NG" ]; then
	log "building tac_plus-ng from $TP_SRC (about 30 s)"
	vars=$("$TP_REF/build.sh" "$TP_SRC" "$TP_BUILD")
	TAC_PLUS_NG=$(sed -n 's/^TAC_PLUS_NG=//p' <<<"$vars")
	TP_RADIUS_DICT=$(sed -n 's/^TP_RADIUS_DICT=//p' <<<"$vars")
fi
export TAC_PLUS_NG TP_RADIUS_DICT
tp_version=$(git -C "$TP_BUILD/src" log -1 --format='%h %cs' 2>/dev/null || echo unknown)
if ss -ltn | grep -q " $TP_ADDR "; then
	echo "something already listens on $TP_ADDR (another tac_plus-ng?); stop it first" >&2
	exit 1
fi

log "building release binaries"
cargo build --release --quiet --bin portcullis --bin portcullis-load
load=$target_dir/release/portcullis-load
portcullis=$target_dir/release/portcullis
hz=$(getconf CLK_TCK)

# --- helpers -------------------------------------------------------------------

# CPU ticks (user + system) of PID and all its descendants, plus children
# already reaped: tac_plus-ng's spawnd hands connections to worker processes.
tree_ticks() {
	python3 - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
procs = {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    # ppid, utime, stime, cutime, cstime (fields 4, 14-17 of proc(5))
    procs[int(d)] = (int(f[1]), sum(int(x) for x in f[11:15]))
total, todo = 0, [root]
while todo:
    p = todo.pop()
    if p in procs:
        total += procs[p][1]
        todo.extend(c for c, (pp, _) in procs.items() if pp == p)
print(total)
EOF
}
cpu_lines() { grep -E "^cpu($SERVER_CPU|$LOAD_CPU) " /proc/stat; }

# Scheduling policy of the generator runs: empty (SCHED_OTHER) or chrt.
gen_prefix=()

# set_policy PID other|fifo: every thread of PID and its descendants
# (tac_plus-ng's workers are child processes; later ones inherit it).
set_policy() {
	local flag=(-o -p 0)
	[ "$2" = fifo ] && flag=(-f -p 10)
	# A thread may end meanwhile: its chrt fails, harmlessly.
	python3 - "$1" <<'EOF' | while read -r tid; do chrt "${flag[@]}" "$tid" 2>/dev/null || true; done
import os, sys
root = int(sys.argv[1])
kids = {}
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
todo = [root]
while todo:
    p = todo.pop()
    todo.extend(kids.get(p, []))
    try:
        print(*os.listdir(f"/proc/{p}/task"), sep="\n")
    except OSError:
        pass
EOF
}

# run_load LABEL PID ARGS...: one generator run on LOAD_CPU; appends its JSON
# line, with the label and the server's CPU share, to $results.
# portcullis's own view: its kernel-receive-to-reply histogram
# (portcullis_tacacs_kernel_to_reply_seconds) as JSON {le: count}; {} for
# tac_plus-ng, which has none.
k2r() {
	[ "$1" = "$pc_pid" ] || { echo '{}'; return; }
	python3 - "$pc_metrics" <<'EOF'
import json, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
out = {}
for line in text.splitlines():
    if line.startswith("portcullis_tacacs_kernel_to_reply_seconds_bucket{le=\""):
        le = line.split('"')[1]
        out[le] = float(line.rsplit(" ", 1)[1])
print(json.dumps(out))
EOF
}

run_load() {
	local label=$1 pid=$2
	shift 2
	local t0 t1 w0 w1 s0 s1 json k0 k1
	k0=$(k2r "$pid")
	t0=$(tree_ticks "$pid")
	s0=$(cpu_lines)
	w0=$(date +%s%N)
	json=$(taskset -c "$LOAD_CPU" "${gen_prefix[@]}" "$load" tacacs --key "$KEY" \
		--user alice --password alice-pass-1 \
		--expect-arg priv-lvl=15 --expect-arg role=admin \
		--expect-arg rbac-roles=OverlayAdmin --expect-arg rbac-aag=Global \
		"$@" | tail -n 1)
	w1=$(date +%s%N)
	s1=$(cpu_lines)
	t1=$(tree_ticks "$pid")
	k1=$(k2r "$pid")
	python3 - "$label" "$t0" "$t1" "$hz" "$w0" "$w1" "$s0" "$s1" "$SERVER_CPU" "$json" "$k0" "$k1" >>"$results" <<'EOF'
import json, sys
label, t0, t1, hz, w0, w1, s0, s1, scpu, line, k0, k1 = sys.argv[1:]
hz, wall = int(hz), (int(w1) - int(w0)) / 1e9
r = json.loads(line)
r["label"] = label
# Server side, from its histogram: the bucket bound under which 99% of this
# run's requests (both exchanges of each login, the generator's warm-up
# included) went from the kernel receiving them to the reply being written.
k0, k1 = json.loads(k0), json.loads(k1)
if k1:
    les = sorted(k1, key=lambda le: float("inf") if le == "+Inf" else float(le))
    n = k1["+Inf"] - k0.get("+Inf", 0)
    for q, key in ((0.99, "server_k2r_p99_le_us"), (0.999, "server_k2r_p999_le_us")):
        for le in les:
            if n and k1[le] - k0.get(le, 0) >= q * n:
                r[key] = float("inf") if le == "+Inf" else float(le) * 1e6
                break
# The server's processes (all threads), in cores, over the generator's whole
# run. Kernel work done in softirq context (loopback delivery) is not in it.
r["server_cpu"] = (int(t1) - int(t0)) / hz / wall
# /proc/stat per CPU: user nice system idle iowait irq softirq steal ...
parse = lambda text: {l.split()[0]: list(map(int, l.split()[1:9])) for l in text.splitlines()}
a, b = parse(s0), parse(s1)
d = {c: [y - x for x, y in zip(a[c], b[c])] for c in a}
v = d["cpu" + scpu]
# How busy the server's core was: the server, softirqs, anything else.
r["server_core_busy"] = (sum(v) - v[3] - v[4]) / sum(v) if sum(v) else 0.0
# Time the hypervisor gave the vCPUs to someone else (steal), per core: on
# a shared host this, not either program, can be most of a tail.
r["steal"] = {c[3:]: (x[7] / sum(x) if sum(x) else 0.0) for c, x in d.items()}
# CPU time of whatever is neither server, generator nor interrupt work, in
# cores: other processes on this shared machine.
busy = sum(sum(x) - x[3] - x[4] - x[5] - x[6] for x in d.values()) / hz / wall
r["others_cpu"] = max(0.0, busy - r["server_cpu"] - (r.get("generator_cpu") or 0))
print(json.dumps(r))
EOF
	tail -n 1 "$results" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   %-26s %8.0f/s  p50 %7.0f µs  p99 %8.0f µs  bad %d lost %d errors %d  CPU: server %3.0f%% (its core %3.0f%% busy), generator %3.0f%%, others %3.0f%%, steal %s"
      % (r["label"], r["rps"], r["p50_us"], r["p99_us"], r["bad"], r["lost"], r["errors"],
         100 * r["server_cpu"], 100 * r["server_core_busy"], 100 * (r.get("generator_cpu") or 0),
         100 * r["others_cpu"], "/".join("%.1f%%" % (100 * v) for _, v in sorted(r["steal"].items()))))' >&2
}

# pc_config, start_portcullis, pc_addr.
source "$repo/scripts/bench-lib.sh"

median_rps() {
	python3 - "$1" "$results" <<'EOF'
import json, statistics, sys
label, path = sys.argv[1:]
print(round(statistics.median(r["rps"] for r in map(json.loads, open(path)) if r["label"] == label)))
EOF
}

# --- 1. interleaved peak runs ----------------------------------------------------

log "starting tac_plus-ng ($tp_version) and portcullis, both on CPU $SERVER_CPU"
TP_CPUS=$SERVER_CPU "$TP_REF/start.sh" >&2
tp_pid=$(cat "$TP_RUN/tac_plus-ng.pid")
pc_config >"$work/pc.toml"
start_portcullis "$work/pc.toml"
pc_tacacs=$(pc_addr tacacs)
pc_metrics=http://$(pc_addr http)/metrics

log "peak: $ROUNDS rounds x ${DURATION}s per mode, $CONNECTIONS logins in flight"
for r in $(seq 1 "$ROUNDS"); do
	run_load "tac_plus-ng-single" "$tp_pid" --server "$TP_ADDR" --connections "$CONNECTIONS" --duration "$DURATION"
	run_load "portcullis-single" "$pc_pid" --server "$pc_tacacs" --connections "$CONNECTIONS" --duration "$DURATION"
	run_load "tac_plus-ng-session" "$tp_pid" --server "$TP_ADDR" --per-session --connections "$CONNECTIONS" --duration "$DURATION"
	run_load "portcullis-session" "$pc_pid" --server "$pc_tacacs" --per-session --connections "$CONNECTIONS" --duration "$DURATION"
done

# --- 2. half of peak, open loop ---------------------------------------------------

passes=(other)
if [ "$RT_PASS" = 1 ]; then
	if chrt -f 10 true 2>/dev/null; then
		passes+=(fifo)
	else
		log "chrt -f not permitted here: no SCHED_FIFO pass"
	fi
fi
for pass in "${passes[@]}"; do
	suffix=
	gen_prefix=()
	if [ "$pass" = fifo ]; then
		suffix=-fifo
		gen_prefix=(chrt -f 10)
	fi
	set_policy "$tp_pid" "$pass"
	set_policy "$pc_pid" "$pass"
	for mode in single session; do
		flag=()
		[ "$mode" = session ] && flag=(--per-session)
		tp_half=$(($(median_rps "tac_plus-ng-$mode") / 2))
		pc_half=$(($(median_rps "portcullis-$mode") / 2))
		log "half of peak, $mode, SCHED_${pass^^}: tac_plus-ng ${tp_half}/s, portcullis ${pc_half}/s (open loop, $HALF_ROUNDS rounds)"
		for r in $(seq 1 "$HALF_ROUNDS"); do
			run_load "tac_plus-ng-$mode-half$suffix" "$tp_pid" --server "$TP_ADDR" "${flag[@]}" \
				--rate "$((tp_half > 0 ? tp_half : 1))" --connections "$HALF_CAP" --duration "$SIDE_DURATION"
			run_load "portcullis-$mode-half$suffix" "$pc_pid" --server "$pc_tacacs" "${flag[@]}" \
				--rate "$((pc_half > 0 ? pc_half : 1))" --connections "$HALF_CAP" --duration "$SIDE_DURATION"
		done
	done
	set_policy "$tp_pid" other
	set_policy "$pc_pid" other
done
gen_prefix=()

# --- summary ---------------------------------------------------------------------

python3 - "$results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$SERVER_CPU" "$LOAD_CPU" "$tp_version" <<'EOF'
import json, statistics, sys
path, rounds, duration, conns, scpu, lcpu, tp_version = sys.argv[1:]
rs = [json.loads(l) for l in open(path)]
by = lambda label: [r for r in rs if r["label"] == label]
med = lambda label, k: statistics.median((r.get(k) or 0) for r in by(label))
print()
print(f"TACACS+ logins (PAP authentication + shell authorization, every reply checked), {conns} in flight,")
print(f"{rounds} interleaved rounds of {duration} s; each server pinned to CPU {scpu}, load generator")
print(f"(portcullis-load) on CPU {lcpu}. tac_plus-ng {tp_version}: cleartext password; portcullis: argon2id,")
print("verified once, then its credential cache.")
row = lambda name, a, b: print(f"{name:40} {a:>16} {b:>16}")
verdict = {}
for mode, title in (("single", "single-connection mode"), ("session", "a new connection per session")):
    tp, pc = f"tac_plus-ng-{mode}", f"portcullis-{mode}"
    print()
    row(title, "tac_plus-ng", "portcullis")
    row("logins/s, median", f"{med(tp, 'rps'):,.0f}", f"{med(pc, 'rps'):,.0f}")
    row("  per round", " ".join(f"{r['rps']/1000:.1f}k" for r in by(tp)), " ".join(f"{r['rps']/1000:.1f}k" for r in by(pc)))
    ratio = med(pc, "rps") / med(tp, "rps") if med(tp, "rps") else float("nan")
    row("  ratio portcullis / tac_plus-ng", "", f"{ratio:.2f}x")
    for k, n in (("p50_us", "p50"), ("p99_us", "p99")):
        row(f"latency {n} at peak (µs), median", f"{med(tp, k):,.0f}", f"{med(pc, k):,.0f}")
    row("server CPU during peak runs, median", f"{100 * med(tp, 'server_cpu'):.0f}%", f"{100 * med(pc, 'server_cpu'):.0f}%")
    row("  the server's core busy (with softirq)", f"{100 * med(tp, 'server_core_busy'):.0f}%", f"{100 * med(pc, 'server_core_busy'):.0f}%")
    row("generator CPU during peak runs, median", f"{100 * med(tp, 'generator_cpu'):.0f}%", f"{100 * med(pc, 'generator_cpu'):.0f}%")
    # CPU time per login, less sensitive to a shared machine than the rates:
    # 1e6 / (server µs per login) is what one whole core would sustain.
    per = lambda l, k: statistics.median(1e6 * (r.get(k) or 0) / r["rps"] for r in by(l) if r["rps"] > 0)
    row("server CPU per login (µs), median", f"{per(tp, 'server_cpu'):.1f}", f"{per(pc, 'server_cpu'):.1f}")
    row("  1e6 / that (extrapolated logins/s)", f"{1e6 / per(tp, 'server_cpu'):,.0f}", f"{1e6 / per(pc, 'server_cpu'):,.0f}")
    row("generator CPU per login (µs), median", f"{per(tp, 'generator_cpu'):.1f}", f"{per(pc, 'generator_cpu'):.1f}")
    row("other processes' CPU, median (cores)", f"{med(tp, 'others_cpu'):.2f}", f"{med(pc, 'others_cpu'):.2f}")
    steal = lambda l: statistics.median(max(r.get("steal", {}).values(), default=0) for r in by(l))
    row("hypervisor steal, busier core, median", f"{100 * steal(tp):.1f}%", f"{100 * steal(pc):.1f}%")
    fails = lambda l: f"{sum(r['rejected'] for r in by(l))}/{sum(r['bad'] for r in by(l))}/{sum(r['lost'] for r in by(l))}/{sum(r['errors'] for r in by(l))}"
    row("refused/bad/lost/errors (all peak runs)", fails(tp), fails(pc))
    for suffix, policy in (("", "SCHED_OTHER"), ("-fifo", "SCHED_FIFO")):
        ht, hp = tp + "-half" + suffix, pc + "-half" + suffix
        if not by(hp):
            continue
        row(f"half of own peak, open loop, {policy} (/s)", f"{by(ht)[0]['target_rate']:,.0f}", f"{by(hp)[0]['target_rate']:,.0f}")
        row("  achieved (/s), median", f"{med(ht, 'rps'):,.0f}", f"{med(hp, 'rps'):,.0f}")
        row("  p50 / p99 / p99.9 (µs), medians", f"{med(ht, 'p50_us'):.0f}/{med(ht, 'p99_us'):.0f}/{med(ht, 'p999_us'):.0f}",
            f"{med(hp, 'p50_us'):.0f}/{med(hp, 'p99_us'):.0f}/{med(hp, 'p999_us'):.0f}")
        row("  p99 per round (µs)", " ".join(f"{r['p99_us']:.0f}" for r in by(ht)), " ".join(f"{r['p99_us']:.0f}" for r in by(hp)))
        row("  server's own p99 / p99.9 per round (µs, ≤)", "—",
            " ".join(f"{r.get('server_k2r_p99_le_us', 0):.0f}/{r.get('server_k2r_p999_le_us', 0):.0f}" for r in by(hp)))
        row("  hypervisor steal, busier core, median", f"{100 * steal(ht):.1f}%", f"{100 * steal(hp):.1f}%")
        row("  server CPU / generator CPU, median", f"{100 * med(ht, 'server_cpu'):.0f}% / {100 * med(ht, 'generator_cpu'):.0f}%",
            f"{100 * med(hp, 'server_cpu'):.0f}% / {100 * med(hp, 'generator_cpu'):.0f}%")
        verdict[(mode, suffix)] = med(hp, "p99_us")
    for name, l in (("tac_plus-ng", tp), ("portcullis", pc)):
        if med(l, "generator_cpu") > 0.9 and med(l, "server_cpu") < 0.9:
            print(f"  note: the generator was busier than {name} during its peak runs: read its rate as a floor")
        elif per(l, "generator_cpu") >= per(l, "server_cpu"):
            print(f"  note: the generator spends more CPU per login than {name}: on two quiet cores it would"
                  " saturate first, so the rate is a floor")
    verdict[mode] = med(pc, "rps")
print()
print("issue #4 targets for portcullis (one core):")
print(f"  single-connect >= 40,000 logins/s: {verdict['single']:,.0f} -> {'met' if verdict['single'] >= 40000 else 'NOT met'}")
print(f"  per session    >= 10,000 logins/s: {verdict['session']:,.0f} -> {'met' if verdict['session'] >= 10000 else 'NOT met'}")
for mode in ("single", "session"):
    p99 = verdict[(mode, "")]
    fifo = verdict.get((mode, "-fifo"))
    extra = f" (under SCHED_FIFO: {fifo/1000:.2f} ms)" if fifo is not None else ""
    print(f"  p99 at half of peak ({mode}) < 2 ms, median of {len(by('portcullis-' + mode + '-half'))}: {p99/1000:.2f} ms -> {'met' if p99 < 2000 else 'NOT met'}{extra}")
print()
print(f"raw results: {path}")
EOF
