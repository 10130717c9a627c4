#!/usr/bin/env python3
"""A load test the way a Python application writes one with pika: a publisher process calling
basic_publish per message (optionally with confirms, each publish waiting for its ack;
optionally at a fixed --rate), a consumer process with a prefetch that acks every --ack-every
messages (1 = each on its own). Two processes, as a web app that publishes and a worker that consumes would be (threads of
one process would measure the GIL more than the broker).
Runs against any broker; with --broker-pid it reads the broker's CPU and RSS from /proc over
the measured window. bench/compare.sh pika-* runs it beside RabbitMQ. Prints one JSON object.
"""
import argparse
import json
import struct
import multiprocessing as mp
import os
import time

import pika

QUEUE = "client-bench"


def sample(pid):
    """CPU seconds, RSS in KB and context switches (all threads: the process's own status
    counts only its main thread's) of a process."""
    try:
        stat = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        cpu = (int(stat[11]) + int(stat[12])) / 100.0
        rss = next(int(l.split()[1]) for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS:"))
        switches = 0
        for task in os.listdir("/proc/%d/task" % pid):
            try:
                for line in open("/proc/%d/task/%s/status" % (pid, task)):
                    if "ctxt_switches:" in line:
                        switches += int(line.split()[1])
            except OSError:
                pass  # a thread that ended since the listing
        return cpu, rss, switches
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def publisher(o, params, stop, published):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if o.confirm:
        ch.confirm_delivery()
    pad = b"\0" * max(0, o.size - 8)
    n = 0
    start = time.time()
    while not stop.is_set():
        if o.rate:
            # Paced as an application publishing orders as they come: never ahead of the
            # rate, and a short sleep rather than a spin when it is.
            ahead = n / o.rate - (time.time() - start)
            if ahead > 0:
                time.sleep(min(ahead, 0.001))
                continue
        ch.basic_publish("", QUEUE, struct.pack(">d", time.time()) + pad)
        n += 1
        if n % 100 == 0:
            with published.get_lock():
                published.value += 100
        if n % 1000 == 0:
            conn.process_data_events(0)
    conn.close()


def consumer(o, params, stop, measuring, consumed, results):
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=o.prefetch)
    unacked = [0]
    latencies = []

    def on_message(ch, method, properties, body):
        if measuring.is_set() and not stop.is_set():
            latencies.append(time.time() - struct.unpack(">d", body[:8])[0])
        with consumed.get_lock():
            consumed.value += 1
        unacked[0] += 1
        if unacked[0] >= o.ack_every:
            ch.basic_ack(method.delivery_tag, multiple=o.ack_every > 1)
            unacked[0] = 0

    ch.basic_consume(QUEUE, on_message)
    while not stop.is_set():
        conn.process_data_events(time_limit=0.1)
    results.put(latencies)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--ack-every", type=int, default=1)
    ap.add_argument("--prefetch", type=int, default=200)
    ap.add_argument("--confirm", action="store_true")
    ap.add_argument("--rate", type=float, default=0, help="publishes per second (0: as fast as it can)")
    ap.add_argument("--broker-pid", type=int)
    o = ap.parse_args()
    params = pika.URLParameters(o.url)

    setup = pika.BlockingConnection(params)
    ch = setup.channel()
    ch.queue_delete(QUEUE)
    ch.queue_declare(QUEUE)
    setup.close()

    stop = mp.Event()
    measuring = mp.Event()
    published = mp.Value("q", 0)
    consumed = mp.Value("q", 0)
    results = mp.Queue()
    procs = [mp.Process(target=consumer, args=(o, params, stop, measuring, consumed, results)),
             mp.Process(target=publisher, args=(o, params, stop, published))]
    for p in procs:
        p.start()
    time.sleep(0.5)
    measuring.set()
    p0, k0 = published.value, consumed.value
    b0 = sample(o.broker_pid) if o.broker_pid else None
    own0 = [sample(p.pid) for p in procs]
    t0 = time.time()
    time.sleep(o.duration)
    secs = time.time() - t0
    b1 = sample(o.broker_pid) if o.broker_pid else None
    own1 = [sample(p.pid) for p in procs]
    published, consumed = published.value - p0, consumed.value - k0
    stop.set()
    latencies = results.get(timeout=10)
    for p in procs:
        p.join(timeout=5)
    lat = sorted(latencies) or [0.0]
    pct = lambda p: lat[int(round((len(lat) - 1) * p))] * 1e6
    out = {"scenario": "pika", "published_per_s": published / secs,
           "consumed_per_s": consumed / secs,
           "latency_p50_us": pct(0.5), "latency_p99_us": pct(0.99)}
    # Each pika process is one Python thread: one near 100% of a core set the pace.
    own = [(b[0] - a[0]) * 100 / secs for a, b in zip(own0, own1) if a and b]
    if own:
        out["tool_cpu_percent"] = sum(own)
        out["tool_busiest_process_cpu_percent"] = max(own)
    if b0 and b1:
        per = max(consumed, published, 1)
        out["broker_cpu_us_per_msg"] = (b1[0] - b0[0]) * 1e6 / per
        out["broker_cpu_percent"] = (b1[0] - b0[0]) * 100 / secs
        out["broker_rss_mb"] = b1[1] / 1024
        out["broker_switches_per_msg"] = (b1[2] - b0[2]) / per
    print(json.dumps(out))


if __name__ == "__main__":
    main()
