#!/usr/bin/env bash
# Starts regshim in front of a registry, installing what it needs.
#   REGSHIM_UPSTREAM=https://registry.example.com scripts/quickstart.sh   # in front of yours
#   scripts/quickstart.sh                                                 # in front of a local one
# Without REGSHIM_UPSTREAM it runs Debian's docker-registry (distribution 2.8) on
# 127.0.0.1:5001, data in .tmp/registry. regshim listens on ${REGSHIM_LISTEN:-127.0.0.1:5000}.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/node ] || [ ! -f dist/cli.js ]; then
  npm ci --no-audit --no-fund
fi

registry_pid=""
stop_registry() {
  if [ -n "$registry_pid" ]; then kill -- "-$registry_pid" 2>/dev/null || true; fi
}
trap stop_registry EXIT

if [ -z "${REGSHIM_UPSTREAM:-}" ]; then
  if ! command -v docker-registry >/dev/null 2>&1; then
    as_root=""; [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  fi
  data="$PWD/.tmp/registry"
  mkdir -p "$data"
  cat > "$data/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $data/storage}
  delete: {enabled: true}
http: {addr: 127.0.0.1:5001}
YAML
  setsid docker-registry serve "$data/config.yml" >"$data/registry.log" 2>&1 &
  registry_pid=$!
  # Ready when /v2/ answers 200 (node, not curl: a fresh machine may have no curl).
  node_modules/.bin/node -e '
    const until = Date.now() + 15000;
    const ping = () => fetch("http://127.0.0.1:5001/v2/").then((r) => r.status === 200, () => false);
    (async () => { while (!(await ping())) { if (Date.now() > until) process.exit(1); await new Promise((r) => setTimeout(r, 100)); } })();
  ' || { echo "the local registry did not start: see $data/registry.log" >&2; exit 1; }
  echo "local registry (distribution) on http://127.0.0.1:5001, data in $data" >&2
  export REGSHIM_UPSTREAM=http://127.0.0.1:5001
fi

npx --no-install regshim "$@"
