#!/usr/bin/env bash
# Compare Warren with Debian's rabbitmq-server (installed if missing), run side by side on
# loopback. Three uses:
#   scripts/against-rabbitmq.sh [TEST_FILE] [cargo test filters...]
#       Run one of Warren's end-to-end test files against RabbitMQ instead of Warren, to
#       check that the test encodes what RabbitMQ itself does (reply codes, texts, headers).
#       Tests that look inside Warren fail there by design; each file says which those are.
#       TEST_FILE: protocol_errors (default), deadletter, queue_limits, quorum, shop
#   scripts/against-rabbitmq.sh record [CASE.json...]
#       Re-record the expected answers of the differential cases (default: all of
#       tests/differential/cases) from RabbitMQ, then replay them against Warren.
#   scripts/against-rabbitmq.sh generate [SECONDS] [SEED]
#       Random sequences against Warren and RabbitMQ for SECONDS (default 120); each
#       difference is shrunk and saved into tests/differential/cases.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/warren-vs-rmq.XXXXXX); chmod 755 "$WORK"
RMQ_PORT=5792
. "$ROOT/scripts/rabbitmq.sh"
install_rabbitmq
start_rabbitmq
WARREN_PID=
trap 'stop_rabbitmq; [ -n "$WARREN_PID" ] && kill $WARREN_PID; rm -rf "$WORK"' EXIT
cd "$ROOT"

start_warren() {
  cargo build --release --bin warren --bin warren-diff || exit 1
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  target/release/warren --amqp-listen "127.0.0.1:$port" --data-dir "$WORK/warren" \
    --management-listen none --prometheus-listen none > "$WORK/warren.log" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  WARREN_ADDR=127.0.0.1:$port
}

case "${1:-}" in
  record)
    shift
    start_warren
    version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null | cut -d- -f1)
    target/release/warren-diff record --broker "127.0.0.1:$RMQ_PORT" \
      --name "RabbitMQ ${version:-3}" "${@:-tests/differential/cases}" || exit 1
    target/release/warren-diff replay --broker "$WARREN_ADDR" "${@:-tests/differential/cases}"
    ;;
  generate)
    start_warren
    target/release/warren-diff generate --a "$WARREN_ADDR" --b "127.0.0.1:$RMQ_PORT" \
      --seconds "${2:-120}" ${3:+--seed "$3"}
    ;;
  *)
    TEST=protocol_errors
    if [ $# -gt 0 ] && [ -f "$ROOT/tests/$1.rs" ]; then TEST=$1; shift; fi
    WARREN_TEST_BROKER="127.0.0.1:$RMQ_PORT" \
      cargo test --release --test "$TEST" -- --test-threads=1 "$@"
    ;;
esac
