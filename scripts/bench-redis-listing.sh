#!/usr/bin/env bash
# Times listing pages of the Redis plugin at 1,000 and at 100,000 stored tasks, in one
# sitting against one scratch redis-server, to show that a page costs about its size and
# not the number of stored tasks (plugins/redis/examples/listing_cost.rs does the timing).
#
# Usage: scripts/bench-redis-listing.sh              # 1000 and 100000 tasks
#        SIZES="1000 10000" scripts/bench-redis-listing.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 100000"}
PORT=21000
while (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do PORT=$((PORT + 1)); done
scratch=$(mktemp -d)
cleanup() {
  redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no \
  --dir "$scratch" --logfile "$scratch/redis.log" --daemonize yes --pidfile "$scratch/redis.pid"
for _ in $(seq 100); do
  redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.05
done

cargo build --release --quiet -p ta-plugin-redis --example listing_cost
for n in $SIZES; do
  TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$PORT" TA_REDIS_TTL=0 TA_REDIS_PREFIX=ta-list-bench \
    target/release/examples/listing_cost "$n"
done
