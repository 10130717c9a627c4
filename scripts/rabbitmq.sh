# Debian's rabbitmq-server as a second broker on loopback, for side-by-side runs.
# Source it, set WORK (a directory the rabbitmq user can reach: chmod 755) and RMQ_PORT.
#   install_rabbitmq   apt-get install it if missing (and stop the system instance)
#   start_rabbitmq     fresh node in $WORK/rmq on 127.0.0.1:$RMQ_PORT; sets RMQ_PID. With
#                      RMQ_HTTP_PORT set, also the management API there and Prometheus
#                      metrics on RMQ_HTTP_PORT+1
#   stop_rabbitmq

install_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    # the package starts a system instance; we run our own
    service rabbitmq-server stop >/dev/null 2>&1 || true
  fi
}

rmq_env() {
  echo env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=warrenbench@localhost RABBITMQ_NODE_PORT=$RMQ_PORT \
    RABBITMQ_DIST_PORT=$((RMQ_PORT + 20000)) RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_MNESIA_BASE="$WORK/rmq/mnesia" RABBITMQ_LOG_BASE="$WORK/rmq/log" \
    RABBITMQ_PID_FILE="$WORK/rmq/pid" RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rmq/plugins" \
    RABBITMQ_CONFIG_FILE="$WORK/rmq/rabbitmq"
}
start_rabbitmq() {
  rm -rf "$WORK/rmq"; mkdir -p "$WORK/rmq/mnesia" "$WORK/rmq/log"
  echo "[]." > "$WORK/rmq/plugins"; : > "$WORK/rmq/rabbitmq.conf"
  if [ -n "${RMQ_HTTP_PORT:-}" ]; then
    echo "[rabbitmq_management,rabbitmq_prometheus]." > "$WORK/rmq/plugins"
    printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\nprometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = %s\n' \
      "$RMQ_HTTP_PORT" $((RMQ_HTTP_PORT + 1)) > "$WORK/rmq/rabbitmq.conf"
  fi
  chown -R rabbitmq:rabbitmq "$WORK/rmq"
  # setpriv, not su: su's PAM session would reset the open-files limit to 1024; from /tmp,
  # because the rabbitmq user may not enter the directory we were started in
  (cd /tmp && setpriv --reuid rabbitmq --regid rabbitmq --init-groups $(rmq_env) /usr/lib/rabbitmq/bin/rabbitmq-server -detached)
  for _ in $(seq 1 60); do
    (exec 3<>/dev/tcp/127.0.0.1/$RMQ_PORT) 2>/dev/null && break; sleep 0.5
  done
  for _ in $(seq 1 40); do [ -s "$WORK/rmq/pid" ] && break; sleep 0.25; done
  sleep 1
  RMQ_PID=$(cat "$WORK/rmq/pid")
}
stop_rabbitmq() {
  (cd /tmp && setpriv --reuid rabbitmq --regid rabbitmq --init-groups $(rmq_env) /usr/lib/rabbitmq/bin/rabbitmqctl -n warrenbench@localhost stop >/dev/null 2>&1)
  kill "$RMQ_PID" 2>/dev/null; sleep 1
}
