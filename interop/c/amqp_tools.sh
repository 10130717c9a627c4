#!/usr/bin/env bash
# rabbitmq-c's command-line tools (Debian's amqp-tools) against Warren.
# Needs AMQP_URL. Last line: N passed, N failed
set -u
U=(--url="$AMQP_URL")
T="timeout -k 2 15"
Q="interop-c-$$-$RANDOM"
PASS=0; FAIL=0
ok()  { PASS=$((PASS+1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL+1)); echo "FAIL - $1${2:+ ($2)}"; }

out=$($T amqp-declare-queue "${U[@]}" -q "$Q" 2>&1)
[ "$out" = "$Q" ] && ok "amqp-declare-queue" || bad "amqp-declare-queue" "$out"

$T amqp-publish "${U[@]}" -r "$Q" -p -C application/json -H "x-order: 42" -b '{"order":42}' 2>&1
out=$($T amqp-get "${U[@]}" -q "$Q" 2>&1)
[ "$out" = '{"order":42}' ] && ok "amqp-publish + amqp-get" || bad "amqp-publish + amqp-get" "$out"

$T amqp-get "${U[@]}" -q "$Q" >/dev/null 2>&1
[ $? != 0 ] && ok "amqp-get on an empty queue fails" || bad "amqp-get on an empty queue fails"

for i in 1 2; do $T amqp-publish "${U[@]}" -r "$Q" -b "m$i" >/dev/null 2>&1; done
out=$($T amqp-consume "${U[@]}" -q "$Q" -c 2 cat 2>&1)
[ "$out" = "m1m2" ] && ok "amqp-consume -c 2" || bad "amqp-consume -c 2" "$out"

$T amqp-delete-queue "${U[@]}" -q "$Q" >/dev/null 2>&1 && ok "amqp-delete-queue" || bad "amqp-delete-queue"
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
