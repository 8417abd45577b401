#!/usr/bin/env bash
# What the proxy adds to a 100-input embeddings request, against calling the upstream
# directly, for each kind of upstream.
#
#   upstream: nginx (Debian) answering fixed 100 x 1536 answers in each provider's
#             wire format (OpenAI floats, OpenAI base64, Gemini batchEmbedContents,
#             Ollama /api/embed), as recorded answers look (f32 values printed as
#             the provider prints them)
#   load:     wrk (Debian), one keep-alive connection, requests back to back, POST of
#             100 short texts; latency percentiles direct and through the proxy
#   pinning:  the proxy on core 0; wrk and nginx on core 1 (taskset)
#
# Rows: OpenAI with base64 (what the openai SDKs ask for by default) and with floats
# (both passed through, vectors kept as written), Gemini with base64 asked by the
# client (translated; the proxy parses the numbers and encodes them), Ollama with
# floats (translated; parsed and printed again).
# Usage: scripts/bench_embeddings.sh [seconds]   (default 15 per run)
# Needs root for apt-get the first time (wrk, nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}

# shellcheck source=scripts/bench_setup.sh
. scripts/bench_setup.sh

# The answers and the request bodies.
python3 - "$work" <<'PY'
import array, base64, json, random, struct, sys
work = sys.argv[1]
random.seed(7)
n, dims = 100, 1536
def f32(x): return struct.unpack("f", struct.pack("f", x))[0]
vecs = [[f32(random.gauss(0, 0.03)) for _ in range(dims)] for _ in range(n)]
def short(x): return float(f"{x:.9g}")  # Gemini/Ollama print f32 shortest-ish
usage = {"prompt_tokens": 600, "total_tokens": 600}
def openai(emb):
    return {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": emb(v)}
            for i, v in enumerate(vecs)], "model": "text-embedding-3-small", "usage": usage}
b64 = lambda v: base64.b64encode(array.array("f", v).tobytes()).decode()
files = {
    "float.json": openai(lambda v: v),
    "b64.json": openai(b64),
    "gemini.json": {"embeddings": [{"values": [short(x) for x in v]} for v in vecs]},
    "ollama.json": {"model": "nomic-embed-text", "embeddings": [[short(x) for x in v] for v in vecs],
                    "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 600},
}
for name, doc in files.items():
    with open(f"{work}/{name}", "w") as f:
        json.dump(doc, f, separators=(",", ":"))
texts = [f"document number {i}: a short paragraph about the weather in town {i}" for i in range(n)]
bodies = {
    "req_openai_b64.json": {"model": "MODEL", "input": texts, "encoding_format": "base64"},
    "req_openai_float.json": {"model": "MODEL", "input": texts, "encoding_format": "float"},
    "req_gemini_native.json": {"requests": [{"model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": t}], "role": "user"}} for t in texts]},
    "req_ollama_native.json": {"model": "nomic-embed-text", "input": texts},
}
for name, doc in bodies.items():
    with open(f"{work}/{name}", "w") as f:
        json.dump(doc, f)
PY

# nginx serves files to GET only; `error_page 405 =200 $uri` answers a POST with the
# file too.
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work;
  client_max_body_size 10m;
  default_type application/json;
  server {
    listen 127.0.0.1:$up_port;
    location = /float/v1/embeddings { alias $work/float.json; error_page 405 =200 \$uri; }
    location = /b64/v1/embeddings { alias $work/b64.json; error_page 405 =200 \$uri; }
    location = "/v1beta/models/gemini-embedding-001:batchEmbedContents" { alias $work/gemini.json; error_page 405 =200 \$uri; }
    location = /api/embed { alias $work/ollama.json; error_page 405 =200 \$uri; }
  }
}
NGINX
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)

