#!/usr/bin/env bash
# Soak: many connections churning (open, publish with confirms / consume and ack, close)
# against the release binary for SECONDS, then checks that nothing leaked and nothing was
# lost: every confirmed message acked exactly once (warren-perf soak checks ids), broker
# RSS back near its baseline (within 16 MB, or 2 % of the peak's rise when consumers fell
# behind and the queue backed up), open file descriptors, threads and tokio tasks back to
# where they were, no connection left. Not in CI by default; scripts/test.sh runs a 20 s variant.
# Usage: bench/soak.sh [SECONDS (default 600)] [PRODUCERS (8)] [CONSUMERS (4)]
# Last line: N passed, N failed
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-600}; PRODUCERS=${2:-8}; CONSUMERS=${3:-4}
. "$ROOT/scripts/broker.sh"
(cd "$ROOT" && cargo build --release -q --bin warren --bin warren-perf) || exit 1
MPORT=$(free_port)
start_broker "$ROOT/target/release/warren" --management-listen "127.0.0.1:$MPORT"
trap stop_broker EXIT
PID=$BROKER_PID

measure() { # rss_kb fds threads tasks connections
  local rss fds thr overview tasks conns
  rss=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
  fds=$(ls /proc/$PID/fd | wc -l)
  thr=$(awk '/Threads/ {print $2}' /proc/$PID/status)
  overview=$(python3 - "$MPORT" <<'PY'
import base64, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/overview")
req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
print(urllib.request.urlopen(req).read().decode())
PY
)
  tasks=$(echo "$overview" | python3 -c 'import json,sys; print(json.load(sys.stdin)["warren"]["alive_tasks"])')
  conns=$(echo "$overview" | python3 -c 'import json,sys; print(json.load(sys.stdin)["object_totals"]["connections"])')
  echo "$rss $fds $thr $tasks $conns"
}

# warm up once so lazily created things (worker threads, the queue) exist in the baseline
"$ROOT/target/release/warren-perf" soak --url "$AMQP_URL" --duration 2 --producers 2 \
  --consumers 1 --json > /dev/null 2>&1
sleep 2
read -r RSS0 FD0 THR0 TASK0 CONN0 <<< "$(measure)"

# the broker's peak RSS during the soak (consumers fall behind: the queue backs up)
( peak=0; while kill -0 $PID 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' /proc/$PID/status 2>/dev/null); r=${r:-0}
    [ "$r" -gt "$peak" ] && peak=$r && echo $peak > "$BROKER_DIR/peak"
    sleep 0.5
  done ) &
SAMPLER=$!
"$ROOT/target/release/warren-perf" soak --url "$AMQP_URL" --duration "$SECS" \
  --producers "$PRODUCERS" --consumers "$CONSUMERS" --size 512 --json > "$BROKER_DIR/soak.json"
soak_rc=$?
kill $SAMPLER 2>/dev/null; wait $SAMPLER 2>/dev/null
PEAK=$(cat "$BROKER_DIR/peak" 2>/dev/null || echo "$RSS0")
# "near the baseline": within 16 MB of it, or within 2 % of how far the soak pushed it up
# (a backlog of millions of messages raises the peak by gigabytes)
ALLOW=$(( (PEAK - RSS0) / 50 )); [ $ALLOW -lt 16384 ] && ALLOW=16384
# let idle workers hand freed memory back (they do once a second when idle): up to 15 s
for i in $(seq 1 15); do
  sleep 1
  read -r RSS1 FD1 THR1 TASK1 CONN1 <<< "$(measure)"
  [ $RSS1 -le $((RSS0 + ALLOW)) ] && [ $i -ge 3 ] && break
done

PASS=0; FAIL=0
check() { if eval "$2"; then PASS=$((PASS+1)); echo "ok   - $1"; else FAIL=$((FAIL+1)); echo "FAIL - $1"; fi; }
cat "$BROKER_DIR/soak.json"
echo "before: rss ${RSS0} kB, fds $FD0, threads $THR0, tasks $TASK0, connections $CONN0"
echo "peak:   rss ${PEAK} kB during the soak"
echo "after:  rss ${RSS1} kB, fds $FD1, threads $THR1, tasks $TASK1, connections $CONN1"
check "every confirmed message acked exactly once, none left (warren-perf soak)" "[ $soak_rc = 0 ]"
check "no connection left open" "[ $CONN1 = 0 ]"
check "file descriptors back to baseline (+2)" "[ $FD1 -le $((FD0 + 2)) ]"
check "tokio tasks back to baseline (+2)" "[ $TASK1 -le $((TASK0 + 2)) ]"
check "threads back to baseline" "[ $THR1 -le $THR0 ]"
check "RSS back near baseline (+$((ALLOW / 1024)) MB: 16 MB or 2 % of the peak's rise)" "[ $RSS1 -le $((RSS0 + ALLOW)) ]"
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
