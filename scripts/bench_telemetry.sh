#!/usr/bin/env bash
# What traces cost: throughput and p99 of chat completions (plain and streamed) with
# `[telemetry]` off and on (exporting every span to a local OTLP/HTTP receiver that
# answers 200), in one run, alternating off/on for several rounds so drift on a shared
# machine falls on both sides; the summary compares the medians. Then the paired run:
# both proxies at once on the same core, each loaded by its own wrk — the machine's
# noise falls on both at the same moment, and the scheduler's equal shares of the
# core make the throughput ratio the inverse of the CPU-per-request ratio.
#
#   upstream: nginx (Debian) answering a fixed chat.completion JSON / 20-chunk stream
#   receiver: a Python OTLP/HTTP endpoint counting export requests and bytes
#   load:     wrk (Debian), 64 keep-alive connections
#   pinning:  the proxy on core 0; wrk, nginx and the receiver on core 1 (taskset)
# Usage: scripts/bench_telemetry.sh [seconds] [rounds]   (defaults 15 per run, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${2:-3}

# shellcheck source=scripts/bench_setup.sh
. scripts/bench_setup.sh

start_upstream

otlp_port=$(free_port)
cat > "$work/receiver.py" <<'PY'
import http.server, sys, threading
count = {"requests": 0, "bytes": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        count["requests"] += 1; count["bytes"] += n
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self):
        body = f'{count["requests"]} {count["bytes"]}'.encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
taskset -c 1 python3 "$work/receiver.py" "$otlp_port" &
pids+=($!)

config() { # $1: extra TOML, [$2: port, $3: file]
  cat > "${3:-$work/proxy.toml}" <<TOML
[server]
listen = "127.0.0.1:${2:-$proxy_port}"
$1
[providers.upstream]
kind = "openai"
base_url = "http://127.0.0.1:$up_port/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
[providers.streamer]
kind = "openai"
base_url = "http://127.0.0.1:$up_port/stream/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
[[routes]]
model = "default"
targets = ["upstream/gpt-4o"]
[[routes]]
model = "streamed"
targets = ["streamer/gpt-4o"]
TOML
}

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"default","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello!"}]}'
LUA
sed 's/"model":"default"/"model":"streamed","stream":true/' "$work/post.lua" > "$work/stream.lua"

run() { taskset -c 1 wrk --latency "$@" 2>&1; }
rate() { awk '/Requests\/sec/ {print $2}'; }
# The proxy's CPU per request over a wrk run: CPU seconds before, after, wrk's output.
per_req() { python3 -c "import sys; n=int(sys.argv[3].split()[0]); print(f'{(float(sys.argv[2])-float(sys.argv[1]))*1e3/max(n,1):.4f}')" "$1" "$2" "$(echo "$3" | awk '/requests in/ {print $1}')"; }

measure() { # $1: label, $2: extra TOML
  config "$2"
  BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn taskset -c 0 "$bin" --config "$work/proxy.toml" 2>"$work/proxy.log" &
  local pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$proxy_port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  run -t1 -c8 -d2s -s "$work/post.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions" >/dev/null
  local plain stream c0 c1 c2
  c0=$(cpu_s "$pid")
  plain=$(run -t1 -c64 -d"${secs}s" -s "$work/post.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions")
  c1=$(cpu_s "$pid")
  stream=$(run -t1 -c64 -d"${secs}s" -s "$work/stream.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions")
  c2=$(cpu_s "$pid")
  local dropped
  dropped=$(curl -fs "http://127.0.0.1:$proxy_port/metrics" | awk '/^understudy_spans_dropped_total/ {print $2}')
  echo "$1: plain $(echo "$plain" | rate) req/s p99 $(echo "$plain" | pct 99%) CPU $(per_req "$c0" "$c1" "$plain") ms/req | stream $(echo "$stream" | rate) req/s p99 $(echo "$stream" | pct 99%) CPU $(per_req "$c1" "$c2" "$stream") ms/req | spans dropped ${dropped:-0}" | tee -a "$work/rows"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "== chat completions, 64 connections, ${secs}s per row (proxy on core 0; wrk + nginx + receiver on core 1)"
for round in $(seq "$rounds"); do
  measure "off (round $round)" ""
  measure "on  (round $round)" "[telemetry]
otlp_endpoint = \"http://127.0.0.1:$otlp_port\""
done
echo "receiver: $(curl -fs "http://127.0.0.1:$otlp_port/") (export requests, bytes)"
# Medians of each figure, off and on, and on as a share of off.
python3 - "$work/rows" <<'PY'
import re, statistics, sys
rows = {"off": [], "on": []}
for line in open(sys.argv[1]):
    nums = [float(x) for x in re.findall(r"([0-9.]+) (?:req/s|ms/req)", line)]
    p99 = [float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[u] for v, u in re.findall(r"p99 ([0-9.]+)(us|ms|s)\b", line)]
    rows["on" if line.startswith("on") else "off"].append(nums[:2] + p99[:1] + nums[2:] + p99[1:])
names = ["plain req/s", "plain CPU ms/req", "plain p99 ms", "stream req/s", "stream CPU ms/req", "stream p99 ms"]
print("== medians over", len(rows["off"]), "rounds: off | on | on/off")
for i, name in enumerate(names):
    off = statistics.median(r[i] for r in rows["off"]); on = statistics.median(r[i] for r in rows["on"])
    print(f"{name:>18}: {off:10.4f} | {on:10.4f} | {on / off:6.3f}")
PY

echo "== paired: off and on at once, both on core 0, 32 connections each, ${secs}s per kind"
tel_port=$(free_port)
config "" "$proxy_port" "$work/off.toml"
config "[telemetry]
otlp_endpoint = \"http://127.0.0.1:$otlp_port\"" "$tel_port" "$work/on.toml"
for which in off on; do
  BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn taskset -c 0 "$bin" --config "$work/$which.toml" 2>"$work/$which.log" &
  pids+=($!)
done
for port in "$proxy_port" "$tel_port"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  run -t1 -c8 -d2s -s "$work/post.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
done
for kind in post stream; do
  run -t1 -c32 -d"${secs}s" -s "$work/$kind.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions" > "$work/paired.off" &
  off_wrk=$!
  run -t1 -c32 -d"${secs}s" -s "$work/$kind.lua" "http://127.0.0.1:$tel_port/v1/chat/completions" > "$work/paired.on"
  wait "$off_wrk"
  off=$(rate < "$work/paired.off"); on=$(rate < "$work/paired.on")
  echo "${kind/post/plain}: off $off req/s p99 $(pct 99% < "$work/paired.off") | on $on req/s p99 $(pct 99% < "$work/paired.on") | on/off $(python3 -c "print(f'{$on/$off:.3f}')")"
done
