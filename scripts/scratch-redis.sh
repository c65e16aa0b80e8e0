# Sourced by the bench scripts: scratch redis-servers on free loopback ports, keeping
# nothing on disk.

# The first port from $1 on that nothing answers on.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

# start_redis PORT DIR [ARGS...]: a redis-server on 127.0.0.1:PORT, its log and pid file
# in DIR, ARGS added to its command line; returns once it answers PING.
start_redis() {
  local port=$1 dir=$2
  shift 2
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid" "$@"
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server on $port did not start (log: $dir/redis.log)" >&2
  return 1
}

# stop_redis PORT: shuts the server down without saving; quiet if it is not running.
stop_redis() {
  redis-cli -h 127.0.0.1 -p "$1" shutdown nosave >/dev/null 2>&1 || true
}
