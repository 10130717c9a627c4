#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need (Debian's
# amqp-tools, chromium, RabbitMQ's Java and Go clients, Bunny, php-amqplib, php-amqp and redis-server; pika, aio-pika
# and pytest from PyPI; amqplib and playwright-core from npm), builds once in release mode,
# runs the Rust unit and end-to-end tests, the interop clients, the Docker image (Debian's
# docker.io engine when none answers; interop/container/run.sh) and the conformance suites.
# .ci/run calls exactly this. Last line: N passed, N failed
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
LOGDIR=$(mktemp -d)

apt_install() { # Debian packages the tests drive: as root directly, else through sudo
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq "$@") >/dev/null 2>&1
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null
  fi
}
command -v amqp-publish >/dev/null || apt_install amqp-tools
# The management web UI's browser tests drive Debian's headless Chromium.
command -v chromium >/dev/null || apt_install chromium
# RabbitMQ's Java client, run by the JDK's single-file launcher (which needs the compiler).
{ command -v javac >/dev/null && [ -f /usr/share/java/amqp-client.jar ]; } ||
  apt_install default-jdk-headless librabbitmq-client-java

# RabbitMQ's Go client, Bunny, php-amqplib and the php-amqp extension, all from Debian (Go builds in GOPATH mode
# against the packaged source, so nothing is fetched from a module proxy).
{ command -v go >/dev/null && [ -d /usr/share/gocode/src/github.com/rabbitmq/amqp091-go ]; } ||
  apt_install golang-go golang-github-rabbitmq-amqp091-go-dev
ruby -e 'require "bunny"' 2>/dev/null || apt_install ruby-bunny
# Celery's integration tests keep their results in Redis: a private redis-server per run,
# so the package's own instance is stopped at once.
if ! command -v redis-server >/dev/null; then
  apt_install redis-server
  if [ "$(id -u)" = 0 ]; then service redis-server stop; else sudo service redis-server stop; fi >/dev/null 2>&1
fi
{ command -v php >/dev/null && [ -f /usr/share/php/PhpAmqpLib/autoload.php ] && php -m | grep -qx amqp; } ||
  apt_install php-cli php-amqplib php-amqp

# rabbitmqadmin, RabbitMQ's management CLI, comes with Debian's rabbitmq-server; the
# package's own broker is stopped at once (scripts/rabbitmq.sh).
if ! command -v rabbitmqadmin >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (. scripts/rabbitmq.sh; install_rabbitmq) >/dev/null 2>&1
  else
    sudo bash -c '. scripts/rabbitmq.sh; install_rabbitmq' >/dev/null 2>&1
  fi
fi

# One release build serves the Rust tests, interop and conformance alike.
cargo test --release --no-fail-fast 2>&1 | tee "$LOGDIR/cargo.log"
cargo_rc=${PIPESTATUS[0]}
RP=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$LOGDIR/cargo.log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
RF=$(grep -oE '[0-9]+ failed;' "$LOGDIR/cargo.log" | awk '{s+=$1} END {print s+0}')
RP=${RP:-0}; RF=${RF:-0}
[ "$cargo_rc" != 0 ] && [ "$RF" = 0 ] && RF=1

echo "== interop: pika, aio-pika, amqplib, amqp-tools, the Java and Go clients, Bunny, php-amqplib, php-amqp, rabbitmqadmin, openssl, web UI in Chromium"
interop/run.sh target/release/warren 2>"$LOGDIR/interop.err" | tee "$LOGDIR/interop.log"
interop_rc=${PIPESTATUS[0]}
[ "$interop_rc" != 0 ] && cat "$LOGDIR/interop.err"

echo "== container: the Dockerfile built and run by testcontainers' RabbitMQ module and the docker CLI"
interop/container/run.sh 2>"$LOGDIR/container.err" | tee "$LOGDIR/container.log"
container_rc=${PIPESTATUS[0]}
[ "$container_rc" != 0 ] && tail -60 "$LOGDIR/container.err"

echo "== conformance: other clients' own broker test suites"
scripts/conformance.sh target/release/warren 2>"$LOGDIR/conformance.err" | tee "$LOGDIR/conformance.log"
conf_rc=${PIPESTATUS[0]}
[ "$conf_rc" != 0 ] && tail -40 "$LOGDIR/conformance.err"

echo "== soak: 20 s of connection churn, then leak and loss checks (bench/soak.sh)"
bench/soak.sh 20 > "$LOGDIR/soak.log" 2>&1
soak_rc=$?
tail -9 "$LOGDIR/soak.log"

sum() { tail -1 "$1" | grep -oE "[0-9]+ $2" | grep -oE '[0-9]+' || echo 0; }
TP=$((RP + $(sum "$LOGDIR/interop.log" passed) + $(sum "$LOGDIR/container.log" passed) + $(sum "$LOGDIR/conformance.log" passed) + $(sum "$LOGDIR/soak.log" passed)))
TF=$((RF + $(sum "$LOGDIR/interop.log" failed) + $(sum "$LOGDIR/container.log" failed) + $(sum "$LOGDIR/conformance.log" failed) + $(sum "$LOGDIR/soak.log" failed)))
[ "$soak_rc" != 0 ] && [ "$(sum "$LOGDIR/soak.log" failed)" = 0 ] && TF=$((TF + 1))
echo "rust: $RP passed, $RF failed | interop: $(tail -1 "$LOGDIR/interop.log") | container: $(tail -1 "$LOGDIR/container.log") | conformance suites: $(tail -1 "$LOGDIR/conformance.log") | soak: $(tail -1 "$LOGDIR/soak.log")"
echo "$TP passed, $TF failed"
[ "$cargo_rc" = 0 ] && [ "$interop_rc" = 0 ] && [ "$container_rc" = 0 ] && [ "$conf_rc" = 0 ] && [ "$soak_rc" = 0 ]
