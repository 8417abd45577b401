#!/usr/bin/env bash
# Measures what the proxy adds to a non-streaming request that needs no translation
# (OpenAI-kind provider), against calling the upstream directly.
#
#   upstream: nginx (Debian) answering a fixed chat.completion JSON
#   load:     wrk (Debian), HTTP/1.1 keep-alive, POST of a small chat request
#   pinning:  the proxy on core 0; wrk and nginx on core 1 (taskset)
#
# Runs: a steady ~20 req/s (wrk's delay() hook, 1 connection) for p50/p99 latency,
# direct and through the proxy; then full load (64 connections) for throughput and
# latency — chat completions, and the same conversation through /v1/responses —
# then an Anthropic-kind upstream (nginx answering a fixed Message) reached through
# /v1/messages (passed through natively) and through /v1/chat/completions
# (translated both ways); then nginx `proxy_pass` (unbuffered, on core 0 like the
# proxy) and a bare hyper hop (benches/hyper_hop.rs) beside the proxy for a plain and
# a 20-chunk streamed answer, with CPU per request from /proc (user+sys); and the proxy's RSS at idle and its peak after the
# load (VmHWM).
# Usage: scripts/bench.sh [steady_seconds] [load_seconds]   (defaults 30, 20)
# Needs root for apt-get the first time (wrk, nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
steady=${1:-30}
load=${2:-20}

# shellcheck source=scripts/bench_setup.sh
. scripts/bench_setup.sh

# A real-shaped Anthropic Message (what POST /v1/messages answers), for the
# Anthropic-kind provider at /anthropic.
anthropic_answer='{"id":"msg_01Bench5cQ3Zk7XaYd2LmPq","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9,"service_tier":"standard"}}'
start_upstream "location /anthropic/ { default_type application/json; return 200 '$anthropic_answer'; }"

# The plain reverse-proxy hop to compare with: one nginx process (no master, so its
# /proc CPU is all of it) on the proxy's core, unbuffered, keep-alive upstream.
nginx_port=$(free_port)
mkdir -p "$work/pp"
cat > "$work/proxy_pass.conf" <<NGINX
master_process off;
worker_processes 1;
daemon off;
pid $work/pp/nginx.pid;
error_log $work/pp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/pp;
  proxy_temp_path $work/pp;
  upstream up { server 127.0.0.1:$up_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
taskset -c 0 nginx -c "$work/proxy_pass.conf" -p "$work/pp" &
nginx_pid=$!
pids+=($nginx_pid)

# The cheapest hop hyper can make (benches/hyper_hop.rs): the request body read
# whole, as a proxy routing on its `model` must, the answer streamed through. The
# floor under any proxy on this project's stack (hyper + hyper-util's client, tokio).
# HOP_MODE=pass streams the request body through too (the cheapest hop there is);
# HOP_RUNTIME=current runs it on tokio's current-thread runtime.
cargo build --release --quiet --example hyper_hop
hop_port=$(free_port)
taskset -c 0 target/release/examples/hyper_hop "$hop_port" "$up_port" "${HOP_MODE:-read}" "${HOP_RUNTIME:-multi}" &
hop_pid=$!
pids+=($hop_pid)

cat > "$work/proxy.toml" <<TOML
[server]
listen = "127.0.0.1:$proxy_port"
[providers.upstream]
kind = "openai"
base_url = "http://127.0.0.1:$up_port/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
[providers.claude]
kind = "anthropic"
base_url = "http://127.0.0.1:$up_port/anthropic"
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
[[routes]]
model = "claude"
targets = ["claude/claude-sonnet-4-5"]
TOML
BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn taskset -c 0 "$bin" --config "$work/proxy.toml" 2>"$work/proxy.log" &
proxy_pid=$!
pids+=($proxy_pid)

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$proxy_port/healthz" >/dev/null 2>&1 && curl -fs -o /dev/null "http://127.0.0.1:$up_port/" && break
  sleep 0.1
done

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"default","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello!"}]}'
LUA
# The same conversation through the Responses front door (translated to the same
# chat request upstream). store:false keeps the store out of a throughput number.
cat > "$work/responses.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"default","instructions":"You are a helpful assistant.","input":"Hello!","store":false}'
LUA
# The same conversation to the Anthropic-kind provider: as a Messages request
# (passed through, only the model swapped) and as a chat request (translated).
cat > "$work/messages.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = '{"model":"claude","max_tokens":256,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Hello!"}]}'
LUA
sed 's/"model":"default"/"model":"claude"/' "$work/post.lua" > "$work/chat_claude.lua"
sed 's/"model":"default"/"model":"streamed","stream":true/' "$work/post.lua" > "$work/stream.lua"
cat "$work/post.lua" > "$work/steady.lua"
echo 'function delay() return 50 end' >> "$work/steady.lua"   # one connection: ~20 req/s

