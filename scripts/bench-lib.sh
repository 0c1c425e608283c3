# Shared by the benchmark scripts (source it): portcullis on a copy of the
# demo configuration, pinned to one core. The caller sets repo (the
# checkout), work (a scratch folder), SERVER_CPU and portcullis (the binary).

# pc_config [RADIUS_AUTH_PORT]: the demo configuration on free ports (RADIUS
# authentication on the port given, if any), data under $work.
pc_config() {
	sed -e "s|127.0.0.1:1812\"|127.0.0.1:${1:-0}\"|" \
		-e "s|127.0.0.1:1813\"|127.0.0.1:0\"|" \
		-e "s|127.0.0.1:4949\"|127.0.0.1:0\"|" \
		-e "s|127.0.0.1:8080\"|127.0.0.1:0\"|" \
		-e "s|\"../dictionaries\"|\"$repo/dictionaries\"|" \
		-e "s|\"../target/demo-data\"|\"$work/data\"|" \
		"$repo/examples/portcullis.toml"
}

# start_portcullis CONFIG: pinned to SERVER_CPU; sets pc_pid, and its
# listeners' addresses are then read with pc_addr.
start_portcullis() {
	local addr=$work/pc.addr
	: >"$addr"
	PORTCULLIS_LOG=warn taskset -c "$SERVER_CPU" "$portcullis" serve --print-addresses \
		--config "$1" >"$addr" 2>"$work/pc.log" &
	pc_pid=$!
	for _ in $(seq 1 600); do
		[ -s "$addr" ] && break
		kill -0 "$pc_pid" 2>/dev/null || { cat "$work/pc.log" >&2; exit 1; }
		sleep 0.1
	done
	[ -s "$addr" ] || { echo "portcullis did not start" >&2; exit 1; }
}

# pc_addr NAME: the address portcullis bound for listener NAME (tacacs,
# http, radius_auth, radius_acct).
pc_addr() {
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/pc.addr" "$1"
}
