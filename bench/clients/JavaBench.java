// A load test the way a Java application (or RabbitMQ's own PerfTest) writes one with RabbitMQ's
// Java client: a publisher on its own connection calling basicPublish per message (optionally at
// a fixed --rate, and with --confirm waiting for each publish's confirm before the next), a
// consumer on another connection with a prefetch that acks every --ack-every messages (1 = each
// on its own). The client writes each publish and each ack as one flush of its own, so the
// broker sees the writes as an application makes them.
//
// Run with the JDK's single-file launcher (bench/compare.sh java-* does, beside RabbitMQ):
//   java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar JavaBench.java \
//     --url amqp://guest:guest@127.0.0.1:5672/%2F --ack-every 1 --rate 10000 --broker-pid PID
// With --broker-pid it reads the broker's CPU, RSS and context switches from /proc over the
// measured window. Prints one JSON object, with the keys of warren-perf and pika_bench.py.
import com.rabbitmq.client.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.*;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

public class JavaBench {
    static final String QUEUE = "client-bench";

    /** CPU seconds, RSS in KB and context switches of all threads of a process, or null. */
    static double[] sample(String pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            // USER_HZ is 100 on Linux; fields 14 and 15 of stat, 12 and 13 after the name.
            double cpu = (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
            double rss = 0, switches = 0;
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmRSS:")) rss = Double.parseDouble(line.split("\\s+")[1]);
            }
            // The process's own status counts only its main thread's switches.
            try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
                for (Path task : tasks) {
                    try {
                        for (String line : Files.readAllLines(task.resolve("status"))) {
                            if (line.contains("ctxt_switches:")) switches += Double.parseDouble(line.split("\\s+")[1]);
                        }
                    } catch (IOException gone) {
                        // a thread that ended since the listing
                    }
                }
            }
            return new double[] {cpu, rss, switches};
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** End-to-end latencies of the measured window, written by the consumer's callbacks. */
    static final class Latencies {
        private long[] nanos = new long[1 << 20];
        private int count = 0;
        private boolean closed = false;

        synchronized void add(long n) {
            if (closed) return;
            if (count == nanos.length) nanos = Arrays.copyOf(nanos, count * 2);
            nanos[count++] = n;
        }

        /** Stops recording and returns the window's latencies sorted (a single 0 if none). */
        synchronized long[] close() {
            closed = true;
            long[] out = count == 0 ? new long[1] : Arrays.copyOf(nanos, count);
            Arrays.sort(out);
            return out;
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> o = new HashMap<>(Map.of("--url", "amqp://guest:guest@127.0.0.1:5672/%2F",
                "--duration", "10", "--size", "100", "--ack-every", "1", "--prefetch", "200", "--rate", "0"));
        boolean confirm = false;
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--confirm")) {
                confirm = true;
            } else if (i + 1 < argv.length && (o.containsKey(argv[i]) || argv[i].equals("--broker-pid"))) {
                o.put(argv[i], argv[++i]);
            } else {
                System.err.println("unknown option or missing value: " + argv[i]);
                System.exit(2);
            }
        }
        boolean confirms = confirm;
        double duration = Double.parseDouble(o.get("--duration"));
        int size = Math.max(8, Integer.parseInt(o.get("--size")));
        int ackEvery = Integer.parseInt(o.get("--ack-every"));
        int prefetch = Integer.parseInt(o.get("--prefetch"));
        double rate = Double.parseDouble(o.get("--rate"));
        String brokerPid = o.get("--broker-pid");

        ConnectionFactory factory = new ConnectionFactory();
        factory.setUri(o.get("--url"));
        factory.setAutomaticRecoveryEnabled(false);
        try (Connection setup = factory.newConnection("bench-setup")) {
            Channel ch = setup.createChannel();
            ch.queueDelete(QUEUE);
            ch.queueDeclare(QUEUE, false, false, false, null);
        }

        AtomicBoolean stop = new AtomicBoolean(), measuring = new AtomicBoolean();
        AtomicLong published = new AtomicLong(), consumed = new AtomicLong();
        Latencies latencies = new Latencies();