cat > "$work/proxy.toml" <<TOML
[server]
listen = "127.0.0.1:$proxy_port"
[providers.oa_b64]
kind = "openai"
base_url = "http://127.0.0.1:$up_port/b64/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
[providers.oa_float]
kind = "openai"
base_url = "http://127.0.0.1:$up_port/float/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
[providers.gm]
kind = "gemini"
base_url = "http://127.0.0.1:$up_port"
api_key_env = "BENCH_UPSTREAM_KEY"
[providers.ol]
kind = "ollama"
base_url = "http://127.0.0.1:$up_port"
[[routes]]
model = "openai-b64"
targets = ["oa_b64/text-embedding-3-small"]
[[routes]]
model = "openai-float"
targets = ["oa_float/text-embedding-3-small"]
[[routes]]
model = "gemini"
targets = ["gm/gemini-embedding-001"]
[[routes]]
model = "ollama"
targets = ["ol/nomic-embed-text"]
TOML
BENCH_UPSTREAM_KEY=sk-bench RUST_LOG=warn taskset -c 0 "$bin" --config "$work/proxy.toml" 2>"$work/proxy.log" &
pids+=($!)

for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$proxy_port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# A wrk script POSTing a body file, with the route's model put in.
script() {
  local body=$1 model=$2 out=$work/$3.lua
  python3 - "$work/$body" "$model" > "$out" <<'PY'
import json, sys
body = open(sys.argv[1]).read().replace('"MODEL"', json.dumps(sys.argv[2]))
print('wrk.method = "POST"')
print('wrk.headers["Content-Type"] = "application/json"')
print(f"wrk.body = {json.dumps(body)}")
PY
  echo "$out"
}

# Every answer checked once before timing: a 200 holding 100 vectors.
check() {
  local url=$1 body=$2
  python3 - "$url" "$body" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=open(sys.argv[2], "rb").read(),
                             headers={"content-type": "application/json"})
doc = json.load(urllib.request.urlopen(req))
n = len(doc.get("data") or doc.get("embeddings") or [])
assert n == 100, f"{sys.argv[1]}: {n} vectors"
PY
}

to_ms() { python3 -c "import sys; v=sys.argv[1]
for u,f in (('us',1e-3),('ms',1),('s',1e3)):
    if v.endswith(u) and not (u=='s' and v.endswith(('us','ms'))): print(round(float(v[:-len(u)])*f,2)); break" "$1"; }
run() { taskset -c 1 wrk --latency -t1 -c1 -d"${secs}s" -s "$2" "$1" 2>&1; }

row() {
  local name=$1 direct_url=$2 direct_body=$3 model=$4 proxy_body=$5
  local ds ps
  ds=$(script "$direct_body" "text-embedding-3-small" "d-$name")
  ps=$(script "$proxy_body" "$model" "p-$name")
  sed -e "s/\"MODEL\"/\"$model\"/" "$work/$proxy_body" > "$work/check-$name.json"
  check "$direct_url" "$work/$direct_body"
  check "http://127.0.0.1:$proxy_port/v1/embeddings" "$work/check-$name.json"
  run "$direct_url" "$ds" >/dev/null   # warm-up
  run "http://127.0.0.1:$proxy_port/v1/embeddings" "$ps" >/dev/null
  local d p
  d=$(run "$direct_url" "$ds")
  p=$(run "http://127.0.0.1:$proxy_port/v1/embeddings" "$ps")
  local d50 d99 p50 p99
  d50=$(to_ms "$(echo "$d" | pct 50%)"); d99=$(to_ms "$(echo "$d" | pct 99%)")
  p50=$(to_ms "$(echo "$p" | pct 50%)"); p99=$(to_ms "$(echo "$p" | pct 99%)")
  python3 -c "print(f'$name: answer {$(stat -c %s "$work/$6")/1048576:.2f} MiB; direct p50 {$d50} ms p99 {$d99} ms; proxied p50 {$p50} ms p99 {$p99} ms; added p50 {$p50-$d50:.2f} ms')"
}

up=http://127.0.0.1:$up_port
echo "== 100 inputs x 1536 dims, one connection, ${secs}s per run (proxy core 0; wrk + nginx core 1)"
row openai-base64 "$up/b64/v1/embeddings" req_openai_b64.json openai-b64 req_openai_b64.json b64.json
row openai-float "$up/float/v1/embeddings" req_openai_float.json openai-float req_openai_float.json float.json
row gemini-to-base64 "$up/v1beta/models/gemini-embedding-001:batchEmbedContents" req_gemini_native.json gemini req_openai_b64.json gemini.json
row ollama-to-float "$up/api/embed" req_ollama_native.json ollama req_openai_float.json ollama.json
