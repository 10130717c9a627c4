// The overview: live charts of queued messages and message rates, object totals, node memory
// and disk against their alarm limits, listeners, and definitions export and import. The
// charts' history is kept for the page's lifetime, so it survives moving between tabs.

import * as api from './api.js';
import { h, clear, fmtNum, fmtRate, fmtBytes, rateOf, simpleTable, section, form, notify } from './dom.js';
import { LiveChart, count } from './chart.js';

const rates = new LiveChart('Message rates',
  ['Publish', 'Confirm', 'Deliver / get', 'Redelivered', 'Ack'], (v) => (v === null ? '' : fmtRate(v)));
const queued = new LiveChart('Queued messages',
  ['Ready', 'Unacked', 'Total'], count);
let lastConfirm = null;

function tile(label, value, id) {
  return h('div', { class: 'tile', 'data-tile': id }, h('div', { class: 'value', text: value }), h('div', { class: 'label', text: label }));
}

function meter(label, used, limit, alarm, fmt, lowerIsBad) {
  const share = limit ? Math.min(1, lowerIsBad ? limit / Math.max(used, 1) : used / limit) : 0;
  return h('div', { 'data-meter': label },
    h('div', { class: 'small' }, h('b', { text: label }), ` ${fmt(used)} `,
      h('span', { class: 'muted', text: lowerIsBad ? `(alarm below ${fmt(limit)})` : `(alarm at ${fmt(limit)})` }),
      alarm ? h('b', { class: 'error', text: ' ALARM' }) : null),
    h('div', { class: alarm ? 'meter alarm' : 'meter' }, h('div', { style: `width:${Math.round(share * 100)}%` })));
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function definitionsSection(ctx) {
  const scope = () => (ctx.vhost() ? api.path('definitions', ctx.vhost()) : '/definitions');
  const exportButton = h('button', {
    id: 'export-definitions',
    text: 'Download broker definitions',
    onclick: async () => {
      try {
        const defs = await api.get(scope());
        const date = new Date().toISOString().slice(0, 10);
        download(`warren_definitions_${date}.json`, JSON.stringify(defs, null, 2));
        notify('Definitions exported.');
      } catch (e) {
        notify(e.message, 'error');
      }
    },
  });
  const importForm = form([{ name: 'file', label: 'Definitions file', type: 'file', accept: '.json,application/json' }],
    'Upload broker definitions', async ({ file }) => {
      if (!file) throw new Error('Choose a definitions file first.');
      let body;
      try {
        body = JSON.parse(await file.text());
      } catch (e) {
        throw new Error(`${file.name} is not JSON: ${e.message}`);
      }
      await api.post(scope(), body);
      notify(`Definitions imported from ${file.name}.`);
      ctx.reloadVhosts();
    }, { id: 'import-definitions' });
  return section('Export and import definitions', h('div', {},
    h('p', { class: 'small muted', text: 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings, in RabbitMQ\'s format. The selected virtual host limits both to that host.' }),
    h('div', { class: 'actions' }, exportButton), h('h3', { text: 'Import' }), importForm), false);
}

export function overviewPage(ctx) {
  const totals = h('div', { class: 'tiles' });
  const node = h('div', {});
  const listeners = h('div', {});
  const el = h('div', { id: 'overview' },
    h('h1', { text: 'Overview' }),
    h('div', { class: 'grid' },
      h('div', { class: 'card' }, queued.el),
      h('div', { class: 'card' }, rates.el)),
    h('div', { class: 'card' }, h('h2', { text: 'Totals' }), totals),
    h('div', { class: 'grid' },
      h('div', { class: 'card' }, h('h2', { text: 'Node' }), node),
      h('div', { class: 'card' }, h('h2', { text: 'Listeners' }), listeners)),
    definitionsSection(ctx));

  async function update() {
    const [o, nodes] = await Promise.all([api.get('/overview'), api.get('/nodes')]);
    const q = o.queue_totals || {};
    const s = o.message_stats || {};
    const now = Date.now() / 1000;
    const confirmRate = lastConfirm && now > lastConfirm.at
      ? Math.max(0, (s.confirm - lastConfirm.count) / (now - lastConfirm.at)) : 0;
    lastConfirm = { at: now, count: s.confirm || 0 };
    queued.push([q.messages_ready || 0, q.messages_unacknowledged || 0, q.messages || 0], now);
    rates.push([rateOf(s, 'publish'), confirmRate, rateOf(s, 'deliver_get'), rateOf(s, 'redeliver'), rateOf(s, 'ack')], now);
    const t = o.object_totals || {};
    clear(totals,
      tile('Ready', fmtNum(q.messages_ready), 'ready'),
      tile('Unacked', fmtNum(q.messages_unacknowledged), 'unacked'),
      tile('Total messages', fmtNum(q.messages), 'messages'),
      tile('Connections', fmtNum(t.connections), 'connections'),
      tile('Channels', fmtNum(t.channels), 'channels'),
      tile('Exchanges', fmtNum(t.exchanges), 'exchanges'),
      tile('Queues', fmtNum(t.queues), 'queues'),
      tile('Consumers', fmtNum(t.consumers), 'consumers'));
    const n = nodes[0] || {};
    clear(node,
      h('p', { class: 'small' }, h('b', { text: n.name }), ` · pid ${n.os_pid} · ${n.processors} processors`),
      meter('Memory', n.mem_used, n.mem_limit, n.mem_alarm, fmtBytes, false),
      meter('Free disk', n.disk_free, n.disk_free_limit, n.disk_free_alarm, fmtBytes, true),
      meter('File descriptors', n.fd_used, n.fd_total, false, fmtNum, false));
    clear(listeners, simpleTable([
      { label: 'Protocol', render: (l) => l.protocol },
      { label: 'Bound to', render: (l) => l.ip_address },
      { label: 'Port', num: true, render: (l) => l.port },
    ], o.listeners));
  }
  return { el, update };
}
