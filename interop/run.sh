#!/usr/bin/env bash
# Real third-party clients against a built Warren: pika and aio-pika (Python), amqplib (Node),
# rabbitmq-c's amqp-tools (C), RabbitMQ's Java and Go clients, Bunny (Ruby), php-amqplib and
# the php-amqp extension (PHP), over plain AMQP and over TLS, plus openssl s_client for
# the TLS versions, Prometheus' Python client parsing the metrics, and RabbitMQ's own
# rabbitmqadmin driving the management API, and the management web UI in headless
# Chromium (playwright-core; the UI test starts its own broker). Installs the clients from their registries on first use.
# Usage: interop/run.sh [path/to/warren]    (default: target/release/warren)
# Last line: N passed, N failed
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/warren}
CACHE=${WARREN_TEST_CACHE:-$HOME/.cache/warren-tests}
. "$ROOT/scripts/broker.sh"
mkdir -p "$CACHE"
TP=0; TF=0
count() { # "N passed, N failed" from the last matching line of a log
  local line
  line=$(grep -E '[0-9]+ passed' "$1" | tail -1)
  local p f
  p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+'); p=${p:-0}
  f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+'); f=${f:-0}
  if [ "$2" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  TP=$((TP+p)); TF=$((TF+f))
  printf '%-8s %s passed, %s failed\n' "$3" "$p" "$f"
}

VENV="$CACHE/venv"
if ! "$VENV/bin/python" -c "import pika, aio_pika, pytest, prometheus_client" 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "pika>=1.3,<2" "aio-pika>=9,<10" "pytest>=8" "prometheus-client>=0.20" >&2
fi
if [ ! -d "$ROOT/interop/node/node_modules/amqplib" ] || [ ! -d "$ROOT/interop/node/node_modules/playwright-core" ]; then
  (cd "$ROOT/interop/node" && npm install -q --no-audit --no-fund >&2)
fi

# TLS: a throwaway PKI, an amqps listener that asks for (not requires) client
# certificates, and the management API for creating the certificate user.
TLS_DIR=$(mktemp -d)
"$ROOT/interop/tls/make_certs.sh" "$TLS_DIR" || { echo "cannot make test certificates" >&2; exit 1; }
AMQPS_PORT=$(free_port)
MGMT_PORT=$(free_port)
PROM_PORT=$(free_port)
start_broker "$BIN" --amqps-listen "127.0.0.1:$AMQPS_PORT" --tls-cert "$TLS_DIR/server.pem" \
  --tls-key "$TLS_DIR/server.key" --tls-ca "$TLS_DIR/ca.pem" --tls-verify-peer \
  --management-listen "127.0.0.1:$MGMT_PORT" --prometheus-listen "127.0.0.1:$PROM_PORT"
trap 'stop_broker; rm -rf "$TLS_DIR"' EXIT
export TLS_DIR AMQPS_PORT MGMT_URL="http://127.0.0.1:$MGMT_PORT" PROMETHEUS_URL="http://127.0.0.1:$PROM_PORT"
export AMQPS_URL="amqps://guest:guest@localhost:$AMQPS_PORT/%2F"
LOG="$BROKER_DIR/interop"
mkdir -p "$LOG"

"$VENV/bin/python" -m pytest -q "$ROOT/interop/python" > "$LOG/pika.log" 2>&1
rc=$?; cat "$LOG/pika.log" | tail -15 >&2; count "$LOG/pika.log" $rc python

(cd "$ROOT/interop/node" && node --test --test-reporter=spec amqplib.test.js) > "$LOG/node.log" 2>&1
rc=$?; tail -12 "$LOG/node.log" >&2
p=$(grep -E '^ℹ pass' "$LOG/node.log" | grep -oE '[0-9]+'); f=$(grep -E '^ℹ fail' "$LOG/node.log" | grep -oE '[0-9]+')
echo "${p:-0} passed, ${f:-1} failed" >> "$LOG/node.log"; count "$LOG/node.log" $rc amqplib

if command -v amqp-publish >/dev/null; then
  "$ROOT/interop/c/amqp_tools.sh" > "$LOG/c.log" 2>&1
  rc=$?; cat "$LOG/c.log" >&2; count "$LOG/c.log" $rc amqp-tools
else
  echo "amqp-tools not installed (apt-get install amqp-tools)" >&2; TF=$((TF+1))
fi

JAVA_CP=/usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar
if command -v javac >/dev/null && [ -f /usr/share/java/amqp-client.jar ]; then
  # plain AMQP on the shared broker, and amqps with the test CA (TLS_DIR, AMQPS_PORT)
  timeout -k 5 120 java -cp "$JAVA_CP" "$ROOT/interop/java/JavaClient.java" > "$LOG/java.log" 2>&1
  rc=$?; grep -v SLF4J "$LOG/java.log" >&2; count "$LOG/java.log" $rc java
else
  echo "the Java client is not installed (apt-get install default-jdk-headless librabbitmq-client-java)" >&2; TF=$((TF+1))
fi

# RabbitMQ's Go client, in GOPATH mode against Debian's copy of it (no module download).
if command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/rabbitmq/amqp091-go ]; then
  (cd "$ROOT" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= timeout -k 5 180 go run interop/go/go_client.go) > "$LOG/go.log" 2>&1
  rc=$?; cat "$LOG/go.log" >&2; count "$LOG/go.log" $rc go
