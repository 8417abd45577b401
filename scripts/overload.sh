#!/usr/bin/env bash
# p99 of admitted requests at twice the sustainable load, with per-provider
# shedding (max_concurrency) on and off. The upstream serves at most $CAP requests
# at once, $MS ms each: sustainable load CAP*1000/MS requests/s (80/s by default).
# Runs: 80% of it without limits (the baseline), then 2x without limits
# (the upstream's queue grows without bound), then 2x with max_concurrency = CAP.
# Usage: scripts/overload.sh   (SECS=20 per run; BIN=path to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-20}
CAP=${CAP:-4}
MS=${MS:-50}
BIN=${BIN:-target/release/understudy}
[ -x "$BIN" ] || cargo build --release --quiet --bin understudy
ulimit -n "$(ulimit -Hn)"  # as high as this shell may go
rate=$(( CAP * 1000 / MS ))

# shellcheck source=scripts/work_setup.sh
. scripts/work_setup.sh
load=scripts/hostile_load.py

run() { # $1: label, $2: offered rate, $3: extra provider keys
  local up_port proxy_port up
  up_port=$(free_port); proxy_port=$(free_port)
  python3 "$load" upstream "$up_port" --capacity "$CAP" --service-ms "$MS" & up=$!
  pids+=("$up")
  start_proxy "$proxy_port" "$up_port" "" "$3"
  printf '%-36s ' "$1:"
  python3 "$load" rate "$proxy_port" "$2" "$SECS"
  kill "$proxy" "$up"; wait "$proxy" "$up" 2>/dev/null || true
}

run "0.8x ($(( rate * 8 / 10 ))/s), no limit" "$(( rate * 8 / 10 ))" ""
run "2x ($(( rate * 2 ))/s), shedding off" "$(( rate * 2 ))" ""
run "2x ($(( rate * 2 ))/s), shedding on" "$(( rate * 2 ))" \
  "max_concurrency = $CAP
max_queue = $CAP
queue_wait = \"200ms\""
