#!/usr/bin/env bash
# run-web-tests.sh - the browser-library tests, as ctest runs them (test "web"):
# installs the npm packages of package-lock.json on first use (npm ci, no
# prompts, no stdin), then runs every tests/web/*.test.mjs with node --test.
# Besides the test tools, the packages are the IndexedDB libraries that
# libraries.test.mjs drives (Dexie, idb-keyval, localforage, idb, PouchDB).
# The end-to-end tests drive Debian's /usr/bin/chromium and the daemon given
# by IDBMOUNT_BIN; see e2e.test.mjs.
set -euo pipefail
cd "$(dirname "$0")"
# Every package of package.json present, else (first use, or a package
# added since) install exactly what package-lock.json pins.
if ! node -e 'const fs = require("fs");
for (const name of Object.keys(require("./package.json").devDependencies))
	if (!fs.existsSync("node_modules/" + name + "/package.json")) process.exit(1);'; then
	npm ci --no-audit --no-fund --loglevel=error </dev/null
fi
exec node --test --test-concurrency=1 ./*.test.mjs
