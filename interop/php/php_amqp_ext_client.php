<?php
// The php-amqp extension (Debian's php-amqp, built on rabbitmq-c), the client under Symfony
// Messenger's AMQP transport (Shopware, Sylius), against Warren: the calls that transport
// makes. It declares a fanout exchange and a bound queue, publishes persistent messages with
// headers, fetches with get() and acks or nacks, retries through a TTL delay queue that
// dead-letters back, and reads broker errors as AMQP*Exception codes and messages.
//   php interop/php/php_amqp_ext_client.php
// Needs AMQP_URL. Last line: N passed, N failed
require __DIR__ . '/stories.php';

$url = parse_url(getenv('AMQP_URL'));
$run = bin2hex(random_bytes(4));

function channel(): AMQPChannel
{
    global $url;
    $c = new AMQPConnection(['host' => $url['host'], 'port' => $url['port'], 'login' => 'guest',
        'password' => 'guest', 'vhost' => '/', 'read_timeout' => 5, 'write_timeout' => 5]);
    $c->connect();
    return new AMQPChannel($c);
}

/** get() until a message arrives, with a bound: Messenger polls the same way. */
function get_within(AMQPQueue $q, int $flags = AMQP_NOPARAM): AMQPEnvelope
{
    for ($i = 0; $i < 250; $i++) {
        $m = $q->get($flags);
        if ($m !== false) {
            return $m;
        }
        usleep(20000);
    }
    throw new RuntimeException('no message on ' . $q->getName() . ' within 5 s');
}

/** Messenger's topology: a fanout exchange and a durable queue bound to it. */
function topology(AMQPChannel $ch, string $name): AMQPQueue
{
    $x = new AMQPExchange($ch);
    $x->setName($name);
    $x->setType(AMQP_EX_TYPE_FANOUT);
    $x->setFlags(AMQP_DURABLE);
    $x->declareExchange();
    $q = new AMQPQueue($ch);
    $q->setName($name);
    $q->setFlags(AMQP_DURABLE);
    $q->declareQueue();
    $q->bind($name, '');
    return $q;
}

story('Messenger publishes a persistent order with headers and a consumer gets and acks it', function () use ($run) {
    $ch = channel();
    $q = topology($ch, "sf-messages-$run");
    $x = new AMQPExchange($ch);
    $x->setName("sf-messages-$run");
    $x->publish('{"orderId":42}', '', AMQP_NOPARAM, [
        'delivery_mode' => 2,
        'content_type' => 'application/json',
        'headers' => ['type' => 'App\\Message\\OrderPlaced', 'X-Message-Stamp-BusNameStamp' => '[{"busName":"command.bus"}]'],
        'message_id' => "order-42-$run",
        'timestamp' => 1700000000,
    ]);
    $m = get_within($q);
    check($m->getBody() === '{"orderId":42}', 'body ' . $m->getBody());
    check($m->getContentType() === 'application/json', 'content type');
    check($m->getDeliveryMode() === 2, 'delivery mode ' . $m->getDeliveryMode());
    check($m->getHeader('type') === 'App\\Message\\OrderPlaced', 'type header');
    check($m->getMessageId() === "order-42-$run", 'message id');
    check($m->getTimestamp() === 1700000000, 'timestamp ' . $m->getTimestamp());
    check($q->ack($m->getDeliveryTag()), 'acked');
    check($q->get() === false, 'nothing left');
    $q->delete();
});

story('a failed message is nacked back and comes again redelivered', function () use ($run) {
    $ch = channel();
    $q = topology($ch, "sf-failing-$run");
    $x = new AMQPExchange($ch);
    $x->setName("sf-failing-$run");
    $x->publish('payment-1');
    $m = get_within($q);
    $q->nack($m->getDeliveryTag(), AMQP_REQUEUE);
    $again = get_within($q);
    check($again->getBody() === 'payment-1' && $again->isRedelivery(), 'redelivered');
    $q->ack($again->getDeliveryTag());
    $q->delete();
});