rss() { awk -v k="$2" '$1==k":" {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }

# warm both paths (connection pools, allocator)
taskset -c 1 wrk -t1 -c8 -d2s -s "$work/post.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions" >/dev/null
idle_rss=$(rss "$proxy_pid" VmRSS)

run() { taskset -c 1 wrk --latency "$@" 2>&1; }
to_us() { python3 -c "import sys; v=sys.argv[1]
for u,f in (('us',1),('ms',1e3),('s',1e6)):
    if v.endswith(u) and not (u=='s' and v.endswith(('us','ms'))): print(round(float(v[:-len(u)])*f,1)); break" "$1"; }

echo "== steady ~20 req/s, ${steady}s each"
direct=$(run -t1 -c1 -d"${steady}s" -s "$work/steady.lua" "http://127.0.0.1:$up_port/v1/chat/completions")
proxied=$(run -t1 -c1 -d"${steady}s" -s "$work/steady.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions")
d50=$(to_us "$(echo "$direct" | pct 50%)"); d99=$(to_us "$(echo "$direct" | pct 99%)")
p50=$(to_us "$(echo "$proxied" | pct 50%)"); p99=$(to_us "$(echo "$proxied" | pct 99%)")
rate=$(echo "$proxied" | awk '/Requests\/sec/ {print $2}')
echo "direct:  p50 ${d50} us  p99 ${d99} us"
echo "proxied: p50 ${p50} us  p99 ${p99} us  (${rate} req/s)"
python3 -c "print(f'added:   p50 {$p50-$d50:.1f} us  p99 {$p99-$d99:.1f} us')"

echo "== full load: 64 connections, ${load}s (proxy on core 0; wrk + nginx on core 1)"
direct=$(run -t1 -c64 -d"${load}s" -s "$work/post.lua" "http://127.0.0.1:$up_port/v1/chat/completions")
proxied=$(run -t1 -c64 -d"${load}s" -s "$work/post.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions")
echo "direct:  $(echo "$direct" | awk '/Requests\/sec/ {print $2}') req/s  p50 $(echo "$direct" | pct 50%)  p99 $(echo "$direct" | pct 99%)"
echo "proxied: $(echo "$proxied" | awk '/Requests\/sec/ {print $2}') req/s  p50 $(echo "$proxied" | pct 50%)  p99 $(echo "$proxied" | pct 99%)"
errors=$(echo "$proxied" | awk '/Non-2xx|Socket errors/ {print}')
[ -n "$errors" ] && echo "proxied errors: $errors"
responses=$(run -t1 -c64 -d"${load}s" -s "$work/responses.lua" "http://127.0.0.1:$proxy_port/v1/responses")
echo "proxied /v1/responses (translated): $(echo "$responses" | awk '/Requests\/sec/ {print $2}') req/s  p50 $(echo "$responses" | pct 50%)  p99 $(echo "$responses" | pct 99%)"
errors=$(echo "$responses" | awk '/Non-2xx|Socket errors/ {print}')
[ -n "$errors" ] && echo "responses errors: $errors"

row() { # label, wrk output
  echo "$1: $(echo "$2" | awk '/Requests\/sec/ {print $2}') req/s  p50 $(echo "$2" | pct 50%)  p99 $(echo "$2" | pct 99%)"
  local errors; errors=$(echo "$2" | awk '/Non-2xx|Socket errors/ {print}')
  [ -n "$errors" ] && echo "  errors: $errors"
  return 0
}
echo "== full load, Anthropic-kind upstream: 64 connections, ${load}s"
row "proxied /v1/messages (passthrough)" \
  "$(run -t1 -c64 -d"${load}s" -s "$work/messages.lua" "http://127.0.0.1:$proxy_port/v1/messages")"
row "proxied /v1/chat/completions (translated)" \
  "$(run -t1 -c64 -d"${load}s" -s "$work/chat_claude.lua" "http://127.0.0.1:$proxy_port/v1/chat/completions")"

hop() { # label, pid, url path, wrk script, port
  local before after out n
  before=$(cpu_s "$2")
  out=$(run -t1 -c64 -d"${load}s" -s "$4" "http://127.0.0.1:$5$3")
  after=$(cpu_s "$2")
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  row "$1" "$out"
  python3 -c "print(f'  CPU {($after-$before)*1e3/max($n,1):.3f} ms per request ($n requests)')"
}
echo "== nginx proxy_pass, a bare hyper hop and the proxy (each on core 0): 64 connections, ${load}s"
for kind in plain streamed; do
  script="$work/post.lua"; [ "$kind" = streamed ] && script="$work/stream.lua"
  path=/v1/chat/completions; [ "$kind" = streamed ] && path=/stream/v1/chat/completions
  row "direct, $kind" "$(run -t1 -c64 -d"${load}s" -s "$script" "http://127.0.0.1:$up_port$path")"
  hop "nginx proxy_pass, $kind" "$nginx_pid" "$path" "$script" "$nginx_port"
  hop "bare hyper hop, $kind" "$hop_pid" "$path" "$script" "$hop_port"
  hop "understudy, $kind" "$proxy_pid" /v1/chat/completions "$script" "$proxy_port"
done
echo "stream TTFB (time to the first byte, one connection):"
for target in "direct $up_port /stream/v1/chat/completions" "nginx $nginx_port /stream/v1/chat/completions" "hyper_hop $hop_port /stream/v1/chat/completions" "understudy $proxy_port /v1/chat/completions"; do
  set -- $target
  body=$(sed -n "s/^wrk.body = '\\(.*\\)'$/\\1/p" "$work/stream.lua")
  curl -s -o /dev/null -w "$1: %{time_starttransfer}s\n" -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$2$3"
done

echo "== proxy memory"
echo "RSS at idle (after warm-up): $idle_rss"
echo "peak RSS (VmHWM) after load: $(rss "$proxy_pid" VmHWM)"
