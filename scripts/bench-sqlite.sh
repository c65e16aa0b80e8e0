#!/usr/bin/env bash
# Benchmarks the SQLite plugin on the standard workload through the host, in one sitting
# beside the built-in store and the Redis plugin (a scratch redis-server on a free port),
# at C=1 and C=64, with synchronous `full` and `normal`; prints ops/s per phase and the
# group-commit gain (C=64 create / C=1 create).
#
# Usage: scripts/bench-sqlite.sh             # 10,000 tasks
#        TASKS=2000 scripts/bench-sqlite.sh  # a shorter run
#        DB_DIR=/mnt/disk scripts/bench-sqlite.sh   # the database on another file system
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

TASKS=${TASKS:-10000}
work=$(mktemp -d)
DB_DIR=${DB_DIR:-$work}
PORT=

cleanup() {
  [ -n "$PORT" ] && stop_redis "$PORT"
  rm -rf "$work"
  rm -f "$DB_DIR"/ta-bench-*.db*
}
trap cleanup EXIT

cargo build --release --quiet -p ta-persistence -p ta-plugin-sqlite -p ta-plugin-redis \
  --bin ta-persist --lib
release=$(pwd)/target/release

PORT=$(free_port 21000)
start_redis "$PORT" "$work"

bench=(bench --tasks "$TASKS" --concurrency 1,64 --no-memory --json)

echo "== built-in store" >&2
"$release/ta-persist" "${bench[@]}" >"$work/builtin.json"
for mode in full normal; do
  echo "== SQLite plugin, synchronous=$mode ($DB_DIR)" >&2
  rm -f "$DB_DIR/ta-bench-$mode.db"*
  TA_PERSISTENCE_MODULE="$release/libta_plugin_sqlite.so" \
    TA_PERSISTENCE_CLASS=SqliteTaskPersistenceManager TA_PERSISTENCE_STRICT=true \
    TA_SQLITE_PATH="$DB_DIR/ta-bench-$mode.db" TA_SQLITE_SYNCHRONOUS="$mode" \
    "$release/ta-persist" "${bench[@]}" --in-place >"$work/sqlite-$mode.json"
done
echo "== Redis plugin (127.0.0.1:$PORT)" >&2
TA_PERSISTENCE_MODULE="$release/libta_plugin_redis.so" \
  TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager TA_PERSISTENCE_STRICT=true \
  TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$PORT" \
  "$release/ta-persist" "${bench[@]}" >"$work/redis.json"

python3 - "$work" "$TASKS" <<'PY'
import json, sys
work, tasks = sys.argv[1], sys.argv[2]
names = [("builtin", "built-in"), ("sqlite-full", "SQLite full"),
         ("sqlite-normal", "SQLite normal"), ("redis", "Redis")]
runs = {}
for key, _ in names:
    doc = json.load(open(f"{work}/{key}.json"))
    for run in doc["runs"]:
        runs[(key, run["concurrency"])] = {p["phase"]: p["ops_per_sec"] for p in run["result"]["phases"]}
cols = [(k, c) for k, _ in names for c in (1, 64)]
label = dict(names)
print(f"ops/s, {tasks} tasks")
print("| phase | " + " | ".join(f"{label[k]} C={c}" for k, c in cols) + " |")
print("|---|" + "---:|" * len(cols))
for phase in ["create", "load", "find", "turn", "delete"]:
    print(f"| {phase} | " + " | ".join(f"{runs[col][phase]:,.0f}" for col in cols) + " |")
for key in ["sqlite-full", "sqlite-normal"]:
    gain = runs[(key, 64)]["create"] / runs[(key, 1)]["create"]
    print(f"group-commit gain, {label[key]}: C=64 create / C=1 create = {gain:.1f}x")
PY
