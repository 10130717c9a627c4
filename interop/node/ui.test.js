// The management web UI in a real browser: Debian's headless Chromium driven by
// playwright-core, against a Warren this file starts (free ports, temp data dir, an amqps
// listener with a throwaway CA) and stops. Each story is what an operator does at
// http://host:15672/; screenshots of every page land in UI_SCREENSHOTS (default
// target/ui-screenshots), and any error in the browser console fails the story.
const { test, before, after, beforeEach, afterEach } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawn, execFileSync } = require('node:child_process');
const amqp = require('amqplib');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.WARREN_BIN || path.join(ROOT, 'target', 'release', 'warren');
const SHOTS = process.env.UI_SCREENSHOTS || path.join(ROOT, 'target', 'ui-screenshots');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BOUND = 15000; // every wait for an event is bounded by this many ms

let broker; let dir; let certs; let base; let amqpUrl; let amqpsPort; let browser;
let page; let consoleErrors; let allowedErrors;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function until(check, what) {
  const deadline = Date.now() + BOUND;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The management API, as the test's own admin (not through the browser). */
async function management(method, apiPath, body) {
  const r = await fetch(`${base}/api${apiPath}`, {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}`,
      'Content-Type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${apiPath}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-ui-'));
  certs = path.join(dir, 'certs');
  execFileSync(path.join(ROOT, 'interop', 'tls', 'make_certs.sh'), [certs], { stdio: 'ignore' });
  const [amqpPort, httpPort] = [await freePort(), await freePort()];
  amqpsPort = await freePort();
  broker = spawn(BIN, [
    '--amqp-listen', `127.0.0.1:${amqpPort}`,
    '--amqps-listen', `127.0.0.1:${amqpsPort}`,
    '--tls-cert', path.join(certs, 'server.pem'), '--tls-key', path.join(certs, 'server.key'),
    '--tls-ca', path.join(certs, 'ca.pem'),
    '--management-listen', `127.0.0.1:${httpPort}`, '--prometheus-listen', 'none',
    '--data-dir', path.join(dir, 'data'),
  ], {
    // Warren reads WARREN_* variables as configuration and refuses unknown ones, so the
    // test's own WARREN_BIN stays out of the broker's environment
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'WARREN_BIN')),
    stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'warren.log'), 'w')],
  });
  base = `http://127.0.0.1:${httpPort}`;
  amqpUrl = `amqp://guest:guest@127.0.0.1:${amqpPort}/%2F`;
  try {
    await until(() => fetch(`${base}/`).then((r) => r.ok, () => false), 'the management listener');
  } catch (e) {
    // say why the broker never came up rather than only that it did not
    const log = fs.readFileSync(path.join(dir, 'warren.log'), 'utf8');
    throw new Error(`${e.message}; broker exit ${broker.exitCode}, its log:\n${log}`);
  }
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (broker) {
    broker.kill('SIGTERM');
    await new Promise((r) => (broker.exitCode !== null ? r() : broker.on('exit', r)));
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page = await context.newPage();
  consoleErrors = [];
  allowedErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} ${m.location().url || ''}`.trim());
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));
  // the UI asks before purging, deleting and closing; the operator says yes
  page.on('dialog', (d) => d.accept());
});

afterEach(async () => {
  await page.context().close();
  const unexpected = consoleErrors.filter((e) => !allowedErrors.some((re) => re.test(e)));
  assert.deepStrictEqual(unexpected, [], 'errors in the browser console');
});

async function shot(name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function login(user = 'guest', password = 'guest') {
  await page.goto(`${base}/`);
  await page.fill('#login-username', user);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
}

async function signedIn() {
  await login();
  await page.waitForSelector('#overview');
  // the stories watch things change: refresh every second
  await page.selectOption('#refresh-select', '1');
}

async function open(hash, selector) {
  await page.goto(`${base}/${hash}`);
  await page.waitForSelector(selector);
}

/** The number in a page's tile (Ready, Unacked, ...). */
async function tile(name) {
  const text = await page.textContent(`[data-tile=${name}] .value`);
  return Number(text.replace(/,/g, ''));
}

test('an operator logs in and out; a user without a management tag is told why not', async () => {
  await management('PUT', '/users/ui-app', { password: 'app-secret', tags: '' });
  allowedErrors.push(/status of 401/); // the refused logins' own answers
  await login('guest', 'wrong');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /Login failed/);
  await login('ui-app', 'app-secret');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /Not management user/);
  await shot('login-refused');

  await login();
  await page.waitForSelector('#overview');
  assert.match(await page.textContent('#whoami'), /guest/);
  await until(async () => (await page.getAttribute('[data-chart="Queued messages"]', 'data-points')) !== '0', 'a chart sample');
  await page.waitForSelector('[data-meter=Memory]');
  assert.ok((await page.textContent('#overview')).includes(String(amqpsPort)), 'the amqps listener is listed');
  await shot('overview');
  await page.click('#logout');
  await page.waitForSelector('#login-form');
  assert.ok(await page.isHidden('#app'));
});

test('an operator watches a queue fill while a publisher runs, then gets a message and purges it', async () => {
  await signedIn();
  await open('#/queues', '#queues-list');
  await page.click('summary:has-text("Add a new queue")');
  await page.fill('#add-queue input[name=name]', 'ui-orders');
  await page.click('#add-queue button[type=submit]');
  await page.waitForSelector('#queues-list a:text-is("ui-orders")');

  const conn = await amqp.connect(amqpUrl);
  const ch = await conn.createChannel();
  let n = 0;
  const publisher = setInterval(() => {
    n += 1;
    ch.sendToQueue('ui-orders', Buffer.from(JSON.stringify({ order: n, item: 'book' })));
  }, 20);
  try {
    await page.click('#queues-list a:text-is("ui-orders")');
    await page.waitForSelector('#queue-page');
    const first = await until(async () => (await tile('ready')) || 0, 'messages in the queue');
    await until(async () => (await tile('ready')) > first, 'the queue to grow on the page');
    await until(async () => Number(await page.getAttribute('[data-chart="Queued messages"]', 'data-points')) >= 2, 'two depth samples');
  } finally {
    clearInterval(publisher);
  }
  await ch.close();
  await conn.close();
  const published = n;
  await until(async () => (await management('GET', '/queues/%2F/ui-orders')).messages === published, 'every message in the queue');
  await until(async () => (await tile('ready')) === published, 'the page to show the final depth');
  await shot('queue');

  await page.click('summary:has-text("Get messages")');
  await page.selectOption('#get-form select[name=ackmode]', 'ack_requeue_true');
  await page.click('#get-form button[type=submit]');
  await page.waitForSelector('#get-results [data-message="0"]');
  assert.match(await page.textContent('#get-results .payload'), /"order":1,"item":"book"/);
  await until(async () => (await management('GET', '/queues/%2F/ui-orders')).messages_ready === published, 'the message requeued, not lost');
  await shot('queue-get');

  await page.click('summary:has-text("Purge and delete")');
  await page.click('#purge-queue');
  await until(async () => (await management('GET', '/queues/%2F/ui-orders')).messages === 0, 'the purge');
  await until(async () => (await tile('ready')) === 0, 'the page to show the purge');

  await page.click('#delete-queue');
  await page.waitForSelector('#queues-list');
  await until(async () => !(await management('GET', '/queues/%2F')).some((q) => q.name === 'ui-orders'), 'the delete');
});

test('an operator publishes to an exchange, binds a queue and unbinds it', async () => {
  await management('PUT', '/queues/%2F/ui-stock', { durable: true });
  await signedIn();
  await open('#/exchanges', '#exchanges-list');
  await page.click('summary:has-text("Add a new exchange")');
  await page.fill('#add-exchange input[name=name]', 'ui-shop');
  await page.selectOption('#add-exchange select[name=type]', 'topic');
  await page.click('#add-exchange button[type=submit]');
  await page.click('#exchanges-list a:text-is("ui-shop")');
  await page.waitForSelector('#exchange-page');
  await page.fill('#bind-from-exchange input[name=other]', 'ui-stock');
  await page.fill('#bind-from-exchange input[name=routing_key]', 'order.*');
  await page.click('#bind-from-exchange button[type=submit]');
  await page.waitForSelector('[data-unbind="ui-shop|ui-stock|order.*"]');

  await page.click('summary:has-text("Publish message")');
  await page.fill('#publish-form input[name=routing_key]', 'order.created');
  await page.fill('#publish-form textarea[name=payload]', 'order 42');
  await page.click('#publish-form button[type=submit]');
  await until(async () => (await management('GET', '/queues/%2F/ui-stock')).messages === 1, 'the routed message');
  await shot('exchange');

  await page.click('[data-unbind="ui-shop|ui-stock|order.*"]');
  await until(async () => (await management('GET', '/exchanges/%2F/ui-shop/bindings/source')).length === 0, 'the unbind');
  await page.click('summary:has-text("Delete this exchange")');
  await page.click('#delete-exchange');
  await page.waitForSelector('#exchanges-list');
  await until(async () => !(await management('GET', '/exchanges/%2F')).some((x) => x.name === 'ui-shop'), 'the delete');
  await management('DELETE', '/queues/%2F/ui-stock');
});

test('an operator finds a TLS connection, reads its details and closes it with a reason', async () => {
  const ca = fs.readFileSync(path.join(certs, 'ca.pem'));
  const conn = await amqp.connect(`amqps://guest:guest@localhost:${amqpsPort}/%2F`, {
    ca: [ca], clientProperties: { connection_name: 'ui-stuck-worker' },
  });
  const ch = await conn.createChannel();
  await ch.prefetch(7);
  const closed = new Promise((resolve) => conn.on('close', resolve));
  conn.on('error', () => {});

  await signedIn();
  await open('#/connections', '#connections-list');
  const row = page.locator('#connections-list tr', { hasText: 'ui-stuck-worker' });
  await row.waitFor();
  assert.match(await row.textContent(), /tlsv1\.[23]/);
  await shot('connections');
  await row.locator('a').first().click();
  await page.waitForSelector('#connection-page');
  await until(async () => /aes|chacha/.test(await page.textContent('#connection-page')), 'the TLS details');
  await page.click('summary:has-text("Client properties")');
  assert.match(await page.textContent('#connection-page'), /amqplib/);
  await shot('connection');

  await open('#/channels', '#channels-list');
  // the worker's one channel, with the prefetch it set
  await page.locator('#channels-list td.num:text-is("7")').first().waitFor();
  await shot('channels');

  await page.goBack();
  await page.waitForSelector('#connection-page');
  await page.click('summary:has-text("Close this connection")');
  await page.fill('#close-connection input[name=reason]', 'stuck since the deploy');
  await page.click('#close-connection button[type=submit]');
  const err = await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed')), BOUND))]);
  assert.match(String(err && err.message), /CONNECTION_FORCED - stuck since the deploy/);
  await page.waitForSelector('#connections-list');
});

