#!/usr/bin/env bash
# One scripted GPU run: Redis, a Kuwa gateway and a vllm executor on tinyllama (dummy weights),
# then bench/gpu/gpu_bench.py (Kuwa, vLLM alone, Kuwa again; cancel check). Run from the
# repository root on the GPU host after `source .gpu/remote_install.sh` has set up /tmp/site:
#   bash bench/gpu/run.sh            (logs and results under $OUT, default /tmp/out)
# LOCAL=1 runs the same flow here with the debug backend and no direct vLLM (a dry run).
set -uo pipefail
ACC=${ACC:-/tmp/acc}
OUT=${OUT:-/tmp/out}
PY=${PY:-python3}
LOCAL=${LOCAL:-0}
mkdir -p "$OUT" /tmp/kuwa-site
started=$(date +%s)
log() { echo "[$(( $(date +%s) - started ))s] $*"; }

# Kuwa from this checkout (the newest code), its entry points included.
# A wheel built beside the parts (.gpu/kuwa-*.whl) is used when present.
if ls .gpu/kuwa-*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-deps --no-index --upgrade --target /tmp/kuwa-site .gpu/kuwa-*.whl
else
  $PY -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/kuwa-site . 2>/dev/null \
    || $PY -m pip install -q --no-deps --target /tmp/kuwa-site .
fi || { log "installing kuwa failed"; exit 1; }
export PYTHONPATH="/tmp/kuwa-site${PYTHONPATH:+:$PYTHONPATH}"

# Redis from the shipped Debian packages (never unpacked into /).
if [ "$LOCAL" = 1 ]; then
  REDIS_BIN=$(command -v redis-server)
else
  mkdir -p /tmp/deb
  for f in "$ACC"/ship/*.deb; do dpkg -x "$f" /tmp/deb; done
  export LD_LIBRARY_PATH="/tmp/deb/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  REDIS_BIN=/tmp/deb/usr/bin/redis-server
fi
PORT_REDIS=6390
$REDIS_BIN --port $PORT_REDIS --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --logfile "$OUT/redis.log" || { log "redis failed"; exit 1; }
export KUWA_REDIS_URL=redis://127.0.0.1:$PORT_REDIS/0 KUWA_DATA_DIR=/tmp/kuwa-bench-data
rm -rf "$KUWA_DATA_DIR"

$PY -m kuwa user create --email bench@localhost --name Bench --password bench-password \
  || { log "user create failed"; exit 1; }
TOKEN=$($PY -m kuwa user token --email bench@localhost)
$PY -m kuwa gateway start --port 8000 --workers "${WORKERS:-4}" >"$OUT/gateway.log" 2>&1 &
GATEWAY=$!
if [ "$LOCAL" = 1 ]; then
  $PY -m kuwa executor start --backend debug --access-code tinyllama --max-concurrency 256 \
    >"$OUT/executor.log" 2>&1 &
else
  $PY -m kuwa executor start --backend vllm --model "$ACC/tinyllama" --access-code tinyllama \
    --load-format dummy --enforce-eager --dtype bfloat16 --gpu-memory-utilization 0.4 \
    --max-model-len 2048 --max-concurrency 256 >"$OUT/executor.log" 2>&1 &
fi
EXECUTOR=$!
log "waiting for the executor (engine start)"
for _ in $(seq 300); do
  if curl -sf -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/v1/models | grep -q tinyllama; then
    break
  fi
  if ! kill -0 $EXECUTOR 2>/dev/null; then
    if [ "$LOCAL" != 1 ] && [ -z "${KUWA_EVENT_LOOP:-}" ]; then
      log "executor died on uvloop; retrying on asyncio"; tail -20 "$OUT/executor.log"
      export KUWA_EVENT_LOOP=asyncio
      $PY -m kuwa executor start --backend vllm --model "$ACC/tinyllama" --access-code tinyllama \
        --load-format dummy --enforce-eager --dtype bfloat16 --gpu-memory-utilization 0.4 \
        --max-model-len 2048 --max-concurrency 256 >"$OUT/executor2.log" 2>&1 &
      EXECUTOR=$!
    else
      log "executor died"; tail -50 "$OUT/executor.log"; exit 1
    fi
  fi
  sleep 1
done
log "executor live"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$OUT/gpu.txt"
$PY -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)' 2>/dev/null | tee -a "$OUT/gpu.txt"
args=(--token "$TOKEN" --model tinyllama --model-dir "$ACC/tinyllama")
[ "$LOCAL" = 1 ] && args+=(--skip-direct)
PYTHONUNBUFFERED=1 $PY bench/gpu/gpu_bench.py "${args[@]}" 2>&1 | tee "$OUT/bench.log"
status=${PIPESTATUS[0]}
log "bench finished ($status); stopping"
kill -TERM $EXECUTOR $GATEWAY 2>/dev/null
wait $EXECUTOR $GATEWAY 2>/dev/null
redis-cli -p $PORT_REDIS shutdown nosave 2>/dev/null || kill "$(pgrep -f "redis-server 127.0.0.1:$PORT_REDIS")" 2>/dev/null
tail -5 "$OUT/executor.log"
log "done"
exit "$status"
