#!/usr/bin/env bash
# run.sh - the browser-library tests, as ctest runs them (test "web"):
# installs the npm packages of package-lock.json on first use (npm ci, no
# prompts, no stdin), then runs every tests/web/*.test.mjs with node --test.
# The end-to-end tests drive Debian's /usr/bin/chromium and the daemon given
# by IDBMOUNT_BIN; see e2e.test.mjs.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/fake-indexeddb ] || [ ! -d node_modules/playwright-core ]; then
	npm ci --no-audit --no-fund --loglevel=error </dev/null
fi
exec node --test --test-concurrency=1 ./*.test.mjs
