#!/usr/bin/env bash
# Directory PAP logins side by side: FreeRADIUS 3.2 with rlm_ldap (the
# reference of ../shared/reference/freeradius-ldap) and portcullis, against
# the SAME OpenLDAP slapd, the same load from the same generator
# (target/release/portcullis-load), runs interleaved in one script run.
#
#   scripts/bench-ldap.sh            # about a minute after the release build
#
# Measures, ROUNDS times each, DURATION s, OUTSTANDING in flight, user dave
# (in netadmins and helpdesk):
#   freeradius         rlm_ldap: search as the service account, bind as dave
#   portcullis-cold    [[directory]] with cache_ttl = 0: every login a search
#                      and a bind, as FreeRADIUS does (groups from memberOf)
#   portcullis-cached  cache_ttl = 300: the verified-credential cache answers
# then, with slapd stopped, portcullis-cached again (cached users while the
# directory is down; auth_order remote-first).
#
# Nothing is pinned: slapd needs a core as much as the servers do, and the
# dev machine has two. Every process it starts is stopped on exit. Raw JSON
# lines: target/bench-ldap/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
OUTSTANDING=${OUTSTANDING:-32}
FR_REF=${FR_REF:-$repo/../shared/reference/freeradius-ldap}
FR_PORT=18121                       # the reference's default
PC_PORT=${PC_PORT:-28121}
LDAP_PORT=${LDAP_PORT:-29389}
SECRET=testing123
BASE=dc=example,dc=org
SVC_DN=cn=portcullis,ou=services,$BASE
SVC_PW=svc-bench-pw-0123456789

out=$repo/target/bench-ldap
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
work=$(mktemp -d /tmp/portcullis-bench-ldap.XXXXXX)
chmod 755 "$work"
export FR_RUN=$work/freeradius
pc_pid=
slapd_pid=

