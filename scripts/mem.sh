#!/usr/bin/env bash
# Peak RSS of the proxy (a release build) holding
#   1. 10,000 idle keep-alive connections (one request each, then silent), and
#   2. 2,000 concurrent slow streams (one event a second) for $SECS seconds
#      (default 600; RSS is sampled every 10 s to show it stays flat).
# Usage: scripts/mem.sh [idle|streams|both]   (BIN=path to use another binary)
# The open-file limit is raised (to the hard limit) for this script's processes only.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-both}
SECS=${SECS:-600}
IDLE=${IDLE:-10000}
STREAMS=${STREAMS:-2000}
BIN=${BIN:-target/release/understudy}
[ -x "$BIN" ] || cargo build --release --quiet --bin understudy
ulimit -n "$(ulimit -Hn)"  # as high as this shell may go

# shellcheck source=scripts/work_setup.sh
. scripts/work_setup.sh
up_port=$(free_port)
proxy_port=$(free_port)
load=scripts/hostile_load.py

python3 "$load" upstream "$up_port" & pids+=($!)
# SERVER_KEYS="" for a build that predates max_connections.
start_proxy "$proxy_port" "$up_port" "${SERVER_KEYS-max_connections = 20000}" ""
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$proxy/status"; }
hwm() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$proxy/status"; }
echo "proxy idle: RSS $(rss) MiB"

if [ "$what" = idle ] || [ "$what" = both ]; then
  python3 "$load" idle "$proxy_port" "$IDLE" > "$work/idle.log" & client=$!
  pids+=($client)
  until grep -q "connections open" "$work/idle.log" 2>/dev/null; do sleep 1; done
  sleep 2
  echo "$IDLE idle keep-alive connections: RSS $(rss) MiB, peak $(hwm) MiB"
  kill "$client"; wait "$client" 2>/dev/null || true
  sleep 2
fi

if [ "$what" = streams ] || [ "$what" = both ]; then
  python3 "$load" streams "$proxy_port" "$STREAMS" "$SECS" > "$work/streams.log" & client=$!
  pids+=($client)
  until grep -q "streams started" "$work/streams.log" 2>/dev/null; do sleep 1; done
  start=$(date +%s)
  while kill -0 "$client" 2>/dev/null; do
    echo "t=$(( $(date +%s) - start ))s: $STREAMS slow streams: RSS $(rss) MiB, peak $(hwm) MiB"
    sleep 10
  done
  tail -2 "$work/streams.log"
  kill -0 "$proxy" 2>/dev/null || { echo "the proxy exited:"; tail -5 "$work/proxy.log"; exit 1; }
  echo "after $STREAMS slow streams: peak $(hwm) MiB"
fi
