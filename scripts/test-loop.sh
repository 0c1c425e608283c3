#!/usr/bin/env bash
# Runs the test suite (unit tests, the end-to-end binary, the benches as
# tests) N times in a row, each run in fresh processes, to catch flaky
# tests: a test that passes only "usually" keeps good work from landing.
#
#   scripts/test-loop.sh 20
#
# Every run's output is kept in target/test-loop/run-K.log; the summary says
# which runs failed and which tests failed in them. Exits 1 if any run did.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
out=target/test-loop
mkdir -p "$out"
rm -f "$out"/run-*.log
cargo test --all-targets --locked --no-run --quiet
failed=0
for k in $(seq 1 "$n"); do
	start=$(date +%s)
	if cargo test --all-targets --locked --no-fail-fast >"$out/run-$k.log" 2>&1; then
		echo "run $k: ok ($(($(date +%s) - start)) s)"
	else
		failed=$((failed + 1))
		echo "run $k: FAILED ($(($(date +%s) - start)) s):" $(grep -E '^test .* FAILED$' "$out/run-$k.log" | awk '{print $2}')
	fi
done
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