test('an operator imports a definitions file and downloads the definitions back', async () => {
  const file = path.join(dir, 'shop-definitions.json');
  fs.writeFileSync(file, JSON.stringify({
    rabbit_version: '3.10.8',
    queues: [{ name: 'ui-imported-payments', vhost: '/', durable: true, auto_delete: false, arguments: { 'x-message-ttl': 30000 } }],
    exchanges: [{ name: 'ui-imported-events', vhost: '/', type: 'fanout', durable: true, auto_delete: false, internal: false, arguments: {} }],
    bindings: [{ source: 'ui-imported-events', vhost: '/', destination: 'ui-imported-payments', destination_type: 'queue', routing_key: '', arguments: {} }],
    policies: [{ vhost: '/', name: 'ui-imported-limit', pattern: '^ui-imported-', 'apply-to': 'queues', definition: { 'max-length': 1000 }, priority: 1 }],
  }));
  await signedIn();
  await page.click('summary:has-text("Export and import definitions")');
  await page.setInputFiles('#import-definitions input[type=file]', file);
  await page.click('#import-definitions button[type=submit]');
  await page.waitForSelector('.status.ok');
  const q = await management('GET', '/queues/%2F/ui-imported-payments');
  assert.strictEqual(q.arguments['x-message-ttl'], 30000);
  assert.strictEqual(q.policy, 'ui-imported-limit');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-definitions')]);
  const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.ok(exported.queues.some((x) => x.name === 'ui-imported-payments'));
  assert.ok(exported.bindings.some((b) => b.source === 'ui-imported-events'));

  await open('#/policies', '#policies-list');
  await page.waitForSelector('#policies-list td:text-is("ui-imported-limit")');
  await shot('policies');
  await page.click('[data-delete-policy="ui-imported-limit"]');
  await until(async () => (await management('GET', '/policies/%2F')).length === 0, 'the policy delete');
});

