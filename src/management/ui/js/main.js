// The UI's shell: login and logout, the top bar (virtual host, refresh interval, user), the
// hash router (RabbitMQ's own paths: #/queues/%2F/orders) and the refresh loop that asks
// the current page to update. Pages are objects {el, update()} made by the page modules.

import * as api from './api.js';
import { h, clear, fmtDuration, errorText, notify } from './dom.js';
import { overviewPage } from './overview.js';
import { queuesPage, queuePage } from './queues.js';
import { exchangesPage, exchangePage } from './exchanges.js';
import { connectionsPage, connectionPage, channelsPage } from './connections.js';
import { usersPage, userPage, vhostsPage, vhostPage, policiesPage } from './admin.js';

const $ = (id) => document.getElementById(id);

const routes = [
  [/^\/?$/, 'overview', () => overviewPage(ctx)],
  [/^\/queues$/, 'queues', () => queuesPage(ctx)],
  [/^\/queues\/([^/]+)\/([^/]+)$/, 'queues', (v, n) => queuePage(ctx, v, n)],
  [/^\/exchanges$/, 'exchanges', () => exchangesPage(ctx)],
  [/^\/exchanges\/([^/]+)\/([^/]*)$/, 'exchanges', (v, n) => exchangePage(ctx, v, n)],
  [/^\/connections$/, 'connections', () => connectionsPage(ctx)],
  [/^\/connections\/([^/]+)$/, 'connections', (n) => connectionPage(ctx, n)],
  [/^\/channels$/, 'channels', () => channelsPage(ctx)],
  [/^\/users$/, 'admin', () => usersPage(ctx)],
  [/^\/users\/([^/]+)$/, 'admin', (n) => userPage(ctx, n)],
  [/^\/vhosts$/, 'admin', () => vhostsPage(ctx)],
  [/^\/vhosts\/([^/]+)$/, 'admin', (n) => vhostPage(ctx, n)],
  [/^\/policies$/, 'admin', () => policiesPage(ctx)],
];

/** What pages may use: the selected vhost, the user, navigation and a forced refresh. */
const ctx = {
  user: null,
  vhost: () => $('vhost-select').value,
  vhosts: [],
  isAdmin: () => (ctx.user?.tags || []).includes('administrator'),
  isPolicymaker: () => (ctx.user?.tags || []).some((t) => t === 'administrator' || t === 'policymaker'),
  go: (hash) => { window.location.hash = hash; },
  refresh: () => refresh(),
  link: (hash, text) => h('a', { href: hash, text }),
  /** Run `f`, which deletes what this page shows (true when it did): the page's refreshes
   * stop first, and one in flight is waited for, so none asks for the object once it is
   * gone (the browser logs every 404). The page is left by `ctx.go` afterwards. */
  leaving: async (f) => {
    paused = true;
    await inflight;
    let ok = false;
    try {
      ok = await f();
    } finally {
      if (!ok) paused = false;
    }
    return ok;
  },
};

let current = null;
let updating = false;
let paused = false;
let inflight = Promise.resolve();
let timer = null;

function tabsFor(tab) {
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('active', a.dataset.tab === tab);
  }
}

function route() {
  if (!ctx.user) return;
  paused = false;
  const hash = window.location.hash.replace(/^#/, '') || '/';
  for (const [re, tab, make] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    const args = m.slice(1).map((s) => decodeURIComponent(s));
    tabsFor(tab);
    current = make(...args);
    clear($('page'), current.el);
    refresh();
    return;
  }
  tabsFor('');
  current = { el: h('div', { class: 'card' }, h('h2', { text: 'Not found' }), h('p', { text: `No page at #${hash}.` })), update: async () => {} };
  clear($('page'), current.el);
}

async function refresh() {
  if (!current || updating || paused) return;
  updating = true;
  const page = current;
  let settled;
  inflight = new Promise((resolve) => { settled = resolve; });
  try {
    await Promise.all([page.update(), updateFooter()]);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 404 && page.what && page === current) {
      // deleted meanwhile, by this user on another page or by someone else
      current = { el: h('div', { class: 'card' }, h('h2', { text: 'Not found' }), h('p', { text: `${page.what} no longer exists.` })), update: async () => {} };
      clear($('page'), current.el);
    } else if (!(e instanceof api.ApiError && e.status === 401)) {
      notify(errorText(e), 'error');
    }
  } finally {
    updating = false;
    settled();
  }
}