        Connection consumerConn = factory.newConnection("bench-consumer");
        Channel consumerCh = consumerConn.createChannel();
        consumerCh.basicQos(prefetch);
        // The client runs one channel's callbacks one at a time, in order, on its work pool.
        consumerCh.basicConsume(QUEUE, false, new DefaultConsumer(consumerCh) {
            int unacked = 0;

            @Override
            public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties props, byte[] body)
                    throws IOException {
                long sent = ByteBuffer.wrap(body, 0, 8).getLong();
                if (measuring.get()) latencies.add(System.nanoTime() - sent);
                consumed.incrementAndGet();
                if (++unacked >= ackEvery) {
                    getChannel().basicAck(env.getDeliveryTag(), ackEvery > 1);
                    unacked = 0;
                }
            }
        });

        Connection publisherConn = factory.newConnection("bench-publisher");
        Thread publisher = new Thread(() -> {
            try {
                Channel ch = publisherConn.createChannel();
                // Reliable publishing as the client's guide shows it: each publish waits
                // for the broker's confirm before the next.
                if (confirms) ch.confirmSelect();
                byte[] body = new byte[size];
                long start = System.nanoTime(), n = 0;
                while (!stop.get()) {
                    if (rate > 0) {
                        // Paced as an application publishing orders as they come: never ahead
                        // of the rate, and a short park rather than a spin when it is.
                        long ahead = start + (long) (n * 1e9 / rate) - System.nanoTime();
                        if (ahead > 0) {
                            LockSupport.parkNanos(Math.min(ahead, 1_000_000));
                            continue;
                        }
                    }
                    ByteBuffer.wrap(body).putLong(System.nanoTime());
                    ch.basicPublish("", QUEUE, null, body);
                    if (confirms) ch.waitForConfirmsOrDie(5_000);
                    n++;
                    published.incrementAndGet();
                }
            } catch (Exception e) {
                if (!stop.get()) e.printStackTrace();
            }
        }, "bench-publisher");
        publisher.start();

        // Half a second for the JIT and the queue to settle before the window opens.
        Thread.sleep(500);
        measuring.set(true);
        long p0 = published.get(), k0 = consumed.get();
        double[] b0 = brokerPid != null ? sample(brokerPid) : null, own0 = sample("self");
        long t0 = System.nanoTime();
        Thread.sleep((long) (duration * 1000));
        double secs = (System.nanoTime() - t0) / 1e9;
        double[] b1 = brokerPid != null ? sample(brokerPid) : null, own1 = sample("self");
        long pub = published.get() - p0, con = consumed.get() - k0;
        stop.set(true);
        publisher.join(5000);
        long[] lat = latencies.close();
        java.util.function.DoubleFunction<Double> pct = p -> lat[(int) Math.round((lat.length - 1) * p)] / 1e3;

        StringBuilder out = new StringBuilder("{\"scenario\": \"java\"");
        out.append(String.format(Locale.ROOT, ", \"published_per_s\": %.2f, \"consumed_per_s\": %.2f", pub / secs, con / secs));
        out.append(String.format(Locale.ROOT, ", \"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f", pct.apply(0.5), pct.apply(0.99)));
        if (own0 != null && own1 != null) {
            out.append(String.format(Locale.ROOT, ", \"tool_cpu_percent\": %.1f", (own1[0] - own0[0]) * 100 / secs));
        }
        if (b0 != null && b1 != null) {
            double per = Math.max(1, Math.max(pub, con));
            out.append(String.format(Locale.ROOT, ", \"broker_cpu_us_per_msg\": %.2f, \"broker_cpu_percent\": %.1f",
                    (b1[0] - b0[0]) * 1e6 / per, (b1[0] - b0[0]) * 100 / secs));
            out.append(String.format(Locale.ROOT, ", \"broker_rss_mb\": %.1f, \"broker_switches_per_msg\": %.3f",
                    b1[1] / 1024, (b1[2] - b0[2]) / per));
        }
        System.out.println(out.append("}"));
        try {
            publisherConn.close();
            consumerConn.close();
        } catch (Exception e) {
            // the run is over; a close that fails changes no figure
        }
        System.exit(0);
    }
}