else
  echo "the Go client is not installed (apt-get install golang-go golang-github-rabbitmq-amqp091-go-dev)" >&2; TF=$((TF+1))
fi

if ruby -e 'require "bunny"' 2>/dev/null; then
  timeout -k 5 180 ruby "$ROOT/interop/ruby/bunny_client.rb" > "$LOG/bunny.log" 2>&1
  rc=$?; cat "$LOG/bunny.log" >&2; count "$LOG/bunny.log" $rc bunny
else
  echo "Bunny is not installed (apt-get install ruby-bunny)" >&2; TF=$((TF+1))
fi

if command -v php >/dev/null && [ -f /usr/share/php/PhpAmqpLib/autoload.php ]; then
  timeout -k 5 120 php "$ROOT/interop/php/php_amqplib_client.php" > "$LOG/php.log" 2>&1
  rc=$?; cat "$LOG/php.log" >&2; count "$LOG/php.log" $rc php
else
  echo "php-amqplib is not installed (apt-get install php-cli php-amqplib)" >&2; TF=$((TF+1))
fi

# the php-amqp extension (rabbitmq-c underneath), which Symfony Messenger's transport uses
if php -m 2>/dev/null | grep -qx amqp; then
  timeout -k 5 120 php "$ROOT/interop/php/php_amqp_ext_client.php" > "$LOG/php-ext.log" 2>&1
  rc=$?; cat "$LOG/php-ext.log" >&2; count "$LOG/php-ext.log" $rc php-amqp
else
  echo "the php-amqp extension is not installed (apt-get install php-amqp)" >&2; TF=$((TF+1))
fi

if command -v rabbitmqadmin >/dev/null; then
  "$ROOT/interop/admin/rabbitmqadmin.sh" > "$LOG/admin.log" 2>&1
  rc=$?; cat "$LOG/admin.log" >&2; count "$LOG/admin.log" $rc rabbitmqadmin
else
  echo "rabbitmqadmin not installed (it comes with Debian's rabbitmq-server)" >&2; TF=$((TF+1))
fi

"$ROOT/interop/tls/openssl_checks.sh" > "$LOG/tls.log" 2>&1
rc=$?; cat "$LOG/tls.log" >&2; count "$LOG/tls.log" $rc openssl

# The web UI test starts its own broker (it needs an empty one to count objects and its
# own TLS listener), so it runs with the binary rather than the shared broker.
ABS_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
(cd "$ROOT/interop/node" && WARREN_BIN="$ABS_BIN" UI_SCREENSHOTS="${UI_SCREENSHOTS:-$ROOT/target/ui-screenshots}" \
  node --test --test-reporter=spec ui.test.js) > "$LOG/ui.log" 2>&1
rc=$?; tail -14 "$LOG/ui.log" >&2
p=$(grep -E '^ℹ pass' "$LOG/ui.log" | grep -oE '[0-9]+'); f=$(grep -E '^ℹ fail' "$LOG/ui.log" | grep -oE '[0-9]+')
echo "${p:-0} passed, ${f:-1} failed" >> "$LOG/ui.log"; count "$LOG/ui.log" $rc web-ui

echo "$TP passed, $TF failed"
[ $TF = 0 ]
