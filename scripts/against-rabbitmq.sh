#!/usr/bin/env bash
# Run the raw-socket protocol-abuse tests (tests/protocol_errors.rs) against Debian's
# rabbitmq-server instead of Warren, to see which reply codes RabbitMQ itself sends.
# Tests that look inside Warren fail there by design (they need the embedded broker).
# Usage: scripts/against-rabbitmq.sh [cargo test filters...]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/warren-vs-rmq.XXXXXX); chmod 755 "$WORK"
RMQ_PORT=5792
. "$ROOT/scripts/rabbitmq.sh"
install_rabbitmq
start_rabbitmq
trap 'stop_rabbitmq; rm -rf "$WORK"' EXIT
cd "$ROOT" && WARREN_TEST_BROKER="127.0.0.1:$RMQ_PORT" \
  cargo test --release --test protocol_errors -- --test-threads=1 "$@"