test('an administrator adds a user, a virtual host, a permission and a limit', async () => {
  await signedIn();
  await open('#/users', '#users-list');
  await page.click('summary:has-text("Add a user")');
  await page.fill('#add-user input[name=username]', 'ui-ops');
  await page.fill('#add-user input[name=password]', 'ops-secret');
  await page.click('#add-user button:text("[monitoring]")');
  await page.click('#add-user button[type=submit]');
  await page.waitForSelector('#users-list a:text-is("ui-ops")');
  await shot('users');

  await open('#/vhosts', '#vhosts-list');
  await page.click('summary:has-text("Add a virtual host")');
  await page.fill('#add-vhost input[name=name]', 'ui-staging');
  await page.click('#add-vhost button[type=submit]');
  await page.waitForSelector('#vhosts-list a:text-is("ui-staging")');
  await page.click('#vhosts-list a:text-is("ui-staging")');
  await page.fill('#set-permission input[name=user]', 'ui-ops');
  await page.click('#set-permission button[type=submit]');
  await page.fill('#set-limit input[name=value]', '5');
  await page.click('#set-limit button[type=submit]');
  await until(async () => {
    const limits = await management('GET', '/vhost-limits/ui-staging');
    return limits.length === 1 && limits[0].value['max-connections'] === 5;
  }, 'the vhost limit');
  await shot('vhost');
  const perms = await management('GET', '/users/ui-ops/permissions');
  assert.deepStrictEqual(perms.map((p) => [p.vhost, p.configure]), [['ui-staging', '.*']]);
  assert.deepStrictEqual((await management('GET', '/users/ui-ops')).tags, ['monitoring']);

  // the new user signs in and sees what monitoring shows; no Admin tab
  await page.click('#logout');
  await login('ui-ops', 'ops-secret');
  await page.waitForSelector('#overview');
  assert.ok(await page.isHidden('#nav-admin'));

  // the administrator removes that user while it is signed in: its next refresh is refused
  // and the UI goes back to the login, saying why (the page polls every second, so the
  // refusal is certain and comes within the wait)
  allowedErrors.push(/status of 401/); // the refused refresh's own answer
  await management('DELETE', '/users/ui-ops');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /^Signed out: /);
  assert.ok(await page.isHidden('#app'));
  await management('DELETE', '/vhosts/ui-staging');
});

