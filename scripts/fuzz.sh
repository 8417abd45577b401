#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of everything that reads bytes a
# client, an upstream or an operator controls; the targets live in tests/fuzz.
#
#   scripts/fuzz.sh TARGET SECONDS   run one target (decode, request, response,
#                                    stream, config, retry_hint) for SECONDS
#   scripts/fuzz.sh all SECONDS      run each target for SECONDS, one after another
#
# Installs the pinned cargo-fuzz if missing; runs on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets it pass the nightly-only -Z flags). Each target's corpus,
# tests/fuzz/corpus/TARGET (not in git), is seeded from fixtures/ on every run and
# keeps what libFuzzer finds between runs. A crash leaves its input in
# tests/fuzz/artifacts/TARGET/ and fails the script; `cargo fuzz run --fuzz-dir
# tests/fuzz TARGET FILE` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_DIR=tests/fuzz
export RUSTC_BOOTSTRAP=1

if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET|all SECONDS" >&2
  exit 2
fi
target=$1
seconds=$2

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# No sanitizer: the proxy forbids unsafe code, so what there is to find is panics,
# overflows (debug assertions are on), hangs and runaway memory — which libFuzzer
# reports by itself — and ASan would halve the executions per second.
flags=(--fuzz-dir "$FUZZ_DIR" --sanitizer none --debug-assertions)

