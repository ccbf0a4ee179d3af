#!/usr/bin/env bash
# Load test of POST /v1/solve: jigsaw-server against the FastAPI + PyTorch comparison server.
# Usage: bench/load-test.sh [MODEL_FILE] [GRID] [SECONDS] [RSS_SECONDS]
#   MODEL_FILE   weights served by both (default Models/mnist-2x2.safetensors)
#   GRID         grid of the test puzzle (must match the model; default 2)
#   SECONDS      length of each wrk run (default 30)
#   RSS_SECONDS  length of the long run of jigsaw-server that samples its RSS (default 0: skipped)
# Needs: a release build (swift build -c release --product jigsaw-server), wrk, and
# a Python virtual environment with torch, fastapi, uvicorn, pillow,
# scipy: $VENV (default ../venv-torch, beside the package) or its interpreter $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-Models/mnist-2x2.safetensors}
GRID=${2:-2}
SECONDS_PER_RUN=${3:-30}
RSS_SECONDS=${4:-0}
VENV=${VENV:-../venv-torch}
PYTHON=${PYTHON:-$VENV/bin/python}
PUZZLE=$(mktemp --suffix=.png)
LOG=$(mktemp)
python3 bench/make_puzzle.py --grid "$GRID" --out "$PUZZLE"
export PUZZLE

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }

.build/release/jigsaw-server --port 0 --model "$MODEL" --no-access-log >"$LOG" 2>&1 &
OURS=$!
trap 'kill $OURS 2>/dev/null || true; [ -n "${THEIRS:-}" ] && kill $THEIRS 2>/dev/null || true; rm -f "$PUZZLE" "$LOG"' EXIT
for _ in $(seq 50); do grep -q listening "$LOG" && break; sleep 0.1; done
PORT=$(grep -o 'listening on http://[^ ]*' "$LOG" | sed 's/.*://')
echo "== jigsaw-server (port $PORT), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -s -o /dev/null -w 'warm-up: %{http_code}\n' -X POST --data-binary @"$PUZZLE" -H 'Content-Type: image/png' "http://127.0.0.1:$PORT/v1/solve"
wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --latency -s bench/solve.lua "http://127.0.0.1:$PORT/v1/solve"

"$PYTHON" bench/fastapi_server.py --weights "$MODEL" --port 8081 --workers 2 --threads 1 >/dev/null 2>&1 &
THEIRS=$!
for _ in $(seq 300); do curl -s -o /dev/null -X POST --data-binary @"$PUZZLE" http://127.0.0.1:8081/v1/solve && break; sleep 0.2; done
echo "== FastAPI + PyTorch (2 uvicorn workers, 1 torch thread each), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" --latency -s bench/solve.lua http://127.0.0.1:8081/v1/solve
kill $THEIRS; wait $THEIRS 2>/dev/null || true; THEIRS=

if [ "$RSS_SECONDS" -gt 0 ]; then
  echo "== jigsaw-server RSS over ${RSS_SECONDS}s of load"
  echo "RSS before: $(rss $OURS)"
  wrk -t2 -c16 -d"${RSS_SECONDS}s" -s bench/solve.lua "http://127.0.0.1:$PORT/v1/solve" &
  WRK=$!
  sleep 10; echo "RSS after 10 s: $(rss $OURS)"
  wait $WRK
  echo "RSS at the end: $(rss $OURS), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
