#!/usr/bin/env bash
# RabbitMQ's own rabbitmqadmin (from Debian's rabbitmq-server package) running an
# operator's usual commands against Warren's management API.
# Needs MGMT_URL (http://127.0.0.1:PORT). Last line: N passed, N failed
set -u
PORT=${MGMT_URL##*:}
T="timeout -k 2 20"
A=(rabbitmqadmin -H 127.0.0.1 -P "$PORT" -u guest -p guest)
Q="admin-orders-$$"
X="admin-shop-$$"
PASS=0; FAIL=0
ok()  { PASS=$((PASS+1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL+1)); echo "FAIL - $1${2:+ ($2)}"; }
run() { $T "${A[@]}" "$@" 2>&1; }

out=$(run declare queue name="$Q" durable=true arguments='{"x-max-length": 100}')
[ "$out" = "queue declared" ] && ok "declare queue" || bad "declare queue" "$out"
out=$(run declare exchange name="$X" type=topic)
[ "$out" = "exchange declared" ] && ok "declare exchange" || bad "declare exchange" "$out"
out=$(run declare binding source="$X" destination="$Q" routing_key='order.#')
[ "$out" = "binding declared" ] && ok "declare binding" || bad "declare binding" "$out"
out=$(run publish exchange="$X" routing_key=order.created payload='order 1' properties='{"delivery_mode": 2}')
[ "$out" = "Message published" ] && ok "publish" || bad "publish" "$out"
out=$(run -f tsv -q list queues name messages | grep -P "^$Q\t")
[ "$out" = "$(printf '%s\t1' "$Q")" ] && ok "list queues shows the message" || bad "list queues" "$out"
out=$(run -f raw_json get queue="$Q" ackmode=ack_requeue_true)
echo "$out" | grep -q '"payload":"order 1"' && ok "get (requeued)" || bad "get" "$out"
out=$(run -f tsv -q list bindings source destination routing_key | grep -P "^$X\t")
[ "$out" = "$(printf '%s\t%s\torder.#' "$X" "$Q")" ] && ok "list bindings" || bad "list bindings" "$out"
DEFS=$(mktemp)
out=$(run export "$DEFS")
grep -q "\"$Q\"" "$DEFS" && ok "export definitions" || bad "export definitions" "$out"
out=$(run purge queue name="$Q")
[ "$out" = "queue purged" ] && ok "purge queue" || bad "purge queue" "$out"
out=$(run delete queue name="$Q")
[ "$out" = "queue deleted" ] && ok "delete queue" || bad "delete queue" "$out"
out=$(run import "$DEFS")
out2=$(run -f tsv -q list queues name | grep -x "$Q")
[ "$out2" = "$Q" ] && ok "import definitions brings the queue back" || bad "import definitions" "$out $out2"
run delete queue name="$Q" >/dev/null; run delete exchange name="$X" >/dev/null
out=$(run -f tsv -q list nodes name)
case "$out" in warren@*) ok "list nodes" ;; *) bad "list nodes" "$out" ;; esac
rm -f "$DEFS"
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
