#!/usr/bin/env bash
# Throughput of POST /v1/solve: jigsaw-server against the FastAPI + PyTorch comparison server,
# the same request body and the same weights file, one model, one puzzle per request.
#
# Usage: bench/compare_servers.sh MODEL [CONNECTIONS] [DURATION]
#   MODEL        a model name in Models/ (mnist-3x3, photo-4x4, ...) or a .safetensors path
#   CONNECTIONS  wrk connections (default 16)
#   DURATION     seconds of each wrk run (default 30)
# Environment:
#   SERVER         jigsaw-server binary (default .build/release/jigsaw-server)
#   SWIFT_FLAGS    extra jigsaw-server flags, e.g. "--max-batch 1" (no dynamic batching)
#   TORCH_PYTHON   Python with torch, scipy, fastapi, uvicorn, pillow (default ../venv-torch/bin/python)
#   TORCH_THREADS  torch intra-op threads per uvicorn worker (default 2)
#   TORCH_WORKERS  uvicorn worker processes (default 1)
#   ROUTE          png (scrambled image body, default) or pieces (JSON piece list)
#   SEED           puzzle seed (default 0)
#   WRK_THREADS    wrk threads (default 2); WRK_TIMEOUT request timeout (default 10s)
# Prints each run's requests/s, p50/p90/p99 and errors, the load average before it, and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: bench/compare_servers.sh MODEL [CONNECTIONS] [DURATION]}
CONNECTIONS=${2:-16}
DURATION=${3:-30}
SERVER=${SERVER:-.build/release/jigsaw-server}
TORCH_PYTHON=${TORCH_PYTHON:-../venv-torch/bin/python}
TORCH_THREADS=${TORCH_THREADS:-2}
TORCH_WORKERS=${TORCH_WORKERS:-1}
ROUTE=${ROUTE:-png}
SEED=${SEED:-0}
WRK_THREADS=${WRK_THREADS:-2}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
SWIFT_FLAGS=${SWIFT_FLAGS:-}
case "$MODEL" in
  *.safetensors) FILE=$MODEL ;;
  *) FILE=Models/$MODEL.safetensors ;;
esac
[ -f "$FILE" ] || { echo "no model file $FILE" >&2; exit 2; }
[ -x "$SERVER" ] || { echo "no jigsaw-server at $SERVER (set SERVER)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
NAME=$(basename "$FILE" .safetensors)

WORK=$(mktemp -d)
OURS= THEIRS=
cleanup() {
  for pid in $OURS $THEIRS; do kill "$pid" 2>/dev/null || true; done
  for pid in $OURS $THEIRS; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

CONTENT_TYPE=$("$TORCH_PYTHON" bench/make_request.py "$FILE" --out "$WORK/body" --route "$ROUTE" --seed "$SEED")
export PUZZLE=$WORK/body CONTENT_TYPE

# shellcheck disable=SC2086
"$SERVER" --model "$FILE" --port 0 --no-access-log $SWIFT_FLAGS >"$WORK/swift.log" 2>&1 &
OURS=$!
for _ in $(seq 300); do grep -q 'listening on' "$WORK/swift.log" && break; sleep 0.1; done
SWIFT_PORT=$(grep -o 'listening on http://[^ ]*' "$WORK/swift.log" | sed 's/.*://')
[ -n "$SWIFT_PORT" ] || { cat "$WORK/swift.log" >&2; exit 1; }

TORCH_PORT=$("$TORCH_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TORCH_PYTHON" bench/fastapi_server.py --weights "$FILE" --port "$TORCH_PORT" --threads "$TORCH_THREADS" \
  --workers "$TORCH_WORKERS" >"$WORK/torch.log" 2>&1 &
THEIRS=$!
for _ in $(seq 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$TORCH_PORT/healthz" && break
  kill -0 "$THEIRS" 2>/dev/null || { cat "$WORK/torch.log" >&2; exit 1; }
  sleep 0.2
done

SWIFT_URL="http://127.0.0.1:$SWIFT_PORT/v1/solve?model=$NAME"
TORCH_URL="http://127.0.0.1:$TORCH_PORT/v1/solve?model=$NAME"
permutation() {
  curl -sf -X POST --data-binary @"$PUZZLE" -H "Content-Type: $CONTENT_TYPE" "$1" |
    "$TORCH_PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["permutation"])'
}
SWIFT_PERMUTATION=$(permutation "$SWIFT_URL")
TORCH_PERMUTATION=$(permutation "$TORCH_URL")
echo "model $NAME ($FILE), route $ROUTE ($CONTENT_TYPE, $(wc -c <"$PUZZLE") bytes), $CONNECTIONS connections, ${DURATION}s per run, $(nproc) cores"
echo "jigsaw-server permutation   $SWIFT_PERMUTATION"
echo "FastAPI+PyTorch permutation $TORCH_PERMUTATION"
[ "$SWIFT_PERMUTATION" = "$TORCH_PERMUTATION" ] || echo "note: the permutations differ (identical pieces are interchangeable; bench/parity_server.py checks)"

run() {  # label url
  local label=$1 url=$2 out="$WORK/$1.wrk"
  for _ in 1 2 3; do curl -s -o /dev/null -X POST --data-binary @"$PUZZLE" -H "Content-Type: $CONTENT_TYPE" "$url"; done
  echo "== $label, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency -s bench/solve.lua "$url" >"$out"
  grep -E 'Requests/sec|Socket errors|non-2xx|socket errors|p50' "$out" | sed 's/^/   /'
}
run swift "$SWIFT_URL"
run torch "$TORCH_URL"

summary() {  # file -> "rps p50 p99 errors"
  awk '
    /^p50/ { gsub(",", ""); p50 = $2; p99 = $8; rps = $11 }
    /^non-2xx/ { status = $3 }
    /^socket errors/ { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d\n", rps, p50, p99, status + sock }' "$1"
}
read -r S_RPS S_P50 S_P99 S_ERR <<<"$(summary "$WORK/swift.wrk")"
read -r T_RPS T_P50 T_P99 T_ERR <<<"$(summary "$WORK/torch.wrk")"
printf '\n| server | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|\n'
printf '| jigsaw-server %s | %s | %s | %s | %s |\n' "${SWIFT_FLAGS:-(defaults)}" "$S_RPS" "$S_P50" "$S_P99" "$S_ERR"
printf '| FastAPI + PyTorch (%s worker(s) x %s threads) | %s | %s | %s | %s |\n' "$TORCH_WORKERS" "$TORCH_THREADS" \
  "$T_RPS" "$T_P50" "$T_P99" "$T_ERR"
awk -v s="$S_RPS" -v t="$T_RPS" 'BEGIN { if (t > 0) printf "requests/s ratio jigsaw-server / FastAPI+PyTorch: %.2f\n", s / t }'
