// Warren's image where a team used rabbitmq:3-management: testcontainers' own RabbitMQ module,
// the official image's variables, volume, config directory, healthcheck and stop signal.
// WARREN_IMAGE names the image run.sh built from the Dockerfile; DOCKER_HOST the engine.
const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const amqp = require('amqplib');
const { RabbitMQContainer } = require('@testcontainers/rabbitmq');

const IMAGE = process.env.WARREN_IMAGE;
const STARTED = 'Server startup complete';
const docker = async (...args) => (await promisify(execFile)('docker', args)).stdout.trim();

// `docker run -d` as a compose file would, ports published on loopback only.
async function dockerRun(args, ports) {
  const publish = ports.flatMap((p) => ['-p', `127.0.0.1::${p}`]);
  const id = await docker('run', '-d', ...publish, ...args, IMAGE);
  return {
    id,
    port: async (p) => (await docker('port', id, `${p}/tcp`)).split('\n')[0].split(':').pop(),
    logs: async () => {
      const { stdout, stderr } = await promisify(execFile)('docker', ['logs', id]);
      return stdout + stderr;
    },
    remove: () => docker('rm', '-f', '-v', id).catch(() => {}),
  };
}

async function eventually(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const started = (c) => eventually(`"${STARTED}" in the log`, async () => (await c.logs()).includes(STARTED));
const basic = (user, pass) => ({ authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') });

test("testcontainers' RabbitMQ module waits for the image's start-up line; an order and the management API go through", async () => {
  const broker = await new RabbitMQContainer(IMAGE).start();
  try {
    // guest from outside the container (the official image's 10-defaults.conf allows it)
    const conn = await amqp.connect(broker.getAmqpUrl());
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('orders', { durable: true });
    ch.sendToQueue('orders', Buffer.from('order-1'), { persistent: true });
    await ch.waitForConfirms();
    const api = `http://${broker.getHost()}:${broker.getMappedPort(15672)}`;
    const res = await fetch(`${api}/api/queues/%2F/orders`, { headers: basic('guest', 'guest') });
    assert.strictEqual(res.status, 200);
    const queue = await res.json();
    assert.strictEqual(queue.durable, true);
    assert.strictEqual(queue.messages, 1);
    const got = await ch.get('orders', { noAck: true });
    assert.strictEqual(got.content.toString(), 'order-1');
    await conn.close();
  } finally {
    await broker.stop();
  }
});

test('the container log carries RabbitMQ lines once each and no terminal colours', async () => {
  const broker = await dockerRun([], [5672]);
  try {
    await started(broker);
    const log = await broker.logs();
    const count = (line) => log.split('\n').filter((l) => l.includes(line)).length;
    assert.strictEqual(count('Server startup complete; 0 plugins started.'), 1, log);
    assert.strictEqual(count('Management plugin: HTTP (non-TLS) listener started on port 15672'), 1, log);
    assert.strictEqual(count('Prometheus metrics: HTTP (non-TLS) listener started on port 15692'), 1, log);
    assert.ok(log.includes('started TCP listener on 0.0.0.0:5672'), log);
    assert.ok(!log.includes('\u001b'), log);
  } finally {
    await broker.remove();
  }
});

test('RABBITMQ_DEFAULT_USER, _PASS and _VHOST make the first user and vhost; guest is not created', async () => {
  const env = ['-e', 'RABBITMQ_DEFAULT_USER=shop', '-e', 'RABBITMQ_DEFAULT_PASS=s3cret', '-e', 'RABBITMQ_DEFAULT_VHOST=orders'];
  const broker = await dockerRun(env, [5672]);
  try {
    await started(broker);
    const port = await broker.port(5672);
    const conn = await amqp.connect(`amqp://shop:s3cret@127.0.0.1:${port}/orders`);
    await conn.close();
    await assert.rejects(amqp.connect(`amqp://guest:guest@127.0.0.1:${port}/`), /ACCESS.REFUSED/);
  } finally {
    await broker.remove();
  }
});

test('docker stop tells clients 320 and exits 0; a new container on the same volume still has the orders', async () => {
  const volume = `warren-orders-${process.pid}`;
  await docker('volume', 'create', volume);
  const first = await dockerRun(['-v', `${volume}:/var/lib/rabbitmq`], [5672]);
  let second;
  try {
    await started(first);
    const conn = await amqp.connect(`amqp://127.0.0.1:${await first.port(5672)}`);
    // amqplib reports 320 CONNECTION_FORCED on 'close', not as an 'error'
    const closed = new Promise((resolve) => conn.on('close', resolve));
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('orders', { durable: true });
    for (const n of [1, 2, 3]) ch.sendToQueue('orders', Buffer.from(`order-${n}`), { persistent: true });
    await ch.waitForConfirms();

    await docker('stop', '--time', '10', first.id);
    assert.strictEqual((await closed).code, 320);
    assert.strictEqual(await docker('inspect', '-f', '{{.State.ExitCode}}', first.id), '0');
    await first.remove();

    second = await dockerRun(['-v', `${volume}:/var/lib/rabbitmq`], [5672]);
    await started(second);
    const again = await amqp.connect(`amqp://127.0.0.1:${await second.port(5672)}`);
    const ch2 = await again.createChannel();
    const bodies = [];
    for (let m; (m = await ch2.get('orders', { noAck: true })); ) bodies.push(m.content.toString());
    assert.deepStrictEqual(bodies, ['order-1', 'order-2', 'order-3']);
    await again.close();
  } finally {
    await first.remove();
    if (second) await second.remove();
    await docker('volume', 'rm', '-f', volume).catch(() => {});
  }
});

test("a compose healthcheck (rabbitmq-diagnostics ping) turns healthy; rabbitmqctl and /metrics answer; it runs as rabbitmq", async () => {
  const health = ['--health-cmd', 'rabbitmq-diagnostics -q ping', '--health-interval', '1s', '--health-retries', '30'];
  const broker = await dockerRun(health, [5672, 15692]);
  try {
    await eventually('health status "healthy"', async () =>
      (await docker('inspect', '-f', '{{.State.Health.Status}}', broker.id)) === 'healthy');
    const conn = await amqp.connect(`amqp://127.0.0.1:${await broker.port(5672)}`);
    const ch = await conn.createChannel();
    await ch.assertQueue('stock', { durable: true });
    ch.sendToQueue('stock', Buffer.from('sku-1'));
    await eventually('rabbitmqctl list_queues shows stock with 1 message', async () =>
      (await docker('exec', broker.id, 'rabbitmqctl', 'list_queues', '-q', 'name', 'messages'))
        .split('\n').some((l) => /^stock\s+1$/.test(l.trim())));
    await conn.close();
    await docker('exec', broker.id, 'rabbitmq-diagnostics', '-q', 'check_port_connectivity');
    const metrics = await (await fetch(`http://127.0.0.1:${await broker.port(15692)}/metrics`)).text();
    assert.match(metrics, /^rabbitmq_identity_info\{/m);
    assert.strictEqual(await docker('exec', broker.id, 'id', '-un'), 'rabbitmq');
  } finally {
    await broker.remove();
  }
});

test('a rabbitmq.conf in conf.d sets the listener and the first user; a key RabbitMQ does not have stops start-up', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-conf-'));
  fs.chmodSync(dir, 0o755);
  const conf = path.join(dir, '20-shop.conf');
  fs.writeFileSync(conf, 'listeners.tcp.default = 5673\ndefault_user = ops\ndefault_pass = pw\n');
  const bad = path.join(dir, 'rabbitmq.conf');
  fs.writeFileSync(bad, 'default_user = ops\nqueue_master_locater = min-masters\n');
  const broker = await dockerRun(['-v', `${conf}:/etc/rabbitmq/conf.d/20-shop.conf:ro`], [5673]);
  try {
    await started(broker);
    const conn = await amqp.connect(`amqp://ops:pw@127.0.0.1:${await broker.port(5673)}`);
    await conn.close();

    const refused = await promisify(execFile)('docker', ['run', '--rm', '-v', `${bad}:/etc/rabbitmq/rabbitmq.conf:ro`, IMAGE])
      .then(() => null, (err) => err);
    assert.ok(refused, 'the container started with an unknown key');
    assert.notStrictEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /queue_master_locater/);
  } finally {
    await broker.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
