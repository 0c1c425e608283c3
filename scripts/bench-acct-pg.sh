#!/usr/bin/env bash
# Durable RADIUS accounting on PostgreSQL, side by side: FreeRADIUS 3.2 with
# rlm_sql (the reference of ../shared/reference/freeradius-sql: one
# autocommitted INSERT per record, answered after it commits) and portcullis
# with `[store] backend = "postgres"` (group commit, answered after COMMIT),
# writing into the SAME database of one PostgreSQL cluster (fsync and
# synchronous_commit on), the same load from the same generator
# (target/release/portcullis-load radius --acct: every request a new session,
# a Start), runs interleaved, medians.
#
#   scripts/bench-acct-pg.sh          # about 2 minutes after the release build
#
# Each server is pinned to SERVER_CPU (default 1), the generator to LOAD_CPU
# (default 0); PostgreSQL is not pinned (it serves both the same way). After
# the runs, every acknowledged record is checked to be in its table.
# Needs: Debian freeradius, freeradius-postgresql, postgresql (installed if
# missing), python3, taskset. Raw JSON lines: target/bench-acct-pg/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUTSTANDING=${OUTSTANDING:-64}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
FR_REF=${FR_REF:-$repo/../shared/reference/freeradius-sql}
PG_PORT=${PG_PORT:-55432}
FR_ACCT=18135
SECRET=testing123

out=$repo/target/bench-acct-pg
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d /tmp/portcullis-bench-pg.XXXXXX)
export FR_RUN=$work/freeradius
pc_pid=
pgbin=

log() { printf '== %s\n' "$*" >&2; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
	set +e
	if [ -n "$pc_pid" ] && kill -0 "$pc_pid" 2>/dev/null; then
		kill -TERM "$pc_pid"
		wait "$pc_pid" 2>/dev/null
	fi
	[ -f "$FR_RUN/freeradius.pid" ] && "$FR_REF/stop.sh" >/dev/null
	[ -n "$pgbin" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

# --- prerequisites ------------------------------------------------------------
need=()
command -v freeradius >/dev/null || need+=(freeradius)
[ -f /usr/lib/freeradius/rlm_sql_postgresql.so ] || need+=(freeradius-postgresql)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
for pid in $(pgrep -x freeradius || true); do
	grep -qs "$FR_RUN" "/proc/$pid/cmdline" || { log "stopping system freeradius pid $pid"; kill -TERM "$pid" || true; }
done
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

if [ -z "${NO_BUILD:-}" ]; then   # NO_BUILD=1: use the release binaries as built
	log "building release binaries"
	cargo build --release --quiet --bin portcullis --bin portcullis-load
fi
load=$repo/target/release/portcullis-load
portcullis=$repo/target/release/portcullis

# --- one PostgreSQL, one database for both ------------------------------------
log "PostgreSQL on 127.0.0.1:$PG_PORT (fsync, synchronous_commit on)"
mkdir -p "$work/pg"
echo radius-pw-1 >"$work/pw"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$work"
as_pg "$pgbin/initdb" -A scram-sha-256 -U radius --pwfile="$work/pw" -D "$work/pg/data" -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/log" \
	-o "-p $PG_PORT -h 127.0.0.1 -k $work/pg -c max_connections=200 -c shared_buffers=256MB" start >/dev/null
PGPASSWORD=radius-pw-1 psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U radius -d postgres -c "CREATE DATABASE radius"
pgq() { PGPASSWORD=radius-pw-1 psql -X -At -h 127.0.0.1 -p "$PG_PORT" -U radius -d radius -c "$1"; }

log "starting FreeRADIUS 3.2 + rlm_sql (the reference)"
FR_CPUS=$SERVER_CPU PG_PORT=$PG_PORT "$FR_REF/start.sh" >&2

# shellcheck source=bench-lib.sh
source "$repo/scripts/bench-lib.sh"
{
	pc_config
	printf '\n[store]\nbackend = "postgres"\nurl = "postgresql://radius@127.0.0.1:%s/radius"\npassword = { file = "%s" }\nnode = "bench"\n' \
		"$PG_PORT" "$work/pw"
} >"$work/pc.toml"
start_portcullis "$work/pc.toml"
pc_acct=$(pc_addr radius_acct)
log "portcullis pid $pc_pid: accounting on $pc_acct into the same database"

run() { # LABEL SERVER
	local json
	json=$(taskset -c "$LOAD_CPU" "$load" radius --acct --secret "$SECRET" --server "$2" \
		--outstanding "$OUTSTANDING" --duration "$DURATION" --reply-ma-optional --timeout-ms 3000 | tail -n 1)
	python3 -c 'import json,sys; r=json.loads(sys.argv[2]); r["label"]=sys.argv[1]; print(json.dumps(r))' "$1" "$json" >>"$results"
	tail -n 1 "$results" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   %-22s %8.0f records/s  p50 %7.1f ms  p99 %7.1f ms  acked %d  lost %d"
      % (r["label"], r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["ok"], r["lost"]))' >&2
}

for i in $(seq 1 "$ROUNDS"); do
	log "round $i/$ROUNDS: $OUTSTANDING outstanding, ${DURATION}s each"
	run freeradius-rlm_sql "127.0.0.1:$FR_ACCT"
	run portcullis "$pc_acct"
done

fr_rows=$(pgq "SELECT count(*) FROM radacct")
pc_rows=$(pgq "SELECT count(*) FROM acct_records")
python3 - "$results" "$fr_rows" "$pc_rows" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
fr_rows, pc_rows = int(sys.argv[2]), int(sys.argv[3])
def side(label):
    rs = [r for r in rows if r["label"] == label]
    return statistics.median(r["rps"] for r in rs), sum(r["ok"] for r in rs), rs
fr, fr_ok, _ = side("freeradius-rlm_sql")
pc, pc_ok, _ = side("portcullis")
print(f"median durable records/s: FreeRADIUS rlm_sql {fr:.0f}, portcullis {pc:.0f}, ratio {pc / fr:.2f}x")
# Warm-up records are acknowledged too, one per run.
print(f"acknowledged vs stored: FreeRADIUS {fr_ok} acked, {fr_rows} rows in radacct; "
      f"portcullis {pc_ok} acked, {pc_rows} rows in acct_records")
ok = fr_rows >= fr_ok and pc_rows >= pc_ok
print("every acknowledged record stored: " + ("yes" if ok else "NO"))
sys.exit(0 if ok else 1)
EOF
