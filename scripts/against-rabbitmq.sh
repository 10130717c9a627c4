#!/usr/bin/env bash
# Run one of Warren's end-to-end test files against Debian's rabbitmq-server instead of
# Warren, to check that the test encodes what RabbitMQ itself does (reply codes, texts,
# headers). Tests that look inside Warren fail there by design (they need the embedded
# broker); each file says which those are.
# Usage: scripts/against-rabbitmq.sh [TEST_FILE] [cargo test filters...]
#   TEST_FILE: protocol_errors (default), deadletter, queue_limits, quorum
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/warren-vs-rmq.XXXXXX); chmod 755 "$WORK"
RMQ_PORT=5792
. "$ROOT/scripts/rabbitmq.sh"
install_rabbitmq
start_rabbitmq
trap 'stop_rabbitmq; rm -rf "$WORK"' EXIT
TEST=protocol_errors
if [ $# -gt 0 ] && [ -f "$ROOT/tests/$1.rs" ]; then TEST=$1; shift; fi
cd "$ROOT" && WARREN_TEST_BROKER="127.0.0.1:$RMQ_PORT" \
  cargo test --release --test "$TEST" -- --test-threads=1 "$@"
