# Shared by the bench scripts (sourced, from the repository root): wrk and nginx
# installed, two cores to pin the proxy and the load apart, a release build, a work
# directory and the processes started in it cleaned up on exit, and two free ports
# ($up_port for the upstream, $proxy_port for the proxy), and the fixed nginx upstream
# (`start_upstream`).
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq wrk nginx >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then echo "needs 2 cores to pin proxy and load apart" >&2; exit 1; fi

# BIN=path measures another build (an older commit's, say) with the same script.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BIN:-target/release/understudy}
# shellcheck source=scripts/work_setup.sh
. scripts/work_setup.sh
up_port=$(free_port)
proxy_port=$(free_port)

# wrk's latency percentile `$1` (50%, 99%) from its --latency output on stdin.
pct() { awk -v p="$1" '$1==p {print $2}'; }

# CPU seconds (user+sys) a process has used, from /proc/<pid>/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' "/proc/$1/stat"; }

# The fixed upstream every bench talks to: a chat.completion, and a 20-chunk chat
# stream (role, 17 words, finish, usage) and [DONE] as nginx's escaped return text
# (short ids keep it under nginx's 4 KiB limit for one config token).
answer='{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
stream_answer=$(python3 - <<'PY'
import json
def chunk(delta, finish=None):
    return {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o", "choices": [{"index": 0, "delta": delta,
            "finish_reason": finish}]}
events = [chunk({"role": "assistant", "content": ""})]
events += [chunk({"content": f" w{i}"}) for i in range(17)]
events += [chunk({}, "stop")]
events += [{"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "gpt-4o", "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 17, "total_tokens": 29}}]
body = "".join(f"data: {json.dumps(e, separators=(',', ':'))}\\n\\n" for e in events)
print(body + "data: [DONE]\\n\\n")
PY
)

# Starts that upstream (nginx on core 1, at $up_port): `/` answers the
# chat.completion, `/stream/` the stream; $1 adds more `location` lines.
start_upstream() {
  cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work;
  server {
    listen 127.0.0.1:$up_port;
    location / { default_type application/json; return 200 '$answer'; }
    location /stream/ { default_type text/event-stream; return 200 '$stream_answer'; }
    ${1:-}
  }
}
NGINX
  taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" &
  pids+=($!)
}
