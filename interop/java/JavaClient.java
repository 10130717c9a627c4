// RabbitMQ's Java client (Debian's librabbitmq-client-java) against Warren: what a Spring or
// plain-Java order service does. Run with the JDK's single-file launcher:
//   java -cp /usr/share/java/amqp-client.jar:/usr/share/java/slf4j-api.jar JavaClient.java
// Needs AMQP_URL; with TLS_DIR and AMQPS_PORT also checks amqps. Last line: N passed, N failed
import com.rabbitmq.client.*;

import java.io.FileInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.*;
import java.util.concurrent.*;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class JavaClient {
    interface Story { void run() throws Exception; }

    static int passed = 0, failed = 0;
    static final String RUN = Long.toHexString(System.nanoTime());

    static void story(String name, Story s) {
        try {
            s.run();
            passed++;
            System.out.println("ok   - " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL - " + name + " (" + t + ")");
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static Connection connect() throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setUri(System.getenv("AMQP_URL"));
        f.setAutomaticRecoveryEnabled(false);
        return f.newConnection("interop-java");
    }

    static String text(byte[] b) { return new String(b, StandardCharsets.UTF_8); }
    static byte[] bytes(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    /** The broker's channel.close or connection.close behind a failed call. */
    static String closeReason(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof ShutdownSignalException) {
                Object m = ((ShutdownSignalException) c).getReason();
                if (m instanceof AMQP.Channel.Close) {
                    AMQP.Channel.Close close = (AMQP.Channel.Close) m;
                    return close.getReplyCode() + " " + close.getReplyText();
                }
                if (m instanceof AMQP.Connection.Close) {
                    AMQP.Connection.Close close = (AMQP.Connection.Close) m;
                    return close.getReplyCode() + " " + close.getReplyText();
                }
            }
        }
        return String.valueOf(t);
    }

    public static void main(String[] args) throws Exception {
        story("a confirmed persistent order is read back with its properties", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                String q = "java-orders-" + RUN;
                ch.queueDeclare(q, true, false, false, null);
                ch.confirmSelect();
                Map<String, Object> headers = new HashMap<>();
                headers.put("x-order-id", 42);
                AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                        .contentType("application/json").deliveryMode(2).headers(headers)
                        .messageId("order-42").build();
                ch.basicPublish("", q, props, bytes("{\"order\":42}"));
                ch.waitForConfirmsOrDie(5000);
                GetResponse r = ch.basicGet(q, false);
                check(r != null, "a message");
                check(text(r.getBody()).equals("{\"order\":42}"), "body " + text(r.getBody()));
                check("application/json".equals(r.getProps().getContentType()), "content type");
                check(Integer.valueOf(2).equals(r.getProps().getDeliveryMode()), "delivery mode");
                check("order-42".equals(r.getProps().getMessageId()), "message id");
                check(String.valueOf(r.getProps().getHeaders().get("x-order-id")).equals("42"), "header");
                check(r.getMessageCount() == 0, "nothing else queued");
                ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
                ch.queueDelete(q);
            }
        });

        story("a consumer with prefetch 10 receives 100 orders in order, acking each", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                String q = ch.queueDeclare().getQueue();
                for (int i = 0; i < 100; i++) ch.basicPublish("", q, null, bytes("order-" + i));
                Channel worker = c.createChannel();
                worker.basicQos(10);
                BlockingQueue<String> got = new LinkedBlockingQueue<>();
                worker.basicConsume(q, false, new DefaultConsumer(worker) {
                    @Override
                    public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties p, byte[] body)
                            throws IOException {
                        got.add(text(body));
                        getChannel().basicAck(env.getDeliveryTag(), false);
                    }
                });
                for (int i = 0; i < 100; i++) {
                    String b = got.poll(5, TimeUnit.SECONDS);
                    check(("order-" + i).equals(b), "delivery " + i + " was " + b);
                }
            }
        });

        story("RPC over direct reply-to, as Spring AMQP's default", () -> {
            try (Connection server = connect(); Connection client = connect()) {
                Channel s = server.createChannel();
                String requests = "java-prices-" + RUN;
                s.queueDeclare(requests, false, false, true, null);
                s.basicConsume(requests, true, new DefaultConsumer(s) {
                    @Override
                    public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties p, byte[] body)
                            throws IOException {
                        AMQP.BasicProperties reply = new AMQP.BasicProperties.Builder()
                                .correlationId(p.getCorrelationId()).build();
                        getChannel().basicPublish("", p.getReplyTo(), reply, bytes("price:" + text(body)));
                    }
                });
                Channel ch = client.createChannel();
                BlockingQueue<String> replies = new LinkedBlockingQueue<>();
                ch.basicConsume("amq.rabbitmq.reply-to", true, new DefaultConsumer(ch) {
                    @Override
                    public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties p, byte[] body) {
                        replies.add(p.getCorrelationId() + "=" + text(body));
                    }
                });
                for (int i = 0; i < 20; i++) {
                    AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                            .replyTo("amq.rabbitmq.reply-to").correlationId("c" + i).build();
                    ch.basicPublish("", requests, props, bytes("sku-" + i));
                    String r = replies.poll(5, TimeUnit.SECONDS);
                    check(("c" + i + "=price:sku-" + i).equals(r), "reply " + r);
                }
            }
        });

        story("an unroutable mandatory message comes back 312 NO_ROUTE", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                BlockingQueue<String> returned = new LinkedBlockingQueue<>();
                ch.addReturnListener((code, text, exchange, key, p, body) ->
                        returned.add(code + " " + text + " " + key));
                ch.basicPublish("amq.direct", "nowhere-" + RUN, true, null, bytes("lost?"));
                String r = returned.poll(5, TimeUnit.SECONDS);
                check(("312 NO_ROUTE nowhere-" + RUN).equals(r), "returned " + r);
            }
        });

        story("a passive declare of a missing queue closes the channel with 404 and RabbitMQ's text", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                String q = "java-missing-" + RUN;
                try {
                    ch.queueDeclarePassive(q);
                    throw new AssertionError("declared a missing queue");
                } catch (IOException e) {
                    String why = closeReason(e);
                    check(why.equals("404 NOT_FOUND - no queue '" + q + "' in vhost '/'"), why);
                }
                check(!ch.isOpen(), "channel closed");
                check(c.isOpen(), "connection still open");
            }
        });

        story("another connection's exclusive queue is 405 RESOURCE_LOCKED", () -> {
            try (Connection owner = connect(); Connection other = connect()) {
                String q = "java-exclusive-" + RUN;
                owner.createChannel().queueDeclare(q, false, true, false, null);
                try {
                    other.createChannel().queueDeclare(q, false, true, false, null);
                    throw new AssertionError("took another connection's exclusive queue");
                } catch (IOException e) {
                    String why = closeReason(e);
                    check(why.startsWith("405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q + "'"), why);
                }
            }
        });

        story("a rejected payment is dead-lettered with an x-death header", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                String dlx = "java-dlx-" + RUN, parked = "java-parked-" + RUN, work = "java-payments-" + RUN;
                ch.exchangeDeclare(dlx, BuiltinExchangeType.FANOUT);
                ch.queueDeclare(parked, false, false, true, null);
                ch.queueBind(parked, dlx, "");
                Map<String, Object> a = new HashMap<>();
                a.put("x-dead-letter-exchange", dlx);
                ch.queueDeclare(work, false, false, true, a);
                ch.basicPublish("", work, null, bytes("payment-7"));
                GetResponse r = null;
                for (int i = 0; i < 100 && r == null; i++) {
                    r = ch.basicGet(work, false);
                    if (r == null) Thread.sleep(20);
                }
                check(r != null, "the payment");
                ch.basicReject(r.getEnvelope().getDeliveryTag(), false);
                GetResponse dead = null;
                for (int i = 0; i < 100 && dead == null; i++) {
                    dead = ch.basicGet(parked, true);
                    if (dead == null) Thread.sleep(20);
                }
                check(dead != null, "dead-lettered");
                check(text(dead.getBody()).equals("payment-7"), "body");
                @SuppressWarnings("unchecked")
                List<Map<String, Object>> deaths = (List<Map<String, Object>>) dead.getProps().getHeaders().get("x-death");
                check(deaths != null && deaths.size() == 1, "one x-death entry: " + deaths);
                Map<String, Object> d = deaths.get(0);
                check(String.valueOf(d.get("reason")).equals("rejected"), "reason " + d.get("reason"));
                check(String.valueOf(d.get("queue")).equals(work), "queue " + d.get("queue"));
                check(String.valueOf(d.get("count")).equals("1"), "count " + d.get("count"));
            }
        });

        story("deleting a consumed queue tells the consumer (handleCancel), as Spring's containers expect", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                String q = "java-cancelled-" + RUN;
                ch.queueDeclare(q, false, false, false, null);
                BlockingQueue<String> cancelled = new LinkedBlockingQueue<>();
                String tag = ch.basicConsume(q, false, new DefaultConsumer(ch) {
                    @Override
                    public void handleCancel(String consumerTag) {
                        cancelled.add(consumerTag);
                    }
                });
                c.createChannel().queueDelete(q);
                String got = cancelled.poll(5, TimeUnit.SECONDS);
                check(tag.equals(got), "basic.cancel for " + tag + ", got " + got);
                check(ch.isOpen(), "the consumer's channel stays open");
            }
        });

        story("a full queue with x-overflow reject-publish nacks the publish", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                Map<String, Object> a = new HashMap<>();
                a.put("x-max-length", 1);
                a.put("x-overflow", "reject-publish");
                String q = ch.queueDeclare("java-stock-" + RUN, false, false, true, a).getQueue();
                ch.confirmSelect();
                ch.basicPublish("", q, null, bytes("first"));
                check(ch.waitForConfirms(5000), "the first is confirmed");
                ch.basicPublish("", q, null, bytes("second"));
                check(!ch.waitForConfirms(5000), "the second is nacked");
                check(ch.messageCount(q) == 1, "one message queued");
            }
        });

        story("a priority queue hands out the urgent order first", () -> {
            try (Connection c = connect()) {
                Channel ch = c.createChannel();
                Map<String, Object> a = new HashMap<>();
                a.put("x-max-priority", 10);
                String q = ch.queueDeclare("java-priority-" + RUN, false, false, true, a).getQueue();
                ch.confirmSelect();
                for (int p : new int[] {1, 9, 5}) {
                    ch.basicPublish("", q, new AMQP.BasicProperties.Builder().priority(p).build(), bytes("p" + p));
                }
                ch.waitForConfirmsOrDie(5000);
                List<String> order = new ArrayList<>();
                for (int i = 0; i < 3; i++) order.add(text(ch.basicGet(q, true).getBody()));
                check(order.equals(Arrays.asList("p9", "p5", "p1")), "order " + order);
            }
        });

        String tlsDir = System.getenv("TLS_DIR"), amqpsPort = System.getenv("AMQPS_PORT");
        if (tlsDir != null && amqpsPort != null) {
            story("amqps with the test CA: publish and get over TLS", () -> {
                CertificateFactory cf = CertificateFactory.getInstance("X.509");
                KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
                trust.load(null, null);
                try (FileInputStream in = new FileInputStream(tlsDir + "/ca.pem")) {
                    trust.setCertificateEntry("ca", cf.generateCertificate(in));
                }
                TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trust);
                SSLContext ctx = SSLContext.getInstance("TLSv1.2");
                ctx.init(null, tmf.getTrustManagers(), null);
                ConnectionFactory f = new ConnectionFactory();
                f.setHost("localhost");
                f.setPort(Integer.parseInt(amqpsPort));
                f.useSslProtocol(ctx);
                f.setAutomaticRecoveryEnabled(false);
                try (Connection c = f.newConnection("interop-java-tls")) {
                    Channel ch = c.createChannel();
                    String q = ch.queueDeclare().getQueue();
                    ch.basicPublish("", q, null, bytes("over tls"));
                    GetResponse r = null;
                    for (int i = 0; i < 100 && r == null; i++) {
                        r = ch.basicGet(q, true);
                        if (r == null) Thread.sleep(20);
                    }
                    check(r != null && text(r.getBody()).equals("over tls"), "message over TLS");
                }
            });
        }

        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
