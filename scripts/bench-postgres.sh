#!/usr/bin/env bash
# Benchmarks the Postgres plugin on the standard workload (shared/bench/WORKLOAD.md)
# through the host, in one sitting beside the Redis plugin (and the SQLite plugin when the
# workspace has one), then `pgbench -S` (select-only) on the same server as the ceiling for
# reads, then counts the statements each operation sends (pg_stat_statements).
#
# It starts a scratch Postgres cluster and a scratch redis-server on free loopback ports
# (as the unprivileged `postgres` user when run as root: Postgres refuses root) and removes
# both at the end.
#
# Usage: scripts/bench-postgres.sh               # 10000 tasks, C=1 and C=64
#        TASKS=2000 scripts/bench-postgres.sh    # a shorter run
#        PG_SYNC=off scripts/bench-postgres.sh   # synchronous_commit=off (default: on,
#                                                # every acknowledged write flushed)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/scratch-redis.sh

TASKS=${TASKS:-10000}
PG_SYNC=${PG_SYNC:-on}
PGBENCH_SECS=${PGBENCH_SECS:-15}

bin=${TA_TEST_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$bin/initdb" ] || { echo "no Postgres binaries (apt-get install postgresql postgresql-contrib, or set TA_TEST_PG_BIN)" >&2; exit 2; }

scratch=$(mktemp -d)
chmod 755 "$scratch"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$scratch"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
PG_PORT=$(free_port 25432)
REDIS_PORT=$(free_port 26379)
pg_pid=

cleanup() {
  [ -n "$pg_pid" ] && kill -TERM "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  stop_redis "$REDIS_PORT"
  rm -rf "$scratch"
}
trap cleanup EXIT

"${as_pg[@]}" "$bin/initdb" -D "$scratch/data" -U ta --auth=trust -E UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$bin/postgres" -D "$scratch/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -c "unix_socket_directories=$scratch" -c max_connections=200 -c shared_buffers=256MB \
  -c shared_preload_libraries=pg_stat_statements -c "synchronous_commit=$PG_SYNC" \
  >"$scratch/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 200); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break; sleep 0.05; done
psql() { "$bin/psql" -X -q -A -t -h "$scratch" -p "$PG_PORT" -U ta "$@"; }
for db in bench roundtrips pgbench; do psql -d postgres -c "CREATE DATABASE $db"; done
psql -d roundtrips -c "CREATE EXTENSION pg_stat_statements"

start_redis "$REDIS_PORT" "$scratch"

echo "Postgres $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (synchronous_commit=$PG_SYNC)," \
  "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$REDIS_PORT; $(nproc) cores"

packages=(-p ta-persistence -p ta-plugin-postgres -p ta-plugin-redis)
[ -d plugins/sqlite ] && packages+=(-p ta-plugin-sqlite)
cargo build --release --quiet "${packages[@]}" --bin ta-persist --lib
lib=$(pwd)/target/release

postgres() {
  local db=$1
  shift
  TA_PERSISTENCE_MODULE="$lib/libta_plugin_postgres.so" TA_PERSISTENCE_CLASS=PostgresTaskPersistenceManager \
    TA_PERSISTENCE_STRICT=true TA_PG_HOST=127.0.0.1 TA_PG_PORT="$PG_PORT" TA_PG_USER=ta \
    TA_PG_DATABASE="$db" TA_PG_TLS=off TA_PG_POOL_SIZE="${TA_PG_POOL_SIZE:-64}" \
    target/release/ta-persist "$@"
}
redis() {
  TA_PERSISTENCE_MODULE="$lib/libta_plugin_redis.so" TA_PERSISTENCE_CLASS=RedisTaskPersistenceManager \
    TA_PERSISTENCE_STRICT=true TA_REDIS_HOST=127.0.0.1 TA_REDIS_PORT="$REDIS_PORT" \
    target/release/ta-persist "$@"
}
sqlite() {
  TA_PERSISTENCE_MODULE="$lib/libta_plugin_sqlite.so" TA_PERSISTENCE_CLASS=SqliteTaskPersistenceManager \
    TA_PERSISTENCE_STRICT=true TA_SQLITE_PATH="$scratch/bench.sqlite" \
    target/release/ta-persist "$@"
}

echo
echo "== ta-persist bench: Redis plugin, $TASKS tasks =="
redis bench --tasks "$TASKS" --concurrency 1,64 --json >"$scratch/redis.json"
echo "(saved as JSON; printed below beside each other backend, as the earlier result)"

if [ -d plugins/sqlite ]; then
  echo
  echo "== ta-persist bench: SQLite plugin, $TASKS tasks, beside Redis =="
  sqlite bench --in-place --tasks "$TASKS" --concurrency 1,64 --compare "$scratch/redis.json" || true
fi

echo
echo "== ta-persist bench: Postgres plugin, $TASKS tasks (a fresh database, in place), beside Redis =="
postgres bench bench --in-place --tasks "$TASKS" --concurrency 1,64 --compare "$scratch/redis.json"

echo
echo "== pgbench -S (select-only, prepared) on the same server: the ceiling for one-row reads =="
"$bin/pgbench" -q -i -s 10 -h 127.0.0.1 -p "$PG_PORT" -U ta pgbench >/dev/null 2>&1
for c in 1 64; do
  printf '  -c %-3s' "$c"
  "$bin/pgbench" -S -M prepared -c "$c" -j 2 -T "$PGBENCH_SECS" -h 127.0.0.1 -p "$PG_PORT" -U ta pgbench 2>/dev/null |
    grep -E '^tps' | sed 's/ (without initial connection time)//'
done

echo
echo "== round trips: statements the plugin ran for a run of 200 tasks at C=1 (pg_stat_statements) =="
small=200
psql -d roundtrips -c "SELECT pg_stat_statements_reset()" >/dev/null
postgres roundtrips bench --in-place --tasks "$small" --concurrency 1 --no-warmup >/dev/null
psql -d roundtrips -F ' | ' -c "
  SELECT calls, round(calls::numeric / $small, 2) AS per_task,
         left(regexp_replace(query, '\s+', ' ', 'g'), 90)
  FROM pg_stat_statements
  WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'roundtrips')
    AND query NOT LIKE '%pg_stat_statements%'
  ORDER BY calls DESC, query"
echo "Each statement execution is one round trip (Bind/Execute/Sync); a statement is prepared"
echo "once per connection (one more round trip, not counted above). Expected for $small tasks:"
echo "  INSERT ... (create) $small; SELECT json, version (load + the turn's load) $((2 * small));"
echo "  request-id SELECT (find) $small; UPDATE (the turn's update) $small + 1 check; DELETE $small."
echo "(SELECT \$1 is health(): the bench calls it in a loop to time the plugin boundary.)"