test('the queue list stays usable with 10,000 queues: the server pages, filters and sorts', async () => {
  await management('PUT', '/vhosts/ui-many', {});
  await management('PUT', '/permissions/ui-many/guest', { configure: '.*', write: '.*', read: '.*' });
  const conn = await amqp.connect(amqpUrl.replace(/%2F$/, 'ui-many'));
  const ch = await conn.createChannel();
  await Promise.all(Array.from({ length: 10000 }, (_, i) => ch.assertQueue(`bulk-${String(i).padStart(5, '0')}`)));
  await conn.close();

  await signedIn();
  await page.selectOption('#vhost-select', 'ui-many');
  await open('#/queues', '#queues-list');
  await until(async () => /10,000 items/.test(await page.textContent('#queues-list')), 'the total');
  assert.match(await page.textContent('#queues-list .pager'), /page 1 of 200/);
  assert.strictEqual(await page.locator('#queues-list tbody tr').count(), 50);
  await page.fill('#queues-list [data-role=filter]', '^bulk-0999[0-9]$');
  await page.check('#queues-list [data-role=regex]');
  await until(async () => /10 of 10,000 items/.test(await page.textContent('#queues-list')), 'the regex filter');
  await page.click('#queues-list th:text-is("Name")');
  await until(async () => (await page.textContent('#queues-list tbody tr:first-child')).includes('bulk-09999'), 'the reversed sort');
  await shot('queues');
  // The page refreshes the vhost's queue list on a timer: closed first, so that no refresh
  // asks for the vhost after it is gone and logs a 404 the console check would count.
  await page.close();
  await management('DELETE', '/vhosts/ui-many');
});
