// amqplib (promise API) against Warren: the calls a Node shop service makes.
// The broker URL comes from AMQP_URL (interop/run.sh starts the broker).
const { test } = require('node:test');
const assert = require('node:assert');
const amqp = require('amqplib');

const URL = process.env.AMQP_URL;

async function withChannel(fn, confirm = false) {
  const conn = await amqp.connect(URL);
  try {
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    return await fn(ch, conn);
  } finally {
    await conn.close().catch(() => {});
  }
}

test('server properties identify a RabbitMQ-compatible broker', async () => {
  const conn = await amqp.connect(URL);
  assert.strictEqual(conn.connection.serverProperties.product, 'RabbitMQ');
  assert.ok(conn.connection.serverProperties.capabilities.publisher_confirms);
  await conn.close();
});

test('publish, consume and ack in order', async () => {
  await withChannel(async (ch) => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (const body of ['a', 'b', 'c']) ch.sendToQueue(queue, Buffer.from(body));
    const got = await new Promise((resolve) => {
      const seen = [];
      ch.consume(queue, (m) => {
        seen.push(m.content.toString());
        ch.ack(m);
        if (seen.length === 3) resolve(seen);
      });
    });
    assert.deepStrictEqual(got, ['a', 'b', 'c']);
  });
});

test('confirm channel acks every publish', async () => {
  await withChannel(async (ch) => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    for (let i = 0; i < 50; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await ch.waitForConfirms();
    const q = await ch.checkQueue(queue);
    assert.strictEqual(q.messageCount, 50);
  }, true);
});

test('get, nack with requeue and redelivered flag', async () => {
  await withChannel(async (ch) => {
    const { queue } = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(queue, Buffer.from('x'));
    let m;
    while (!(m = await ch.get(queue))) await new Promise((r) => setTimeout(r, 10));
    assert.strictEqual(m.fields.redelivered, false);
    ch.nack(m, false, true);
    const again = await ch.get(queue);
    assert.strictEqual(again.fields.redelivered, true);
    ch.ack(again);
    assert.strictEqual(await ch.get(queue), false);
  });
});

test('unroutable mandatory message is returned', async () => {
  await withChannel(async (ch) => {
    const returned = new Promise((resolve) => ch.on('return', resolve));
    ch.publish('amq.direct', 'nobody-here', Buffer.from('lost'), { mandatory: true });
    const m = await returned;
    assert.strictEqual(m.fields.replyCode, 312);
    assert.strictEqual(m.content.toString(), 'lost');
  });
});

test('channel error carries the RabbitMQ reply code', async () => {
  await withChannel(async (ch) => {
    ch.on('error', () => {});
    await assert.rejects(ch.checkExchange('no-such-exchange'), /404/);
  });
});

test('price lookup over direct reply-to: the RPC pattern of NestJS and amqplib users', async () => {
  const conn = await amqp.connect(URL);
  try {
    // the pricing service
    const server = await conn.createChannel();
    const { queue } = await server.assertQueue('', { exclusive: true });
    await server.consume(queue, (m) => {
      const sku = m.content.toString();
      server.sendToQueue(m.properties.replyTo, Buffer.from(`${sku}=42.00`), {
        correlationId: m.properties.correlationId,
      });
      server.ack(m);
    });
    // the order service asks, with amqplib's documented direct reply-to recipe
    const client = await conn.createChannel();
    const replies = new Map();
    await client.consume('amq.rabbitmq.reply-to', (m) => {
      replies.get(m.properties.correlationId)(m);
    }, { noAck: true });
    const ask = (sku, id) => new Promise((resolve) => {
      replies.set(id, resolve);
      client.sendToQueue(queue, Buffer.from(sku), {
        replyTo: 'amq.rabbitmq.reply-to', correlationId: id,
      });
    });
    const answers = await Promise.all(['apple', 'pear', 'plum'].map((s, i) => ask(s, `c${i}`)));
    assert.deepStrictEqual(answers.map((m) => m.content.toString()),
      ['apple=42.00', 'pear=42.00', 'plum=42.00']);
    assert.deepStrictEqual(answers.map((m) => m.properties.correlationId), ['c0', 'c1', 'c2']);
  } finally {
    await conn.close().catch(() => {});
  }
});

test('a delayed exchange holds a message for its x-delay', async () => {
  await withChannel(async (ch) => {
    await ch.assertExchange('node.delayed', 'x-delayed-message', {
      arguments: { 'x-delayed-type': 'direct' },
    });
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(queue, 'node.delayed', 'later');
    const sent = Date.now();
    ch.publish('node.delayed', 'later', Buffer.from('cancel order 7'), {
      headers: { 'x-delay': 300 },
    });
    await ch.waitForConfirms();
    const m = await new Promise((resolve) => ch.consume(queue, resolve, { noAck: true }));
    assert.ok(Date.now() - sent >= 300, `arrived after ${Date.now() - sent} ms`);
    assert.strictEqual(m.content.toString(), 'cancel order 7');
    assert.strictEqual(m.properties.headers['x-delay'], -300);
    await ch.deleteExchange('node.delayed');
  }, true);
});

test('amqps: publish and get over TLS with the CA from the test PKI', async () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const opts = { ca: [fs.readFileSync(path.join(process.env.TLS_DIR, 'ca.pem'))], servername: 'localhost' };
  const conn = await amqp.connect(process.env.AMQPS_URL, opts);
  try {
    const ch = await conn.createConfirmChannel();
    const { queue } = await ch.assertQueue('', { exclusive: true });
    await new Promise((resolve, reject) =>
      ch.sendToQueue(queue, Buffer.from('order over amqps'), {}, (err) => (err ? reject(err) : resolve())));
    const msg = await ch.get(queue, { noAck: true });
    assert.strictEqual(msg.content.toString(), 'order over amqps');
  } finally {
    await conn.close().catch(() => {});
  }
});
