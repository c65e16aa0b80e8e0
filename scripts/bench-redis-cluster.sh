#!/usr/bin/env bash
# Benchmarks the Redis plugin in cluster mode (a scratch 3-master, 3-replica Redis Cluster
# on loopback) and in single-node mode (a scratch redis-server) in the same sitting, on
# the standard workload at C=1 and C=64: ROUNDS rounds, each a single-node run then a
# cluster run, and per phase the median ops/s of each mode and their ratio; then counts
# the commands the cluster's masters ran in its last run (INFO commandstats).
#
# Usage: scripts/bench-redis-cluster.sh          # TASKS=10000, ROUNDS=3 by default
#        TASKS=2000 ROUNDS=5 scripts/bench-redis-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

TASKS=${TASKS:-10000}
ROUNDS=${ROUNDS:-3}
PREFIX=ta-bench
scratch=$(mktemp -d)
ports=()

cleanup() {
  for port in "${ports[@]}"; do
    stop_redis "$port"
  done
  rm -rf "$scratch"
}
trap cleanup EXIT

start_server() { # port, extra args...
  local port=$1
  shift
  mkdir -p "$scratch/$port"
  ports+=("$port")
  start_redis "$port" "$scratch/$port" "$@" || exit 1
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

for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS: single node, then cluster (C=1 and C=64)"
  persist TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$single" \
    target/release/ta-persist bench --tasks "$TASKS" --concurrency 1,64 --no-memory --json \
    >"$scratch/single-$round.json"
  for p in $(masters); do redis-cli -h 127.0.0.1 -p "$p" config resetstat >/dev/null; done
  persist TA_REDIS_CLUSTER=true TA_REDIS_NODES="$(IFS=,; echo "${nodes[*]}")" \
    target/release/ta-persist bench --tasks "$TASKS" --concurrency 1,64 --no-memory --json \
    >"$scratch/cluster-$round.json"
done

echo
echo "== median ops/s over $ROUNDS rounds (ratio: cluster / single)"
python3 - "$scratch" "$ROUNDS" <<'PY'
import json, statistics, sys
scratch, rounds = sys.argv[1], int(sys.argv[2])
def figures(mode):
    out = {}
    for r in range(1, rounds + 1):
        with open(f"{scratch}/{mode}-{r}.json") as f:
            for run in json.load(f)["runs"]:
                result = run["result"]
                for phase in result["phases"]:
                    key = (result["concurrency"], phase["phase"])
                    out.setdefault(key, []).append(phase["ops_per_sec"])
    return {k: statistics.median(v) for k, v in out.items()}
single, cluster = figures("single"), figures("cluster")
print(f"{'C':>4} {'phase':<8} {'single':>10} {'cluster':>10} {'ratio':>7}")
for key in single:
    c, phase = key
    print(f"{c:>4} {phase:<8} {single[key]:>10.0f} {cluster[key]:>10.0f} {cluster[key] / single[key]:>7.3f}")
PY

echo
echo "== commands the cluster's masters ran during the last cluster run (all phases, both C)"
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
