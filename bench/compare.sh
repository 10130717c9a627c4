#!/usr/bin/env bash
# Warren against RabbitMQ, side by side in one run on this machine. Installs Debian's
# rabbitmq-server if missing, starts both brokers on loopback with fresh data dirs, runs
# every warren-perf scenario against each broker alternately REPS times, and writes a
# markdown table of medians and Warren/RabbitMQ ratios (bench/results.md by default).
#
#   bench/compare.sh [--reps 3] [--duration 10] [--out bench/results.md]
#                    [--baseline path/to/older/warren] [scenario...]
#
# --baseline runs a second Warren binary (an earlier build) in the same interleaved
# rounds, so a change's effect is measured A/B beside RabbitMQ rather than across runs.
#
# Scenarios: throughput-100 throughput-16 confirms confirms-single latency fanout
#            connections backlog deadletter-ttl deadletter-reject startup
#            rpc rpc-8 topic-10k fleet-10k fleet-10k-5k (not in the default set: run them by name)
#            throughput-each, latency-each: warren-perf writing each publish on its own and
#              acking each message on its own, as client libraries do
#            throughput-channels, confirms-channels: the same habits on several channels of
#              each connection (PerfTest's channels per connection)
#            lapin-ack1 lapin-ack100 lapin-confirm lapin-25k lapin-10k lapin-10k-ack100
#            amqprs-ack1 amqprs-ack100 amqprs-25k amqprs-25k-ack100 amqprs-10k
#            pika-ack1 pika-ack100 pika-5k java-ack1 java-ack100 java-confirm java-10k:
#              real client libraries (examples/client_bench.rs with lapin or amqprs,
#              bench/clients/pika_bench.py, bench/clients/JavaBench.java with RabbitMQ's
#              Java client, PerfTest's library), one publish per call, acks every 1 or
#              100, single confirms, fixed rates
# broker_switches_per_msg counts the context switches of all the broker's threads: at a
# fixed rate nearly each is one sleep and one wake-up, which on this host costs either
# broker 23-25 us (bench/results.md, 2026-12-07, seventeenth session).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3; DURATION=10; OUT="$ROOT/bench/results.md"; SCEN=(); BASELINE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --baseline) BASELINE=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    *) SCEN+=("$1"); shift ;;
  esac
