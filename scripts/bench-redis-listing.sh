#!/usr/bin/env bash
# Times listing pages of the Redis plugin at 1,000 and at 100,000 stored tasks, in one
# sitting against one scratch redis-server, to show that a page costs about its size and
# not the number of stored tasks (plugins/redis/examples/listing_cost.rs does the timing).
#
# Usage: scripts/bench-redis-listing.sh              # 1000 and 100000 tasks
#        SIZES="1000 10000" scripts/bench-redis-listing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

SIZES=${SIZES:-"1000 100000"}
PORT=$(free_port 21000)
scratch=$(mktemp -d)
cleanup() {
  stop_redis "$PORT"
  rm -rf "$scratch"
}
trap cleanup EXIT
start_redis "$PORT" "$scratch"

cargo build --release --quiet -p ta-plugin-redis --example listing_cost
for n in $SIZES; do
  TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$PORT" TA_REDIS_TTL=0 TA_REDIS_PREFIX=ta-list-bench \
    target/release/examples/listing_cost "$n"
done
