#!/usr/bin/env bash
# Runs every test: unit and integration tests (cargo test), short fuzz runs
# (scripts/fuzz.sh, installs cargo-fuzz when missing), the official openai SDK
# and other real clients through the proxy, shared state against a real
# redis-server, and the fixture checks against each provider's official SDK.
# Installs redis-server and chromium if missing (Debian's packages; needs apt). Creates .venv
# with the pinned SDKs on first use (needs python3 and PyPI), tests/js/node_modules with the pinned JS clients and
# tests/browser/node_modules with playwright-core,
# tests/claude/node_modules with Claude Code and tests/codex/node_modules with Codex
# CLI (all need node, npm and the npm registry); each is reinstalled when its pins
# change.
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server (Debian's package): tests/shared_state.rs starts its own, one per
# test on a free loopback port, so a test can kill and restart it.
if ! command -v redis-server >/dev/null; then
  echo "==> installing redis-server"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# chromium (Debian's package): tests/dashboard.rs opens /dashboard in it, headless.
if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

req=tests/sdk/requirements.txt
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s "$req" "$stamp"; then
  echo "==> installing the official SDKs into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

js=tests/js
js_stamp=$js/node_modules/.understudy-lock
if [ ! -d "$js/node_modules" ] || ! cmp -s "$js/package-lock.json" "$js_stamp"; then
  echo "==> installing the JS clients into $js/node_modules"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$js/package-lock.json" "$js_stamp"
fi

# playwright-core, which drives that chromium (tests/browser/dashboard.mjs).
br=tests/browser
br_stamp=$br/node_modules/.understudy-lock
if [ ! -d "$br/node_modules" ] || ! cmp -s "$br/package-lock.json" "$br_stamp"; then
  echo "==> installing playwright-core into $br/node_modules"
  (cd "$br" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$br/package-lock.json" "$br_stamp"
fi

for check in scripts/fixtures/check_*.py; do
  [ -e "$check" ] || continue
  echo "==> $check"
  .venv/bin/python "$check"
done

# Claude Code, a judge of the Messages front door (tests/claude_code.rs): a native
# binary inside its npm package, reinstalled when its pin changes.
cc=tests/claude
cc_stamp=$cc/node_modules/.understudy-lock
if [ ! -d "$cc/node_modules" ] || ! cmp -s "$cc/package-lock.json" "$cc_stamp"; then
  echo "==> installing Claude Code into $cc/node_modules"
  (cd "$cc" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$cc/package-lock.json" "$cc_stamp"
fi

# Codex CLI, a judge of the Responses front door (tests/codex.rs): a native binary
# inside its npm package, reinstalled when its pin changes.
cx=tests/codex
cx_stamp=$cx/node_modules/.understudy-lock
if [ ! -d "$cx/node_modules" ] || ! cmp -s "$cx/package-lock.json" "$cx_stamp"; then
  echo "==> installing Codex CLI into $cx/node_modules"
  (cd "$cx" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$cx/package-lock.json" "$cx_stamp"
fi

# Each fuzz target for a few seconds on its fixture-seeded corpus: a crash fails the
# run (longer runs: scripts/fuzz.sh TARGET SECONDS).
echo "==> fuzz (short runs)"
scripts/fuzz.sh all 5

echo "==> cargo test"
cargo test "$@"
