#!/usr/bin/env bash
# Smoke test against a running proxy: health, models, one plain and one streamed
# completion. Usage: scripts/smoke.sh [BASE_URL] (default http://127.0.0.1:8080)
# Set UNDERSTUDY_KEY if the proxy requires a client key.
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
auth=()
[ -n "${UNDERSTUDY_KEY:-}" ] && auth=(-H "Authorization: Bearer $UNDERSTUDY_KEY")

echo "== GET /healthz";  curl -fsS "$base/healthz"
echo "== GET /readyz";   curl -sS "$base/readyz"
echo "== GET /v1/models"; curl -fsS "${auth[@]}" "$base/v1/models"; echo
echo "== POST /v1/chat/completions"
curl -sS --fail-with-body -D - "${auth[@]}" "$base/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model":"default","messages":[{"role":"user","content":"Say hello in five words."}]}'
echo
echo "== POST /v1/chat/completions (stream)"
curl -sS --fail-with-body -N "${auth[@]}" "$base/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model":"default","stream":true,"messages":[{"role":"user","content":"Count to five."}]}'
echo
echo "== GET /status"; curl -fsS "$base/status"; echo
