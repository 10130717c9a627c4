<?php
// php-amqplib (Debian's php-amqplib), the client under Magento's and Laravel's queues,
// against Warren: what a PHP shop does with it, in its own idioms: confirm handlers and
// wait_for_pending_acks_returns, basic_consume callbacks driven by wait(), AMQPTable
// headers, its protocol exceptions, and the TTL "delay queue" Laravel and Symfony retry with.
//   php interop/php/php_amqplib_client.php
// Needs AMQP_URL; with TLS_DIR and AMQPS_PORT also checks amqps. Last line: N passed, N failed
require '/usr/share/php/PhpAmqpLib/autoload.php';

use PhpAmqpLib\Connection\AMQPSSLConnection;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPBasicCancelException;
use PhpAmqpLib\Exception\AMQPProtocolChannelException;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

require __DIR__ . '/stories.php';

$url = parse_url(getenv('AMQP_URL'));
$run = bin2hex(random_bytes(4));

function connect(): AMQPStreamConnection
{
    global $url;
    return new AMQPStreamConnection($url['host'], $url['port'], 'guest', 'guest', '/');
}

/** basic_get until a message arrives, with a bound. */
function get_within($ch, string $q, bool $noAck = false): AMQPMessage
{
    for ($i = 0; $i < 250; $i++) {
        $m = $ch->basic_get($q, $noAck);
        if ($m !== null) {
            return $m;
        }
        usleep(20000);
    }
    throw new RuntimeException("no message on $q within 5 s");
}

/** Runs the channel's wait() until $done() holds, with a bound. */
function wait_until($ch, callable $done, float $seconds = 5.0): void
{
    $until = microtime(true) + $seconds;
    while (!$done()) {
        $left = $until - microtime(true);
        if ($left <= 0) {
            throw new RuntimeException("not done within $seconds s");
        }
        $ch->wait(null, false, $left);
    }
}

story('a confirmed persistent order is read back with its properties', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $q = "php-orders-$run";
    $ch->queue_declare($q, false, true, false, false);
    $ch->confirm_select();
    $acked = 0;
    $ch->set_ack_handler(function () use (&$acked) {
        $acked++;
    });
    $sentAt = time();
    $ch->basic_publish(new AMQPMessage('{"order":42}', [
        'content_type' => 'application/json',
        'delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT,
        'message_id' => 'order-42',
        'timestamp' => $sentAt,
        'priority' => 3,
        'application_headers' => new AMQPTable([
            'x-order-id' => 42, 'lines' => ['sku-1', 'sku-2'], 'shipping' => ['express' => true],
        ]),
    ]), '', $q);
    $ch->wait_for_pending_acks(5);
    check($acked === 1, "acked $acked");
    $m = get_within($ch, $q);
    $headers = $m->get('application_headers')->getNativeData();
    check($m->getBody() === '{"order":42}', 'body ' . $m->getBody());
    check($m->get('content_type') === 'application/json', 'content type');
    check($m->get('delivery_mode') === 2, 'delivery mode');
    check($m->get('message_id') === 'order-42', 'message id');
    check($m->get('timestamp') === $sentAt, 'timestamp ' . $m->get('timestamp'));
    check($m->get('priority') === 3, 'priority');
    check($headers === ['x-order-id' => 42, 'lines' => ['sku-1', 'sku-2'], 'shipping' => ['express' => true]],
        'headers ' . json_encode($headers));
    check($m->getMessageCount() === 0, 'nothing else queued');
    $m->ack();
    $ch->queue_delete($q);
    $c->close();
});

story('a consumer with prefetch 10 acks 100 orders in order', function () {
    $c = connect();
    $ch = $c->channel();
    [$q] = $ch->queue_declare('', false, false, true, true);
    for ($i = 0; $i < 100; $i++) {
        $ch->basic_publish(new AMQPMessage("order-$i"), '', $q);
    }
    $worker = $c->channel();
    $worker->basic_qos(0, 10, false);
    $got = [];
    $worker->basic_consume($q, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
        $got[] = $m->getBody();
        $m->ack();
    });
    wait_until($worker, function () use (&$got) {
        return count($got) === 100;
    });
    check($got === array_map(fn ($i) => "order-$i", range(0, 99)), 'order ' . implode(',', $got));
    $c->close();
});

