#!/usr/bin/env bash
# Runs every cargo-fuzz target on stable (`-s none`: no sanitizer, still
# coverage-guided). `smoke` gives each a short run for CI; `long SECONDS`
# runs each for that long (the issues ask for >= 600 s per target).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

mode=${1:-smoke}
case "$mode" in
    smoke) secs=${FUZZ_SMOKE_SECONDS:-15} ;;
    long) secs=${2:-600} ;;
    *) echo "usage: $0 smoke | long SECONDS" >&2; exit 2 ;;
esac

targets=$(cargo fuzz list)
cargo fuzz build -s none --release >/dev/null
for t in $targets; do
    mkdir -p "corpus/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    echo "fuzz: $t for ${secs}s"
    cargo fuzz run -s none --release "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)" || true
    # libFuzzer exits non-zero and leaves an artifact on a crash.
    if compgen -G "artifacts/$t/crash-*" >/dev/null; then
        echo "fuzz: $t crashed; see fuzz/artifacts/$t" >&2
        exit 1
    fi
done
echo "fuzz: all targets clean"
