#!/usr/bin/env bash
# Benchmarks the Redis plugin on the standard workload (shared/bench/WORKLOAD.md) through
# the host, next to redis-benchmark's raw SET/GET figures on the same server, then counts
# the round trips per operation of a small run.
#
# Usage: scripts/bench-redis.sh            # starts a scratch redis-server on a free port
#        REDIS_PORT=6379 scripts/bench-redis.sh   # uses a running server on 127.0.0.1: the
#                                                 # bench writes and deletes its tasks under the
#                                                 # prefix ta-bench, and resets the server's
#                                                 # command statistics
#        TASKS=2000 scripts/bench-redis.sh        # a shorter run
#        BIG_ITEMS=0 scripts/bench-redis.sh       # without the one-large-task timings
#        ONLY_BIG=1 scripts/bench-redis.sh        # only the one-large-task timings
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

TASKS=${TASKS:-10000}
BIG_ITEMS=${BIG_ITEMS:-100000}
ONLY_BIG=${ONLY_BIG:-}
PORT=${REDIS_PORT:-}
PREFIX=ta-bench
scratch=
monitor=

cleanup() {
  [ -n "$monitor" ] && rm -f "$monitor"
  if [ -n "$scratch" ]; then
    stop_redis "$PORT"
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT

if [ -z "$PORT" ]; then
  PORT=$(free_port 21000)
  scratch=$(mktemp -d)
  start_redis "$PORT" "$scratch"
fi
redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT"

cargo build --release --quiet -p ta-persistence -p ta-plugin-redis --bin ta-persist --lib
plugin=$(pwd)/target/release/libta_plugin_redis.so

persist() {
  TA_PERSISTENCE_MODULE="$plugin" TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager \
    TA_PERSISTENCE_STRICT=true TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$PORT" \
    TA_REDIS_PREFIX="$PREFIX" TA_REDIS_TIMEOUT_MS="${TA_REDIS_TIMEOUT_MS:-5000}" \
    target/release/ta-persist "$@"
}

# One task with BIG_ITEMS items of distinct request ids, as any writer (a Python agent
# included) may store it, written straight into Redis; then the wall time of `ta-persist
# get` (load) and `ta-persist find` (lookup by the last item's request id), three runs
# each, process start and the loading of the plugin included. The time limit is raised so
# that a slow read is timed rather than cut off.
big_task() {
  local id=big-task rid="big-rq-$((BIG_ITEMS - 1))" doc
  doc=$(mktemp)
  python3 - "$BIG_ITEMS" "$id" >"$doc" <<'PY'
import json, sys
n, task_id = int(sys.argv[1]), sys.argv[2]
at = "2025-01-01T00:00:00"
items = [{"task_id": task_id, "request_id": f"big-rq-{i}", "role": "user",
          "item": {"content_type": "text", "content": f"message {i}"}, "updated": at,
          "pending_tool_calls": None, "chat_history": None} for i in range(n)]
task = {"task_id": task_id, "session_id": "s", "user_id": "u", "items": items,
        "created_at": at, "last_updated": at, "status": "Running"}
sys.stdout.write(json.dumps(task, separators=(",", ":")))
PY
  redis-cli -h 127.0.0.1 -p "$PORT" -x set "$PREFIX:task:$id" <"$doc" >/dev/null
  redis-cli -h 127.0.0.1 -p "$PORT" sadd "$PREFIX:request_index:$rid" "$id" >/dev/null
  echo "one task of $BIG_ITEMS items, $(wc -c <"$doc") bytes; seconds per call, three runs:"
  rm -f "$doc"
  for what in "get $id" "find $rid"; do
    printf '  %-5s' "${what%% *}"
    for _ in 1 2 3; do
      start=$(date +%s.%N)
      TA_REDIS_TIMEOUT_MS=600000 persist $what >/dev/null
      printf ' %.3f' "$(echo "$(date +%s.%N) - $start" | bc)"
    done
    echo
  done
  redis-cli -h 127.0.0.1 -p "$PORT" del "$PREFIX:task:$id" "$PREFIX:request_index:$rid" >/dev/null
}

if [ -n "$ONLY_BIG" ]; then
  echo
  echo "== one large task =="
  big_task
  exit 0
fi

echo
echo "== ta-persist bench: Redis plugin, $TASKS tasks =="
persist bench --tasks "$TASKS" --concurrency 1,64

echo
echo "== redis-benchmark: SET/GET of 1600-byte values, same server =="
for c in 1 64; do
  echo "-c $c:"
  redis-benchmark -h 127.0.0.1 -p "$PORT" -t set,get -n 200000 -d 1600 -q -c "$c" | tr '\r' '\n' | grep -E '^(SET|GET):.*requests per second' | sed 's/^/  /'
done

echo
echo "== round trips: commands sent by the plugin in a run of 200 tasks at C=1 =="
# MONITOR shows each command a client sent (commands run by scripts are tagged "lua"
# and not counted); INFO commandstats counts both, so it is shown for reference only.
small=200
redis-cli -h 127.0.0.1 -p "$PORT" config resetstat >/dev/null
monitor=$(mktemp)
redis-cli -h 127.0.0.1 -p "$PORT" monitor >"$monitor" &
monitor_pid=$!
sleep 0.2
persist bench --tasks "$small" --concurrency 1 --no-warmup >/dev/null
sleep 0.3
kill "$monitor_pid" 2>/dev/null || true
wait "$monitor_pid" 2>/dev/null || true
echo "client commands (MONITOR):"
grep -v ' lua\] ' "$monitor" | grep -o '\] "[a-zA-Z]*"' | tr -d '"]' | tr 'A-Z' 'a-z' | sort | uniq -c | sort -rn | sed 's/^/  /'
stats=$(redis-cli -h 127.0.0.1 -p "$PORT" info commandstats | tr -d '\r')
calls() { echo "$stats" | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"; }
echo "INFO commandstats (counts commands run inside scripts too): evalsha=$(calls evalsha) get=$(calls get) set=$(calls set) sadd=$(calls sadd)"
echo "expected with one round trip per operation, for $small tasks:"
echo "  evalsha $((4 * small + 1)) = create + find + the turn's update + delete, each $small, + 1 (the bench's check after the turns)"
echo "  get     $((2 * small)) = load + the turn's load, each $small"
echo "(the pings are the bench's probe of the boundary cost, health() = PING, not the workload)"

if [ "$BIG_ITEMS" -gt 0 ]; then
  echo
  echo "== one large task =="
  big_task
fi
