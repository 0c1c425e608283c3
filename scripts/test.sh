#!/usr/bin/env bash
# The whole test suite, as README.md and .ci/run give it: installs what the
# tests need (idempotent), then formatting, lints, unit and end-to-end tests,
# and a short smoke run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
if [ -d fuzz ]; then
    scripts/fuzz.sh smoke
fi
