#!/usr/bin/env bash
# Benchmarks the Redis plugin in cluster mode (a scratch 3-master, 3-replica Redis Cluster
# on loopback) and in single-node mode (a scratch redis-server) in the same sitting, on
# the standard workload at C=1 and C=64, and counts the commands the servers ran per
# operation of the cluster run (INFO commandstats over every master).
#
# Usage: scripts/bench-redis-cluster.sh          # TASKS=10000 by default
#        TASKS=2000 scripts/bench-redis-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TASKS=${TASKS:-10000}
PREFIX=ta-bench
scratch=$(mktemp -d)
ports=()

cleanup() {
  for port in "${ports[@]}"; do
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

# The next port from $1 on that nothing answers on.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

start_server() { # port, extra args...
  local port=$1
  shift
  mkdir -p "$scratch/$port"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$scratch/$port" --logfile "$scratch/$port/redis.log" --daemonize yes \
    --pidfile "$scratch/$port/redis.pid" "$@"
  ports+=("$port")
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return
    sleep 0.05
  done
  echo "redis-server on $port did not start" >&2
  exit 1
}

port=22000
nodes=()
for _ in 1 2 3 4 5 6; do
  port=$(free_port "$port")
  start_server "$port" --cluster-enabled yes --cluster-node-timeout 2000
  nodes+=("127.0.0.1:$port")
  port=$((port + 1))
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >/dev/null
for node in "${nodes[@]}"; do
  until redis-cli -h 127.0.0.1 -p "${node#*:}" cluster info | grep -q cluster_state:ok; do
    sleep 0.1
  done
done
single=$(free_port "$port")
start_server "$single"
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'): cluster ${nodes[*]}; single node 127.0.0.1:$single"

cargo build --release --quiet -p ta-persistence -p ta-plugin-redis --bin ta-persist --lib
plugin=$(pwd)/target/release/libta_plugin_redis.so

persist() { # env assignments..., then ta-persist arguments
  env TA_PERSISTENCE_MODULE="$plugin" TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager \
    TA_PERSISTENCE_STRICT=true TA_REDIS_PREFIX="$PREFIX" "$@"
}

masters() {
  for node in "${nodes[@]}"; do
    if redis-cli -h 127.0.0.1 -p "${node#*:}" role | head -1 | grep -q master; then
      echo "${node#*:}"
    fi
  done
}

echo
echo "== single node, C=1 and C=64"
persist TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$single" \
  target/release/ta-persist bench --tasks "$TASKS" --concurrency 1,64 --no-memory --json \
  >"$scratch/single.json"

echo "== cluster, C=1 and C=64, beside the single node (ratio: cluster / single)"
for p in $(masters); do redis-cli -h 127.0.0.1 -p "$p" config resetstat >/dev/null; done
persist TA_REDIS_CLUSTER=true TA_REDIS_NODES="$(IFS=,; echo "${nodes[*]}")" \
  target/release/ta-persist bench --tasks "$TASKS" --concurrency 1,64 --no-memory \
  --compare "$scratch/single.json"

echo
echo "== commands the cluster's masters ran during the cluster bench (all phases, both C)"
for p in $(masters); do
  redis-cli -h 127.0.0.1 -p "$p" info commandstats | grep -E '^cmdstat_' || true
done | python3 -c '
import sys, collections
total = collections.Counter()
for line in sys.stdin:
    name, stats = line.strip()[len("cmdstat_"):].split(":", 1)
    calls = int(dict(kv.split("=") for kv in stats.split(","))["calls"])
    total[name] += calls
for name, calls in total.most_common():
    print(f"{name:>16} {calls:>10}")
'