cleanup() {
	set +e
	[ -n "$pc_pid" ] && kill -TERM "$pc_pid" 2>/dev/null && wait "$pc_pid" 2>/dev/null
	[ -f "$FR_RUN/freeradius.pid" ] && "$FR_REF/stop.sh" >/dev/null
	[ -n "$slapd_pid" ] && kill -TERM "$slapd_pid" 2>/dev/null && wait "$slapd_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }

# --- prerequisites -------------------------------------------------------------

need=()
command -v freeradius >/dev/null || need+=(freeradius)
[ -e /usr/lib/freeradius/rlm_ldap.so ] || need+=(freeradius-ldap)
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null || need+=(ldap-utils)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "building release binaries"
cargo build --release --quiet --bin portcullis --bin portcullis-load
load=$repo/target/release/portcullis-load
portcullis=$repo/target/release/portcullis

# --- slapd ----------------------------------------------------------------------

log "starting slapd on 127.0.0.1:$LDAP_PORT"
mkdir -p "$work/slapd/db"
cat >"$work/slapd/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $work/slapd/slapd.pid
database mdb
maxsize 16777216
suffix "$BASE"
rootdn "cn=admin,$BASE"
rootpw bench-admin-pw
directory $work/slapd/db
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
EOF
user=()
[ "$(id -u)" = 0 ] && { chown -R nobody:nogroup "$work/slapd"; user=(-u nobody -g nogroup); }
/usr/sbin/slapd -f "$work/slapd/slapd.conf" -h "ldap://127.0.0.1:$LDAP_PORT/" "${user[@]}" -d 0 \
	</dev/null >/dev/null 2>"$work/slapd.log" &
slapd_pid=$!
for _ in $(seq 1 100); do
	ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base >/dev/null 2>&1 && break
	kill -0 "$slapd_pid" 2>/dev/null || { cat "$work/slapd.log" >&2; exit 1; }
	sleep 0.1
done
{
	printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$BASE"
	for ou in people groups services; do
		printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$BASE" "$ou"
	done
	printf 'dn: %s\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: portcullis\nuserPassword: %s\n\n' "$SVC_DN" "$SVC_PW"
	for u in alice bob dave erin; do
		printf 'dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s-dir-pw\n\n' \
			"$u" "$BASE" "$u" "$u" "$u" "$u"
	done
	printf 'dn: cn=netadmins,ou=groups,%s\nobjectClass: groupOfNames\ncn: netadmins\nmember: uid=alice,ou=people,%s\nmember: uid=dave,ou=people,%s\n\n' "$BASE" "$BASE" "$BASE"
	printf 'dn: cn=helpdesk,ou=groups,%s\nobjectClass: groupOfNames\ncn: helpdesk\nmember: uid=bob,ou=people,%s\nmember: uid=dave,ou=people,%s\n\n' "$BASE" "$BASE" "$BASE"
} >"$work/data.ldif"
ldapadd -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,$BASE" -w bench-admin-pw -f "$work/data.ldif" >/dev/null

# --- the two servers --------------------------------------------------------------

log "starting FreeRADIUS (rlm_ldap)"
LDAP_URI="ldap://127.0.0.1:$LDAP_PORT" LDAP_BASE="$BASE" LDAP_BIND_DN="$SVC_DN" LDAP_BIND_PW="$SVC_PW" \
	"$FR_REF/start.sh" >&2

SERVER_CPU=0-$(($(nproc) - 1))
source "$repo/scripts/bench-lib.sh"

# pc_ldap_config CACHE_TTL: the demo, remote-first, with this slapd as "corp".
pc_ldap_config() {
	pc_config "$PC_PORT" | sed -e 's|^auth_order = "local-first"|auth_order = "remote-first"|'
	cat <<EOF

[[directory]]
name = "corp"
urls = ["ldap://127.0.0.1:$LDAP_PORT"]
starttls = false
allow_plaintext = true
bind_dn = "$SVC_DN"
bind_password = "$SVC_PW"
user_base = "ou=people,$BASE"
pool_size = 32
cache_ttl = $1
timeout = 2
EOF
}

restart_portcullis() {
	if [ -n "$pc_pid" ]; then kill -TERM "$pc_pid"; wait "$pc_pid" 2>/dev/null || true; pc_pid=; fi
	pc_ldap_config "$1" >"$work/pc-$1.toml"
	start_portcullis "$work/pc-$1.toml"
}

# run_load LABEL ARGS...: one generator run; appends its JSON line.
run_load() {
	local label=$1
	shift
	"$load" radius --secret "$SECRET" --user dave --password dave-dir-pw \
		--outstanding "$OUTSTANDING" --duration "$DURATION" "$@" | tail -n 1 |
		python3 -c '
import json, sys
r = json.load(sys.stdin); r["label"] = sys.argv[1]
print(json.dumps(r))
print("   %-20s %8.0f/s  p50 %7.0f µs  p99 %8.0f µs  lost %d  bad %d" % (r["label"], r["rps"], r["p50_us"], r["p99_us"], r["lost"], r["bad"]), file=sys.stderr)' "$label" >>"$results"
}

log "peak: $ROUNDS rounds x ${DURATION}s, $OUTSTANDING outstanding, user dave"
for r in $(seq 1 "$ROUNDS"); do
	run_load freeradius --server "127.0.0.1:$FR_PORT" --reply-ma-optional
	restart_portcullis 0
	run_load portcullis-cold --server "127.0.0.1:$PC_PORT"
	restart_portcullis 300
	run_load portcullis-cached --server "127.0.0.1:$PC_PORT"
done

log "slapd stopped: portcullis, dave's password cached"
kill -TERM "$slapd_pid"
wait "$slapd_pid" 2>/dev/null || true
slapd_pid=
run_load portcullis-cached-down --server "127.0.0.1:$PC_PORT" --warmup 0

python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(label, k):
    v = [r[k] for r in rows if r["label"] == label]
    return statistics.median(v) if v else float("nan")
print("\n%-24s %10s %10s %10s" % ("median of runs", "logins/s", "p50 µs", "p99 µs"))
for l in ["freeradius", "portcullis-cold", "portcullis-cached", "portcullis-cached-down"]:
    print("%-24s %10.0f %10.0f %10.0f" % (l, med(l, "rps"), med(l, "p50_us"), med(l, "p99_us")))
fr = med("freeradius", "rps")
print("\nportcullis-cold / freeradius: %.2fx   portcullis-cached / freeradius: %.2fx"
      % (med("portcullis-cold", "rps") / fr, med("portcullis-cached", "rps") / fr))
EOF
