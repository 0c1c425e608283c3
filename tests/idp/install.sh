#!/usr/bin/env bash
# Installs the test IdP's npm dependencies. Idempotent: does nothing when
# node_modules is already there, so test runs do not touch the network.
set -euo pipefail
cd "$(dirname "$0")"
if [ -d node_modules/oidc-provider ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "install.sh: npm is not installed (need node >= 20)" >&2; exit 1; }
# A lockfile pins the whole tree; without one (first run) npm install makes
# it. Bounded, so a dead registry fails the tests instead of hanging them.
if [ -f package-lock.json ]; then
  timeout 300 npm ci --no-audit --no-fund --loglevel=error
else
  timeout 300 npm install --no-audit --no-fund --loglevel=error
fi