story('RPC over direct reply-to', function () use ($run) {
    $server = connect();
    $s = $server->channel();
    $requests = "php-prices-$run";
    $s->queue_declare($requests, false, false, false, true);
    $served = 0;
    $s->basic_consume($requests, '', false, true, false, false, function (AMQPMessage $m) use ($s, &$served) {
        $served++;
        $s->basic_publish(new AMQPMessage('price:' . $m->getBody(), [
            'correlation_id' => $m->get('correlation_id'),
        ]), '', $m->get('reply_to'));
    });
    $client = connect();
    $c = $client->channel();
    $replies = [];
    $c->basic_consume('amq.rabbitmq.reply-to', '', false, true, false, false, function (AMQPMessage $m) use (&$replies) {
        $replies[] = $m->get('correlation_id') . '=' . $m->getBody();
    });
    for ($i = 0; $i < 20; $i++) {
        $c->basic_publish(new AMQPMessage("sku-$i", [
            'reply_to' => 'amq.rabbitmq.reply-to', 'correlation_id' => "c$i",
        ]), '', $requests);
        // one process, two connections: let the server side answer, then read the reply
        wait_until($s, function () use (&$served, $i) {
            return $served === $i + 1;
        });
        wait_until($c, function () use (&$replies, $i) {
            return count($replies) === $i + 1;
        });
        check($replies[$i] === "c$i=price:sku-$i", 'reply ' . $replies[$i]);
    }
    $client->close();
    $server->close();
});

story('an unroutable mandatory publish comes back to the return listener before its confirm', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $ch->confirm_select();
    $returned = [];
    $ch->set_return_listener(function ($code, $text, $exchange, $key, AMQPMessage $m) use (&$returned) {
        $returned[] = [$code, $text, $exchange, $key, $m->getBody()];
    });
    $acked = 0;
    $ch->set_ack_handler(function () use (&$acked) {
        $acked++;
    });
    $ch->basic_publish(new AMQPMessage('lost?'), 'amq.direct', "nowhere-$run", true);
    $ch->wait_for_pending_acks_returns(5);
    check($returned === [[312, 'NO_ROUTE', 'amq.direct', "nowhere-$run", 'lost?']], 'returned ' . json_encode($returned));
    check($acked === 1, "acked $acked");
    $c->close();
});

story("channel errors raise AMQPProtocolChannelException with RabbitMQ's codes and texts", function () use ($run) {
    $c = connect();
    $missing = "php-missing-$run";
    try {
        $c->channel()->queue_declare($missing, true);
        throw new RuntimeException('declared a missing queue');
    } catch (AMQPProtocolChannelException $e) {
        check($e->getCode() === 404, 'code ' . $e->getCode());
        check($e->getMessage() === "NOT_FOUND - no queue '$missing' in vhost '/'", $e->getMessage());
    }
    $q = "php-durable-$run";
    $c->channel()->queue_declare($q, false, true, false, false);
    try {
        $c->channel()->queue_declare($q, false, false, false, false);
        throw new RuntimeException('redeclared with another durability');
    } catch (AMQPProtocolChannelException $e) {
        check($e->getCode() === 406, 'code ' . $e->getCode());
        check($e->getMessage() === "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '$q' in vhost '/': "
            . "received 'false' but current is 'true'", $e->getMessage());
    }
    $other = connect();
    [$mine] = $c->channel()->queue_declare("php-exclusive-$run", false, false, true, false);
    try {
        $other->channel()->queue_declare($mine, false, false, true, false);
        throw new RuntimeException("took another connection's exclusive queue");
    } catch (AMQPProtocolChannelException $e) {
        check($e->getCode() === 405, 'code ' . $e->getCode());
        check(str_starts_with($e->getMessage(), "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '$mine'"),
            $e->getMessage());
    }
    $other->close();
    check($c->isConnected(), 'the connection survived three channel errors');
    $c->channel()->queue_delete($q);
    $c->close();
});

story('a rejected payment is dead-lettered with an x-death header', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $dlx = "php-dlx-$run";
    $ch->exchange_declare($dlx, 'fanout', false, false, true);
    [$parked] = $ch->queue_declare('', false, false, true, true);
    $ch->queue_bind($parked, $dlx);
    $work = "php-payments-$run";
    $ch->queue_declare($work, false, false, true, false, false, new AMQPTable(['x-dead-letter-exchange' => $dlx]));
    $ch->basic_publish(new AMQPMessage('payment-7'), '', $work);
    get_within($ch, $work)->reject(false);
    $dead = get_within($ch, $parked, true);
    $deaths = $dead->get('application_headers')->getNativeData()['x-death'];
    check($dead->getBody() === 'payment-7', 'body');
    check(count($deaths) === 1, 'x-death ' . json_encode($deaths));
    $d = $deaths[0];
    check($d['reason'] === 'rejected' && $d['queue'] === $work && $d['count'] === 1
        && $d['routing-keys'] === [$work] && $d['exchange'] === '', 'x-death ' . json_encode($d));
    $c->close();
});