story("Messenger's retry: a delay queue with x-message-ttl dead-letters the message back", function () use ($run) {
    $ch = channel();
    $q = topology($ch, "sf-retry-$run");
    // as Symfony's Connection::createDelayQueue: TTL, dead-lettered to the original exchange
    $delays = new AMQPExchange($ch);
    $delays->setName("sf-delays-$run");
    $delays->setType(AMQP_EX_TYPE_DIRECT);
    $delays->declareExchange();
    $delay = new AMQPQueue($ch);
    $delay->setName("sf-delay-300-$run");
    $delay->setFlags(AMQP_DURABLE);
    $delay->setArguments([
        'x-message-ttl' => 300,
        'x-expires' => 300 + 10000,
        'x-dead-letter-exchange' => "sf-retry-$run",
        'x-dead-letter-routing-key' => '',
    ]);
    $delay->declareQueue();
    $delay->bind("sf-delays-$run", "delay_300_$run");
    $started = microtime(true);
    $delays->publish('retry me', "delay_300_$run", AMQP_NOPARAM, [
        'headers' => ['X-Message-Stamp-RedeliveryStamp' => '[{"retryCount":1}]'],
    ]);
    $m = get_within($q);
    check($m->getBody() === 'retry me', 'body');
    check(microtime(true) - $started >= 0.25, 'held for its TTL');
    $death = $m->getHeader('x-death')[0];
    check($death['reason'] === 'expired' && $death['queue'] === "sf-delay-300-$run", 'x-death ' . json_encode($death));
    $q->ack($m->getDeliveryTag());
    $q->delete();
});

story("broker errors come as AMQP exceptions with RabbitMQ's codes and texts", function () use ($run) {
    $ch = channel();
    $q = new AMQPQueue($ch);
    $q->setName("sf-missing-$run");
    $q->setFlags(AMQP_PASSIVE);
    try {
        $q->declareQueue();
        throw new RuntimeException('declared a missing queue');
    } catch (AMQPQueueException $e) {
        check($e->getCode() === 404, 'code ' . $e->getCode());
        check(str_contains($e->getMessage(), "NOT_FOUND - no queue 'sf-missing-$run' in vhost '/'"), $e->getMessage());
    }
    $ch = channel();
    $x = new AMQPExchange($ch);
    $x->setName("sf-typed-$run");
    $x->setType(AMQP_EX_TYPE_TOPIC);
    $x->declareExchange();
    $again = new AMQPExchange(new AMQPChannel($ch->getConnection()));
    $again->setName("sf-typed-$run");
    $again->setType(AMQP_EX_TYPE_FANOUT);
    try {
        $again->declareExchange();
        throw new RuntimeException('redeclared with another type');
    } catch (AMQPExchangeException $e) {
        check($e->getCode() === 406, 'code ' . $e->getCode());
        check(str_contains($e->getMessage(), "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'sf-typed-$run' in vhost '/': received 'fanout' but current is 'topic'"), $e->getMessage());
    }
    check($ch->getConnection()->isConnected(), 'the connection survived');
    (new AMQPExchange(new AMQPChannel($ch->getConnection())))->delete("sf-typed-$run");
});

story('publisher confirms: an ack for a routed message, a nack from a full reject-publish queue', function () use ($run) {
    $ch = channel();
    $q = new AMQPQueue($ch);
    $q->setName("sf-stock-$run");
    $q->setFlags(AMQP_AUTODELETE);
    $q->setArguments(['x-max-length' => 1, 'x-overflow' => 'reject-publish']);
    $q->declareQueue();
    $ch->confirmSelect();
    $outcomes = [];
    $ch->setConfirmCallback(
        function ($tag, $multiple) use (&$outcomes) {
            $outcomes[] = "ack:$tag";
            return count($outcomes) < 2;
        },
        function ($tag, $multiple, $requeue) use (&$outcomes) {
            $outcomes[] = "nack:$tag";
            return count($outcomes) < 2;
        }
    );
    $x = new AMQPExchange($ch);
    $x->publish('first', "sf-stock-$run");
    $x->publish('second', "sf-stock-$run");
    $ch->waitForConfirm(5);
    check($outcomes === ['ack:1', 'nack:2'], 'confirms ' . implode(',', $outcomes));
});

finish();
