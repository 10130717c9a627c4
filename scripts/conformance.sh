#!/usr/bin/env bash
# Other projects' own broker test suites (interop/conformance/run.py fetches and runs them)
# against a built Warren, each held to at least the pass count RabbitMQ 3.10.8 reaches
# (BAR, also in interop/conformance/README.md).
# Usage: scripts/conformance.sh [path/to/warren] [suite...]
# Last line: N passed, N failed
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/warren}; shift || true
. "$ROOT/scripts/broker.sh"
declare -A BAR=([smoke]=10 [py-amqp]=12 [kombu]=51 [amqplib]=75 [lapin]=17 [amqprs]=15 [aiormq]=1036 [aio-pika]=1069 [amqpstorm]=152 [amqp091-go]=116 [celery]=391)
SUITES=("$@"); [ ${#SUITES[@]} = 0 ] && SUITES=(smoke py-amqp kombu amqplib lapin amqprs aiormq aio-pika amqpstorm amqp091-go celery)
TP=0; TF=0
for s in "${SUITES[@]}"; do
  # a fresh broker per suite, as the suites' README advises (leftover durable queues)
  if [ "$s" = amqprs ]; then
    # amqprs' tests log in as user/bitnami, the user of the RabbitMQ container its CI runs
    RABBITMQ_DEFAULT_USER=user RABBITMQ_DEFAULT_PASS=bitnami start_broker "$BIN"
  elif [ "$s" = aiormq ] || [ "$s" = aio-pika ]; then
    # aiormq's tests also connect over TLS, with and without a client certificate signed
    # by the suite's own CA, to a listener that asks for one and lets clients without in;
    # aio-pika's TLS tests connect to the same kind of listener without a certificate
    certs=$(python3 "$ROOT/interop/conformance/run.py" certs aiormq) || certs=/nonexistent
    AMQPS_PORT=$(free_port)
    start_broker "$BIN" --amqps-listen "127.0.0.1:$AMQPS_PORT" --tls-cert "$certs/server.pem" \
      --tls-key "$certs/server.key" --tls-ca "$certs/ca.pem" --tls-verify-peer
    export AMQPS_PORT
  elif [ "$s" = amqpstorm ]; then
    # amqpstorm's tests drive the management API as well as AMQP
    MGMT_PORT=$(free_port)
    start_broker "$BIN" --management-listen "127.0.0.1:$MGMT_PORT"
    export MGMT_URL="http://127.0.0.1:$MGMT_PORT"
  else
    start_broker "$BIN"
  fi
  log="$BROKER_DIR/$s.log"
  t0=$(date +%s)
  python3 "$ROOT/interop/conformance/run.py" "$s" > "$log" 2>&1
  last=$(tail -n 1 "$log")
  p=$(echo "$last" | grep -oE '^[0-9]+ passed' | grep -oE '[0-9]+'); p=${p:-0}
  f=$(echo "$last" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+'); f=${f:-0}
  verdict=ok
  if [ "$p" -lt "${BAR[$s]}" ] || [ "$f" -gt 0 ]; then
    verdict="BELOW RabbitMQ's ${BAR[$s]}"; TF=$((TF+1))
    grep -E 'FAIL|Error|error' "$log" | tail -20 >&2
  else
    TP=$((TP+1))
  fi
  printf '%-8s %-34s (RabbitMQ: %s) %4ss  %s\n' "$s" "$last" "${BAR[$s]}" "$(( $(date +%s) - t0 ))" "$verdict"
  stop_broker
done
echo "$TP passed, $TF failed"
[ $TF = 0 ]