all=$(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
if [ "$target" = all ]; then
  targets=$all
elif grep -qxF "$target" <<<"$all"; then
  targets=$target
else
  echo "unknown target $target; one of: $(echo $all)" >&2
  exit 2
fi

# Seeds: one byte (or two) that the target reads as a selector, then a fixture.
corpus=""
put() { # put NAME SELECTOR_BYTES(octal escapes) FILE|-
  local out=$corpus/$1
  { printf "$2"; if [ "$3" = - ]; then cat; else cat "$3"; fi; } >"$out"
}
small() { [ "$(wc -c <"$1")" -le 65536 ]; }
oct() { printf '\\%03o' "$1"; }
# The provider indexes of tests/fuzz/src/world.rs PROVIDERS.
declare -A provider=([openai]=0 [openai_native]=1 [azure]=2 [azure_native]=3 [anthropic]=4 [gemini]=5 [ollama]=6)

seed() {
  corpus=$FUZZ_DIR/corpus/$1
  mkdir -p "$corpus"
  local f name k
  case $1 in
  decode)
    for f in fixtures/*/*.sse fixtures/*/*.ndjson; do
      name=$(basename "$(dirname "$f")")_$(basename "$f")
      case $f in *.sse) k=0 ;; *) k=1 ;; esac
      put "$name" "$(oct $k)\\007" "$f"
    done
    ;;
  request)
    # Chat bodies, Messages bodies, and the "openai" half of Ollama's request pairs.
    for f in fixtures/*/request_*.openai.json; do
      put "chat_$(basename "$(dirname "$f")")_$(basename "$f")" '\000' "$f"
    done
    for f in fixtures/ollama/request_*.json; do
      python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["openai"]))' "$f" |
        put "chat_ollama_$(basename "$f")" '\000' -
    done
    for f in fixtures/anthropic/request_*.anthropic.json; do
      put "messages_$(basename "$f")" '\002' "$f"
      put "count_tokens_$(basename "$f")" '\003' "$f"
    done
    put responses_text '\001' - <<<'{"model":"m","input":"hi","instructions":"be brief","max_output_tokens":64,"stream":true}'
    put responses_items '\001' - <<<'{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"weather?"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call_output","call_id":"c1","output":"20C"},{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"think"}],"encrypted_content":"abc"}],"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}},{"type":"web_search"}],"tool_choice":"auto","reasoning":{"effort":"low","summary":"auto"},"text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"}}}}'
    put responses_previous '\001' - <<<'{"model":"m","input":[{"type":"item_reference","id":"fc_1"}],"previous_response_id":"resp_1","store":false}'
    put messages_thinking '\002' - <<<'{"model":"m","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"sig"},{"type":"tool_use","id":"tu_1","name":"f","input":{"a":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"tu_1","content":[{"type":"text","text":"ok"}],"is_error":false}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"any"},"stop_sequences":["x"],"stream":true}'
    ;;
  response)
    # selector = provider + 7 × front door
    local door kind p
    for kind in openai anthropic gemini ollama; do
      for f in fixtures/$kind/response_*.json fixtures/$kind/error_*.json fixtures/$kind/responses_*.json; do
        [ -e "$f" ] && small "$f" || continue
        for p in "${!provider[@]}"; do
          [[ $p == "$kind"* || ($kind == openai && $p == azure*) ]] || continue
          for door in 0 1 2; do
            put "${p}_${door}_$(basename "$f")" "$(oct $((provider[$p] + 7 * door)))" "$f"
          done
        done
      done
    done
    ;;
  stream)
    # selector = provider + 7 × (front door + 3 × request variant)
    local door variant kind p
    for kind in openai anthropic gemini ollama; do
      for f in fixtures/$kind/stream_* fixtures/$kind/responses_stream.sse; do
        [ -e "$f" ] || continue
        local ps=$kind
        [ "$kind" != openai ] || ps="openai azure"
        [[ $(basename "$f") != responses_* ]] || ps="openai_native azure_native"
        for p in $ps; do
          for door in 0 1 2; do
            for variant in 0 1; do
              put "${p}_${door}${variant}_$(basename "$f")" \
                "$(oct $((provider[$p] + 7 * (door + 3 * variant))))\\005" "$f"
            done
          done
        done
      done
    done
    ;;
  config)
    put proxy.toml '' proxy.toml
    put deploy_proxy.toml '' deploy/proxy.toml
    put everything '' - <<'TOML'
[server]
listen = "127.0.0.1:8080"
api_keys_env = "KEYS"
max_body_bytes = 1024
[timeouts]
connect = "1s 500ms"
[failover]
on_status = [429, 503]
max_attempts = 3
hedge_after = "2s"
[cache]
enabled = true
max_entries = 100
[responses]
ttl = "1h"
[state]
backend = "redis"
url_env = "REDIS_URL"
[passthrough]
provider = "o"
[fallback]
message = "later"
[providers.o]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "K"
headers = { "x-a" = "b" }
timeouts = { first_byte = "20s" }
proxy = "http://user:pw@127.0.0.1:3128"
[providers.a]
kind = "azure"
base_url = "https://r.openai.azure.com"
api_key_env = "K"
api_version = "2024-10-21"
responses = "native"
[[routes]]
model = "default"
strategy = "weighted"
targets = ["o/gpt-4o", { target = "a/dep", weight = 3, timeouts = { total = "1m" } }]
TOML
    ;;
  retry_hint)
    put seconds '\000\000\000\000' - <<<'retry-after: 30'
    put date '\000\000\000\000' - <<<'retry-after: Wed, 21 Oct 2026 07:28:00 GMT'
    put ms '\000\000\000\000' - <<<'retry-after-ms: 1500.5'
    put azure '\000\000\000\000' - <<<'x-ms-retry-after-ms: 250'
    put openai '\000\000\000\000' - <<<$'x-ratelimit-reset-requests: 6m0s\nx-ratelimit-reset-tokens: 1h2m3.5s'
    put anthropic '\000\000\000\000' - <<<'anthropic-ratelimit-requests-reset: 2026-10-21T07:28:00Z'
    put epoch '\000\000\000\000' - <<<'x-ratelimit-reset: 1784000030'
    ;;
  esac
}

echo "==> building the fuzz targets"
cargo fuzz build "${flags[@]}"

failed=0
for t in $targets; do
  seed "$t"
  echo "==> fuzzing $t for ${seconds}s"
  mkdir -p "$FUZZ_DIR/artifacts/$t"
  if ! cargo fuzz run "${flags[@]}" "$t" "$FUZZ_DIR/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/artifacts/$t/"; then
    echo "!! $t failed: see $FUZZ_DIR/artifacts/$t/" >&2
    failed=1
  fi
done
exit $failed
