# Sourced by the measuring scripts (from the repository root): a work directory and
# the processes started in it (pids+=(...)) cleaned up on exit, and free_port.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Serves $work/proxy.toml with $BIN on port $1 (an OpenAI-kind provider `up` on port
# $2 behind the `default` route; $3: extra [server] keys, $4: extra provider keys),
# and waits until it answers. Sets $proxy to its pid.
start_proxy() {
  cat > "$work/proxy.toml" <<TOML
[server]
listen = "127.0.0.1:$1"
$3
[providers.up]
kind = "openai"
base_url = "http://127.0.0.1:$2/v1"
api_key_env = "LOAD_KEY"
$4
[[routes]]
model = "default"
targets = ["up/m"]
TOML
  LOAD_KEY=k RUST_LOG=error "$BIN" --config "$work/proxy.toml" 2>"$work/proxy.log" & proxy=$!
  pids+=("$proxy")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && break; sleep 0.1; done
}