done
[ ${#SCEN[@]} = 0 ] && SCEN=(throughput-100 throughput-16 confirms confirms-single latency fanout connections backlog deadletter-ttl deadletter-reject startup)
WORK=$(mktemp -d /tmp/warren-bench.XXXXXX); chmod 755 "$WORK"  # the rabbitmq user must reach its dirs
RMQ_PORT=5790; WARREN_PORT=5791

. "$ROOT/scripts/rabbitmq.sh"
install_rabbitmq
(cd "$ROOT" && cargo build --release -q --bin warren --bin warren-perf --example client_bench) || exit 1
VENV=${WARREN_TEST_CACHE:-$HOME/.cache/warren-tests}/venv
if ! "$VENV/bin/python" -c "import pika" 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "pika>=1.3,<2" >&2
fi
LAPIN="$ROOT/target/release/examples/client_bench --client lapin"
AMQPRS="$ROOT/target/release/examples/client_bench --client amqprs"
PIKA="$VENV/bin/python $ROOT/bench/clients/pika_bench.py"
if printf '%s\n' "${SCEN[@]}" | grep -q '^java-' &&
   ! { command -v javac >/dev/null && [ -f /usr/share/java/amqp-client.jar ]; }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless librabbitmq-client-java >/dev/null
fi
JAVA="java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar $ROOT/bench/clients/JavaBench.java"
PERF="$ROOT/target/release/warren-perf"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

start_warren() { # [binary]
  rm -rf "$WORK/warren"
  "${1:-$ROOT/target/release/warren}" --amqp-listen 127.0.0.1:$WARREN_PORT --data-dir "$WORK/warren" --management-listen none --prometheus-listen none > "$WORK/warren.log" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 1 100); do grep -q listening "$WORK/warren.log" && break; sleep 0.02; done
}
stop_warren() { kill -TERM "$WARREN_PID" 2>/dev/null; wait "$WARREN_PID" 2>/dev/null; }

# scenario -> warren-perf arguments and the figures it is judged on
args_of() {
  case "$1" in
    throughput-100) echo "throughput --size 100 --prefetch 200" ;;
    throughput-16) echo "throughput --size 16 --prefetch 200" ;;
    confirms) echo "confirms --size 1024 --producers 4 --confirm 100" ;;
    confirms-single) echo "confirms --size 1024 --producers 1 --confirm 1" ;;
    latency) echo "latency --rate 10000 --size 100" ;;
    fanout) echo "fanout --queues 10 --size 100" ;;
    connections) echo "connections --connections 1000" ;;
    backlog) echo "backlog --messages 1000000 --size 100" ;;
    deadletter-ttl) echo "deadletter-ttl --size 100 --prefetch 200" ;;
    deadletter-reject) echo "deadletter-reject --size 100 --prefetch 200" ;;
    rpc) echo "rpc --producers 1 --size 100" ;;
    rpc-8) echo "rpc --producers 8 --size 100" ;;
    topic-10k) echo "topic --bindings 10000 --queues 10 --size 100 --prefetch 200" ;;
    fleet-10k) echo "fleet --connections 10000 --rate 20000 --size 100 --prefetch 10" ;;
    fleet-10k-5k) echo "fleet --connections 10000 --rate 5000 --size 100 --prefetch 10" ;;
    throughput-each) echo "throughput --size 100 --prefetch 200 --write-per-publish --ack-every 1" ;;
    latency-each) echo "latency --rate 10000 --size 100 --write-per-publish --ack-every 1" ;;
    throughput-channels) echo "throughput --size 100 --prefetch 200 --producers 2 --consumers 2 --channels 4 --write-per-publish --ack-every 1" ;;
    confirms-channels) echo "confirms --size 1024 --producers 1 --channels 8 --confirm 1" ;;
  esac
}
# scenario -> a real client library's load test (same flags and JSON as warren-perf)
client_of() {
  case "$1" in
    lapin-ack1) echo "$LAPIN --ack-every 1" ;;
    lapin-ack100) echo "$LAPIN --ack-every 100" ;;
    lapin-confirm) echo "$LAPIN --ack-every 1 --confirm" ;;
    lapin-25k) echo "$LAPIN --ack-every 1 --rate 25000" ;;
    lapin-10k) echo "$LAPIN --ack-every 1 --rate 10000" ;;
    lapin-10k-ack100) echo "$LAPIN --ack-every 100 --rate 10000" ;;
    amqprs-ack1) echo "$AMQPRS --ack-every 1" ;;
    amqprs-ack100) echo "$AMQPRS --ack-every 100" ;;
    amqprs-25k) echo "$AMQPRS --ack-every 1 --rate 25000" ;;
    amqprs-25k-ack100) echo "$AMQPRS --ack-every 100 --rate 25000" ;;
    amqprs-10k) echo "$AMQPRS --ack-every 1 --rate 10000" ;;
    pika-ack1) echo "$PIKA --ack-every 1" ;;
    pika-ack100) echo "$PIKA --ack-every 100" ;;
    pika-5k) echo "$PIKA --ack-every 1 --rate 5000" ;;
    java-ack1) echo "$JAVA --ack-every 1" ;;
    java-ack100) echo "$JAVA --ack-every 100" ;;
    java-confirm) echo "$JAVA --ack-every 1 --confirm" ;;
    java-10k) echo "$JAVA --ack-every 1 --rate 10000" ;;
  esac
}
keys_of() {
  case "$1" in
    throughput-*|deadletter-*|topic-*) echo "consumed_per_s broker_cpu_us_per_msg broker_switches_per_msg tool_cpu_us_per_msg broker_cpu_percent tool_cpu_percent" ;;
    lapin-*|amqprs-*|java-*) echo "consumed_per_s broker_cpu_us_per_msg broker_switches_per_msg latency_p50_us latency_p99_us broker_cpu_percent tool_cpu_percent" ;;
    pika-*) echo "consumed_per_s broker_cpu_us_per_msg broker_switches_per_msg latency_p50_us latency_p99_us broker_cpu_percent tool_busiest_process_cpu_percent" ;;
    latency-each) echo "latency_p50_us latency_p99_us broker_cpu_us_per_msg broker_switches_per_msg" ;;
    fleet-*) echo "idle_rss_kb_per_connection busy_consumed_per_s broker_cpu_percent broker_cpu_us_per_msg" ;;
    rpc*) echo "round_trips_per_s rtt_p50_us rtt_p99_us broker_cpu_us_per_msg broker_switches_per_msg tool_cpu_us_per_msg" ;;
    confirms*) echo "published_per_s broker_cpu_us_per_msg" ;;
    latency) echo "latency_p50_us latency_p99_us latency_p999_us broker_cpu_us_per_msg" ;;
    fanout) echo "delivered_per_s broker_cpu_us_per_msg" ;;
    connections) echo "broker_rss_kb_per_connection open_us_each" ;;
    backlog) echo "fill_per_s drain_per_s broker_rss_bytes_per_msg" ;;
    startup) echo "startup_ms" ;;
  esac
}

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
run_one() { # broker scenario
  local b=$1 s=$2 port pid json
  if [ "$b" = warren ]; then start_warren; port=$WARREN_PORT; pid=$WARREN_PID
  elif [ "$b" = baseline ]; then start_warren "$BASELINE"; port=$WARREN_PORT; pid=$WARREN_PID
  else start_rabbitmq; port=$RMQ_PORT; pid=$RMQ_PID; fi
  if [ "$s" = startup ]; then
    json="{\"startup_ms\": $STARTUP_MS}"
  else
    local client; client=$(client_of "$s")
    if [ -n "$client" ]; then
      json=$($client --duration "$DURATION" --url "amqp://guest:guest@127.0.0.1:$port/%2F" \
        --broker-pid "$pid" 2>>"$WORK/perf.log" | tail -1)
    else
      json=$("$PERF" $(args_of "$s") --duration "$DURATION" --url "amqp://guest:guest@127.0.0.1:$port/%2F" \
        --broker-pid "$pid" --json 2>>"$WORK/perf.log" | tail -1)
    fi
  fi
  echo -e "$b\t$s\t$json" >> "$RESULTS"
  echo "$b $s $json" >&2
  if [ "$b" = rabbitmq ]; then stop_rabbitmq; else stop_warren; fi
}
measure_startup() { # time from exec to accepting connections, empty data dir
  local b=$1 t0 t1
  if [ "$b" = warren ]; then
    rm -rf "$WORK/warren"; t0=$(date +%s%N)
    "$ROOT/target/release/warren" --amqp-listen 127.0.0.1:$WARREN_PORT --data-dir "$WORK/warren" --management-listen none --prometheus-listen none > "$WORK/warren.log" 2>&1 &
    WARREN_PID=$!
    until (exec 3<>/dev/tcp/127.0.0.1/$WARREN_PORT) 2>/dev/null; do sleep 0.001; done
    t1=$(date +%s%N); stop_warren
  else
    t0=$(date +%s%N); start_rabbitmq; t1=$(date +%s%N); stop_rabbitmq
  fi
  STARTUP_MS=$(( (t1 - t0) / 1000000 ))
}

