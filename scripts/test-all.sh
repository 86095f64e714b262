#!/usr/bin/env bash
# Every test, on a fresh Debian 12 machine with Node 20 and npm: installs the Debian
# packages the e2e tests run against, the npm dependencies (Node 24 among them, as the
# node@24 devDependency), then runs lint, type-check, build, unit, HTTP and e2e tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-deps.sh
npm ci --no-audit --no-fund
npm test
