#!/usr/bin/env bash
# Compares two builds of the Redis plugin on the standard workload, side by side with
# redis-benchmark GET on the same scratch server, in one sitting: each round runs one
# build's `ta-persist bench` (C=1 and C=64), then the other's (the order alternates
# between rounds), with `redis-benchmark -c 1` and `-c 64` GET before and after each. Each
# bench run is set against the mean of the redis-benchmark figures taken around it, so a
# machine whose load changes from round to round still gives comparable ratios; the
# figures printed are medians over the rounds.
#
# Usage: scripts/bench-redis-compare.sh OLD_TARGET_DIR [NEW_TARGET_DIR]
#   OLD_TARGET_DIR, NEW_TARGET_DIR: cargo target directories holding release builds of
#   ta-persist and libta_plugin_redis.so (NEW defaults to this checkout's target/, which
#   is built first). Build another checkout with, for example,
#   `cargo build --release --target-dir ../old-target -p ta-persistence -p ta-plugin-redis --bin ta-persist --lib`.
#   ROUNDS=3 TASKS=10000 GETS=20000 (requests per redis-benchmark run)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

OLD=${1:?usage: scripts/bench-redis-compare.sh OLD_TARGET_DIR [NEW_TARGET_DIR]}
NEW=${2:-}
ROUNDS=${ROUNDS:-3}
TASKS=${TASKS:-10000}
GETS=${GETS:-20000}
if [ -z "$NEW" ]; then
  cargo build --release --quiet -p ta-persistence -p ta-plugin-redis --bin ta-persist --lib
  NEW=target
fi
OLD=$(cd "$OLD" && pwd)
NEW=$(cd "$NEW" && pwd)
for dir in "$OLD" "$NEW"; do
  for f in release/ta-persist release/libta_plugin_redis.so; do
    [ -e "$dir/$f" ] || { echo "missing $dir/$f: build it first" >&2; exit 1; }
  done
done

out=$(mktemp -d)
PORT=$(free_port 21000)
cleanup() {
  stop_redis "$PORT"
  rm -rf "$out"
}
trap cleanup EXIT
start_redis "$PORT" "$out"
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT;" \
  "$ROUNDS rounds of $TASKS tasks"

get_rate() { # concurrency -> GET requests per second and median latency in ms
  redis-benchmark -h 127.0.0.1 -p "$PORT" -t get -n "$GETS" -d 1600 -q -c "$1" |
    tr '\r' '\n' | sed -n 's/^GET: \([0-9.]*\) requests per second, p50=\([0-9.]*\).*/\1 \2/p' |
    tail -1
}

bench() { # build dir, output file
  TA_PERSISTENCE_MODULE="$1/release/libta_plugin_redis.so" \
    TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager TA_PERSISTENCE_STRICT=true \
    TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$PORT" TA_REDIS_PREFIX=ta-bench \
    "$1/release/ta-persist" bench --tasks "$TASKS" --concurrency 1,64 --no-memory --json >"$2"
}

# Each bench run is set against the mean of the redis-benchmark figures taken just
# before and just after it.
get_rates() { echo "$(get_rate 1) $(get_rate 64)" >"$out/rb-$1"; }
step=0
get_rates $step
for round in $(seq "$ROUNDS"); do
  order="old new"
  [ $((round % 2)) -eq 0 ] && order="new old"
  for which in $order; do
    dir=$OLD
    [ "$which" = new ] && dir=$NEW
    if ! bench "$dir" "$out/$which-$round.json" 2>"$out/err"; then
      cat "$out/err" >&2
      exit 1
    fi
    echo "$step" >"$out/$which-$round.before"
    step=$((step + 1))
    get_rates $step
    echo "  round $round: $which done"
  done
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
phases = ["create", "load", "find", "turn", "delete"]

def read(which, r):
    before = int(open(f"{out}/{which}-{r}.before").read())
    rates = [[float(x) for x in open(f"{out}/rb-{s}").read().split()]
             for s in (before, before + 1)]
    rb1, p50, rb64, _ = ((a + b) / 2 for a, b in zip(*rates))
    doc = json.load(open(f"{out}/{which}-{r}.json"))
    figs, load_p50 = {}, {}
    for run in doc["runs"]:
        c = run["concurrency"]
        for p in run["result"]["phases"]:
            figs[(c, p["phase"])] = p["ops_per_sec"]
            if p["phase"] == "load":
                load_p50[c] = p["p50_us"]
    return {"rb": {1: rb1, 64: rb64}, "rb_p50_us": p50 * 1000, "figs": figs,
            "load_p50_us": load_p50[1]}

runs = {w: [read(w, r) for r in range(1, rounds + 1)] for w in ("old", "new")}
med = statistics.median
for c in (1, 64):
    print(f"\nC={c}: ops/s (median), new / old (median of per-round ratios)")
    print(f"  {'phase':<7}{'old':>10}{'new':>10}{'new/old':>9}")
    for p in phases:
        o = [x["figs"][(c, p)] for x in runs["old"]]
        n = [x["figs"][(c, p)] for x in runs["new"]]
        ratio = med([b / a for a, b in zip(o, n)])
        print(f"  {p:<7}{med(o):>10.0f}{med(n):>10.0f}{ratio:>9.2f}")
    for w in ("old", "new"):
        rb = [x["rb"][c] for x in runs[w]]
        ratios = [x["figs"][(c, "load")] / x["rb"][c] for x in runs[w]]
        print(f"  {w}: load / redis-benchmark -c {c} GET = {med(ratios):.2f}"
              f" (per round: {' '.join(f'{r:.2f}' for r in ratios)};"
              f" redis-benchmark {med(rb):.0f}/s)")
        if c == 1:
            lat = [x["rb_p50_us"] / x["load_p50_us"] for x in runs[w]]
            print(f"  {w}: by median latency, redis-benchmark p50 / load p50 = {med(lat):.2f}"
                  f" (load p50 {med([x['load_p50_us'] for x in runs[w]]):.0f} us,"
                  f" redis-benchmark p50 {med([x['rb_p50_us'] for x in runs[w]]):.0f} us)")
PY
