# Start and stop a built warren binary for script-driven tests. Source it.
#   start_broker BIN [ARGS...] -> exports AMQP_URL, BROKER_PID, BROKER_PORT, BROKER_DIR
#     (ARGS go to warren after the defaults; the management API is off unless ARGS
#     give --management-listen)
#   stop_broker        -> SIGTERM, wait, remove the data dir
# The port is a free one above 20000, so nothing collides with 5672/5673 (lapin's
# conn_refused test expects nothing listening on 5673).

free_port() {
  python3 - <<'PY'
import socket, random
for _ in range(200):
    p = random.randint(20000, 60000)
    ok = True
    for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(fam)
        try:
            s.bind((addr, p))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        break
PY
}

start_broker() {
  local bin=$1 i mgmt=(--management-listen none) prom=(--prometheus-listen none)
  shift
  case " $* " in *" --management-listen "*) mgmt=() ;; esac
  case " $* " in *" --prometheus-listen "*) prom=() ;; esac
  BROKER_PORT=$(free_port)
  BROKER_DIR=$(mktemp -d)
  "$bin" --amqp-listen "127.0.0.1:$BROKER_PORT" --amqp-listen "[::1]:$BROKER_PORT" \
    --data-dir "$BROKER_DIR/data" "${mgmt[@]}" "${prom[@]}" "$@" > "$BROKER_DIR/warren.log" 2>&1 &
  BROKER_PID=$!
  for i in $(seq 1 100); do
    grep -q "listening for AMQP" "$BROKER_DIR/warren.log" 2>/dev/null && break
    sleep 0.05
  done
  export AMQP_URL="amqp://guest:guest@127.0.0.1:$BROKER_PORT/%2F"
  export BROKER_PID BROKER_PORT BROKER_DIR
}

stop_broker() {
  [ -n "${BROKER_PID:-}" ] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null
  wait "$BROKER_PID" 2>/dev/null
  rm -rf "$BROKER_DIR"
  BROKER_PID=
}
