#!/usr/bin/env bash
# Issue 3's durability figures for Warren on this machine:
#  1. recovery: 1,000,000 persistent 100-byte messages in a durable queue, SIGTERM, restart;
#     the broker logs how long recovery took (target: under 5 s).
#  2. RSS with 1,000,000 queued 1 KiB persistent messages.
#  3. store file size across repeated fill/drain cycles (it must not keep growing).
#   bench/durability.sh [--messages 1000000] [--cycles 3]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=1000000; CYCLES=3
while [ $# -gt 0 ]; do
  case "$1" in --messages) M=$2; shift 2 ;; --cycles) CYCLES=$2; shift 2 ;; *) echo "unknown $1"; exit 2 ;; esac
done
(cd "$ROOT" && cargo build --release -q --bin warren --bin warren-perf) || exit 1
W="$ROOT/target/release/warren"; PERF="$ROOT/target/release/warren-perf"
DIR=$(mktemp -d /tmp/warren-durability.XXXXXX); PORT=5792
URL="amqp://guest:guest@127.0.0.1:$PORT/%2F"
start() {
  "$W" --amqp-listen 127.0.0.1:$PORT --data-dir "$DIR/data" --management-listen none --prometheus-listen none > "$DIR/warren.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do grep -q listening "$DIR/warren.log" && return; sleep 0.05; done
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null; }
size_mb() { du -m "$DIR/data/warren.redb" | cut -f1; }

echo "== 1. recovery of $M persistent 100-byte messages"
start
"$PERF" backlog --persistent --keep --messages "$M" --size 100 --producers 2 --url "$URL" --broker-pid $PID --json 2>/dev/null | tail -1
stop
t0=$(date +%s%N); start; t1=$(date +%s%N)
grep recovered "$DIR/warren.log" | sed 's/.*recovered/recovered/'
echo "process start to listening: $(( (t1 - t0) / 1000000 )) ms; store file $(size_mb) MB; RSS after recovery $(grep VmRSS /proc/$PID/status | awk '{print $2/1024 " MB"}')"
"$PERF" backlog --persistent --drain-only --messages "$M" --url "$URL" --broker-pid $PID --json 2>/dev/null | tail -1
stop; rm -rf "$DIR/data"

echo "== 2. RSS with $M queued 1 KiB persistent messages"
start
"$PERF" backlog --persistent --keep --messages "$M" --size 1024 --producers 2 --url "$URL" --broker-pid $PID --json 2>/dev/null | tail -1
stop; rm -rf "$DIR/data"

echo "== 3. store size over $CYCLES fill/drain cycles of $M persistent 1 KiB messages"
start
for c in $(seq 1 "$CYCLES"); do
  "$PERF" backlog --persistent --messages "$M" --size 1024 --producers 2 --url "$URL" --json 2>/dev/null > /dev/null
  sleep 2
  echo "cycle $c: store file $(size_mb) MB after drain"
done
stop
rm -rf "$DIR"
