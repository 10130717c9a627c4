#!/usr/bin/env bash
# Protocol versions with `openssl s_client`, and rabbitmq-c's amqp-tools over amqps.
# Needs AMQPS_PORT, TLS_DIR (from make_certs.sh) and AMQPS_URL. Last line: N passed, N failed
set -u
T="timeout -k 2 15"
PASS=0; FAIL=0
ok()  { PASS=$((PASS+1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL+1)); echo "FAIL - $1${2:+ ($2)}"; }
sc() { echo | $T openssl s_client -connect "127.0.0.1:$AMQPS_PORT" -CAfile "$TLS_DIR/ca.pem" "$@" 2>&1; }

for v in 1_2 1_3; do
  out=$(sc -tls$v)
  echo "$out" | grep -q "Verify return code: 0 (ok)" && echo "$out" | grep -qF "New, TLSv${v/_/.}," \
    && ok "TLS ${v/_/.} accepted with a verified chain" || bad "TLS ${v/_/.} accepted" "$(echo "$out" | tail -3)"
done
# The client is told to allow old protocols (security level 0), so a failure is the server's:
# its fatal alert says so (rustls sends handshake_failure, OpenSSL servers protocol_version).
for v in 1 1_1; do
  out=$(sc -tls$v -cipher 'DEFAULT:@SECLEVEL=0')
  echo "$out" | grep -qiE "alert (protocol version|handshake failure)" \
    && ok "TLS ${v/_/.} refused by the broker (fatal alert)" || bad "TLS ${v/_/.} refused" "$(echo "$out" | head -3)"
done

Q="interop-tls-$$"
U=(--url="$AMQPS_URL" --ssl --cacert="$TLS_DIR/ca.pem")
$T amqp-publish "${U[@]}" -r "$Q" -b "over tls" >/dev/null 2>&1
$T amqp-declare-queue "${U[@]}" -q "$Q" >/dev/null 2>&1
$T amqp-publish "${U[@]}" -r "$Q" -b "order over tls" 2>&1
out=$($T amqp-get "${U[@]}" -q "$Q" 2>&1)
[ "$out" = "order over tls" ] && ok "amqp-tools publish + get over amqps" || bad "amqp-tools over amqps" "$out"
$T amqp-delete-queue "${U[@]}" -q "$Q" >/dev/null 2>&1
echo "$PASS passed, $FAIL failed"
[ $FAIL = 0 ]