function schedule() {
  clearInterval(timer);
  const seconds = Number($('refresh-select').value);
  localStorage.setItem('warren-refresh', String(seconds));
  if (seconds > 0) timer = setInterval(refresh, seconds * 1000);
}

async function loadVhosts() {
  const select = $('vhost-select');
  const chosen = select.value || sessionStorage.getItem('warren-vhost') || '';
  const vhosts = await api.get('/vhosts');
  ctx.vhosts = vhosts.map((v) => v.name);
  clear(select, h('option', { value: '', text: 'All' }), ctx.vhosts.map((n) => h('option', { value: n, text: n })));
  select.value = ctx.vhosts.includes(chosen) ? chosen : '';
}
ctx.reloadVhosts = loadVhosts;

async function updateFooter() {
  const o = await api.get('/overview');
  const nodes = await api.get('/nodes');
  const uptime = nodes[0] ? fmtDuration(nodes[0].uptime) : '';
  $('footer').textContent = `${o.product_name} ${o.product_version} (RabbitMQ ${o.rabbitmq_version} API) · cluster ${o.cluster_name} · node ${o.node} · up ${uptime}`;
}

function showLogin(reason) {
  ctx.user = null;
  clearInterval(timer);
  current = null;
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !reason;
  err.textContent = reason || '';
  $('login-username').focus();
}

async function start(user) {
  ctx.user = user;
  $('login').hidden = true;
  $('app').hidden = false;
  $('whoami').textContent = `User ${user.name}`;
  $('nav-admin').hidden = !ctx.isPolicymaker();
  $('nav-admin').href = ctx.isAdmin() ? '#/users' : '#/policies';
  await loadVhosts();
  schedule();
  route();
}

function loginMessage(e) {
  if (e instanceof api.ApiError && e.status === 401) {
    return e.message === 'Not management user'
      ? 'Not management user: this user has no management tag, so it cannot use the management UI.'
      : `Login failed: ${e.message}`;
  }
  return `Login failed: ${errorText(e)}`;
}

async function boot() {
  const saved = localStorage.getItem('warren-refresh');
  if (saved !== null && [...$('refresh-select').options].some((o) => o.value === saved)) {
    $('refresh-select').value = saved;
  }
  $('refresh-select').addEventListener('change', schedule);
  $('vhost-select').addEventListener('change', () => {
    sessionStorage.setItem('warren-vhost', ctx.vhost());
    route();
  });
  $('logout').addEventListener('click', () => {
    api.forgetCredentials();
    window.location.hash = '#/';
    showLogin();
  });
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const user = await api.whoami($('login-username').value, $('login-password').value);
      $('login-password').value = '';
      await start(user);
    } catch (e) {
      showLogin(loginMessage(e));
    }
  });
  api.whenUnauthorised((reason) => {
    api.forgetCredentials();
    showLogin(`Signed out: ${reason}`);
  });
  window.addEventListener('hashchange', route);
  // a failed action's promise nobody awaited: tell the user instead of the console
  window.addEventListener('unhandledrejection', (ev) => {
    ev.preventDefault();
    notify(errorText(ev.reason), 'error');
  });
  if (api.signedIn()) {
    try {
      await start(await api.get('/whoami'));
      return;
    } catch (e) {
      api.forgetCredentials();
      showLogin(loginMessage(e));
      return;
    }
  }
  showLogin();
}

boot();