for rep in $(seq 1 "$REPS"); do
  for s in "${SCEN[@]}"; do
    for b in warren ${BASELINE:+baseline} rabbitmq; do
      if [ "$s" = startup ] && [ "$b" = baseline ]; then continue; fi
      if [ "$s" = startup ]; then measure_startup "$b"; echo -e "$b\tstartup\t{\"startup_ms\": $STARTUP_MS}" >> "$RESULTS"; echo "$b startup $STARTUP_MS ms" >&2
      else run_one "$b" "$s"; fi
    done
  done
done

python3 - "$RESULTS" "$OUT" "$REPS" "$DURATION" "$(for s in "${SCEN[@]}"; do echo "$s=$(keys_of "$s")"; done)" <<'PY'
import json, statistics, sys, datetime
path, out, reps, duration, spec = sys.argv[1:6]
keys = {line.split("=")[0]: line.split("=")[1].split() for line in spec.splitlines() if "=" in line}
data = {}
for line in open(path):
    b, s, js = line.rstrip("\n").split("\t", 2)
    try:
        d = json.loads(js)
    except Exception:
        continue
    for k, v in d.items():
        if isinstance(v, (int, float)):
            data.setdefault((s, k, b), []).append(v)
ab = any(b == "baseline" for (_, _, b) in data)
if ab:
    rows = ["| scenario | figure | Warren | baseline Warren | RabbitMQ | Warren / baseline | Warren / RabbitMQ |",
            "|---|---|---:|---:|---:|---:|---:|"]
else:
    rows = ["| scenario | figure | Warren | RabbitMQ | Warren / RabbitMQ |", "|---|---|---:|---:|---:|"]
ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
for s, ks in keys.items():
    for k in ks:
        w, r = data.get((s, k, "warren")), data.get((s, k, "rabbitmq"))
        if not w or not r:
            continue
        mw, mr = statistics.median(w), statistics.median(r)
        if ab:
            base = data.get((s, k, "baseline"))
            mb = statistics.median(base) if base else float("nan")
            rows.append(f"| {s} | {k} | {mw:,.2f} | {mb:,.2f} | {mr:,.2f} | {ratio(mw, mb) if base else 'n/a'} | {ratio(mw, mr)} |")
        else:
            rows.append(f"| {s} | {k} | {mw:,.2f} | {mr:,.2f} | {ratio(mw, mr)} |")
hdr = (f"Medians of {reps} alternating runs of {duration} s each, "
       f"{datetime.date.today()}, this machine (2 cores), both brokers on 127.0.0.1.\n\n")
open(out, "w").write(hdr + "\n".join(rows) + "\n")
print(hdr + "\n".join(rows))
PY
rm -rf "$WORK"