story('a delay queue (x-message-ttl, dead-lettered back), as Laravel and Symfony retry', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $orders = "php-retry-orders-$run";
    $ch->queue_declare($orders, false, false, true, false);
    $delay = "php-delay-300-$run";
    $ch->queue_declare($delay, false, false, true, false, false, new AMQPTable([
        'x-message-ttl' => 300, 'x-dead-letter-exchange' => '', 'x-dead-letter-routing-key' => $orders,
        'x-expires' => 60000,
    ]));
    $started = microtime(true);
    $ch->basic_publish(new AMQPMessage('order-9, attempt 2'), '', $delay);
    $m = get_within($ch, $orders, true);
    check($m->getBody() === 'order-9, attempt 2', 'body');
    check(microtime(true) - $started >= 0.25, 'held for its TTL');
    $death = $m->get('application_headers')->getNativeData()['x-death'][0];
    check($death['reason'] === 'expired' && $death['queue'] === $delay, 'x-death ' . json_encode($death));
    $c->close();
});

story('deleting a consumed queue makes wait() throw AMQPBasicCancelException with the tag', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $q = "php-cancelled-$run";
    $ch->queue_declare($q, false, false, false, false);
    $ch->basic_consume($q, 'stock-worker', false, false, false, false, function () {
    });
    $c->channel()->queue_delete($q);
    try {
        $ch->wait(null, false, 5);
        throw new RuntimeException('no basic.cancel');
    } catch (AMQPBasicCancelException $e) {
        check($e->getConsumerTag() === 'stock-worker', 'cancelled ' . $e->getConsumerTag());
    }
    check($ch->is_open(), "the consumer's channel stays open");
    $c->close();
});

story('a full reject-publish queue nacks the publish', function () use ($run) {
    $c = connect();
    $ch = $c->channel();
    $q = "php-stock-$run";
    $ch->queue_declare($q, false, false, true, false, false, new AMQPTable([
        'x-max-length' => 1, 'x-overflow' => 'reject-publish',
    ]));
    $ch->confirm_select();
    $acks = [];
    $ch->set_ack_handler(function (AMQPMessage $m) use (&$acks) {
        $acks[] = 'ack:' . $m->getBody();
    });
    $ch->set_nack_handler(function (AMQPMessage $m) use (&$acks) {
        $acks[] = 'nack:' . $m->getBody();
    });
    $ch->basic_publish(new AMQPMessage('first'), '', $q);
    $ch->basic_publish(new AMQPMessage('second'), '', $q);
    $ch->wait_for_pending_acks(5);
    check($acks === ['ack:first', 'nack:second'], 'confirms ' . implode(',', $acks));
    [, $count] = $ch->queue_declare($q, true);
    check($count === 1, "$count queued");
    $c->close();
});

story('a transaction rolls back and commits', function () {
    $c = connect();
    $ch = $c->channel();
    [$q] = $ch->queue_declare('', false, false, true, true);
    $ch->tx_select();
    $ch->basic_publish(new AMQPMessage('rolled back'), '', $q);
    $ch->tx_rollback();
    $ch->basic_publish(new AMQPMessage('committed'), '', $q);
    $ch->tx_commit();
    $m = $ch->basic_get($q, true);
    check($m !== null && $m->getBody() === 'committed' && $m->getMessageCount() === 0, 'got one committed message');
    $c->close();
});

$tlsDir = getenv('TLS_DIR');
$amqpsPort = getenv('AMQPS_PORT');
if ($tlsDir && $amqpsPort) {
    story('amqps with the test CA: publish and get over TLS', function () use ($tlsDir, $amqpsPort) {
        $c = new AMQPSSLConnection('localhost', (int) $amqpsPort, 'guest', 'guest', '/', [
            'cafile' => "$tlsDir/ca.pem", 'verify_peer' => true, 'verify_peer_name' => true, 'peer_name' => 'localhost',
        ]);
        $ch = $c->channel();
        [$q] = $ch->queue_declare('', false, false, true, true);
        $ch->basic_publish(new AMQPMessage('over tls'), '', $q);
        check(get_within($ch, $q, true)->getBody() === 'over tls', 'message over TLS');
        $c->close();
    });
}

finish();
