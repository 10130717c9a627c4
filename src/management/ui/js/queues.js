// Queues: the paginated list with an "Add a new queue" form, and a queue's page (depth and
// rate charts, details with arguments and effective policy, consumers, bindings, publish,
// get, purge, delete).

import * as api from './api.js';
import {
  h, clear, fmtNum, fmtRate, fmtBytes, rateOf, kvTable, objectTable, simpleTable, badges, kvEditor,
  form, section, act, notify, ListView,
} from './dom.js';
import { LiveChart, count } from './chart.js';
import { bindingsTable, bindForm } from './bindings.js';
import { publishForm, getForm } from './messages.js';

const QUEUE_ARGUMENTS = ['x-message-ttl', 'x-expires', 'x-max-length', 'x-max-length-bytes', 'x-overflow',
  'x-dead-letter-exchange', 'x-dead-letter-routing-key', 'x-single-active-consumer', 'x-max-priority',
  'x-queue-mode', 'x-delivery-limit', 'x-queue-type'];

/** Short labels for a queue's features, as RabbitMQ's list shows them. */
export function features(q) {
  const f = [];
  if (q.durable) f.push('D');
  if (q.auto_delete) f.push('AD');
  if (q.exclusive) f.push('Excl');
  const names = {
    'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B',
    'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK', 'x-max-priority': 'Pri',
    'x-single-active-consumer': 'SAC', 'x-delivery-limit': 'DL',
  };
  for (const k of Object.keys(q.arguments || {})) if (names[k]) f.push(names[k]);
  return f;
}

function addQueueForm(ctx, list) {
  const args = kvEditor('queue-args', QUEUE_ARGUMENTS);
  return form([
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: ctx.vhost() || '/' },
    { name: 'type', label: 'Type', type: 'select', options: ['classic', 'quorum'] },
    { name: 'name', label: 'Name', required: true },
    { name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']] },
    { name: 'auto_delete', label: 'Auto delete', type: 'select', options: [['false', 'No'], ['true', 'Yes']] },
    { name: 'arguments', label: 'Arguments', editor: args },
  ], 'Add queue', async (v, f) => {
    const a = { ...v.arguments };
    if (v.type === 'quorum') a['x-queue-type'] = 'quorum';
    await api.put(api.path('queues', v.vhost, v.name), {
      durable: v.durable === 'true', auto_delete: v.auto_delete === 'true', arguments: a,
    });
    notify(`Queue ${v.name} declared.`);
    f.inputs.name.value = '';
    args.reset();
    list.update();
  }, { id: 'add-queue' });
}

export function queuesPage(ctx) {
  const columns = [];
  if (!ctx.vhost()) columns.push({ label: 'Virtual host', sort: 'vhost', render: (q) => q.vhost });
  columns.push(
    { label: 'Name', sort: 'name', render: (q) => ctx.link(`#/queues${api.path(q.vhost, q.name)}`, q.name) },
    { label: 'Type', sort: 'type', render: (q) => q.type },
    { label: 'Features', render: (q) => badges(features(q)) },
    { label: 'Policy', sort: 'policy', render: (q) => q.policy || '' },
    { label: 'State', sort: 'state', render: (q) => h('span', { class: `state-${q.state}`, text: q.state }) },
    { label: 'Consumers', num: true, sort: 'consumers', render: (q) => fmtNum(q.consumers) },
    { label: 'Ready', num: true, sort: 'messages_ready', render: (q) => fmtNum(q.messages_ready) },
    { label: 'Unacked', num: true, sort: 'messages_unacknowledged', render: (q) => fmtNum(q.messages_unacknowledged) },
    { label: 'Total', num: true, sort: 'messages', render: (q) => fmtNum(q.messages) },
    { label: 'Incoming', num: true, sort: 'message_stats.publish_details.rate', render: (q) => fmtRate(rateOf(q.message_stats, 'publish')) },
    { label: 'Deliver / get', num: true, sort: 'message_stats.deliver_get_details.rate', render: (q) => fmtRate(rateOf(q.message_stats, 'deliver_get')) },
    { label: 'Ack', num: true, sort: 'message_stats.ack_details.rate', render: (q) => fmtRate(rateOf(q.message_stats, 'ack')) },
  );
  const list = new ListView({
    id: 'queues-list',
    columns,
    empty: 'No queues.',
    fetchPage: (params) => api.get((ctx.vhost() ? api.path('queues', ctx.vhost()) : '/queues') + api.query(params)),
  });
  const el = h('div', {}, h('h1', { text: 'Queues' }), list.el, section('Add a new queue', addQueueForm(ctx, list), false));
  return { el, update: () => list.update() };
}

function consumersTable(q) {
  return simpleTable([
    { label: 'Channel', render: (c) => (c.channel_details ? c.channel_details.name : '') },
    { label: 'Consumer tag', render: (c) => h('span', { class: 'mono', text: c.consumer_tag }) },
    { label: 'Ack required', render: (c) => (c.ack_required ? '●' : '○') },
    { label: 'Exclusive', render: (c) => (c.exclusive ? '●' : '○') },
    { label: 'Prefetch', num: true, render: (c) => fmtNum(c.prefetch_count) },
    { label: 'Active', render: (c) => (c.active === false ? '○' : '●') },
    { label: 'Arguments', render: (c) => objectTable(c.arguments) },
  ], q.consumer_details, 'No consumers.');
}

function dangerZone(ctx, vhost, name) {
  const ifEmpty = h('input', { type: 'checkbox', id: 'delete-if-empty' });
  const ifUnused = h('input', { type: 'checkbox', id: 'delete-if-unused' });
  const purge = h('button', {
    id: 'purge-queue',
    text: 'Purge messages',
    onclick: async () => {
      if (!window.confirm(`Purge all ready messages in ${name}?`)) return;
      await act(() => api.del(`${api.path('queues', vhost, name)}/contents`), `Queue ${name} purged.`);
      ctx.refresh();
    },
  });
  const remove = h('button', {
    id: 'delete-queue',
    class: 'danger',
    text: 'Delete queue',
    onclick: async () => {
      if (!window.confirm(`Delete queue ${name}?`)) return;
      const q = api.query({ 'if-empty': ifEmpty.checked || undefined, 'if-unused': ifUnused.checked || undefined });
      if (await ctx.leaving(() => act(() => api.del(api.path('queues', vhost, name) + q), `Queue ${name} deleted.`))) ctx.go('#/queues');
    },
  });
  return h('div', {},
    h('div', { class: 'actions' }, purge),
    h('h3', { text: 'Delete' }),
    h('div', { class: 'actions' }, h('label', {}, ifEmpty, ' only if empty'), h('label', {}, ifUnused, ' only if unused'), remove));
}

export function queuePage(ctx, vhost, name) {
  const depth = new LiveChart('Queued messages', ['Ready', 'Unacked'], count);
  const rates = new LiveChart('Message rates', ['Publish', 'Deliver / get', 'Redelivered', 'Ack'], (v) => (v === null ? '' : fmtRate(v)));
  const details = h('div', {});
  const consumers = h('div', {});
  const bindings = h('div', {});
  const tiles = h('div', { class: 'tiles', id: 'queue-tiles' });
  const refreshBindings = async () => {
    clear(bindings, bindingsTable(await api.get(`${api.path('queues', vhost, name)}/bindings`), 'source', ctx, refreshBindings));
  };
  const el = h('div', { id: 'queue-page' },
    h('h1', {}, 'Queue ', h('span', { class: 'mono', text: name }), h('span', { class: 'muted small', text: ` in virtual host ${vhost}` })),
    h('div', { class: 'card' }, tiles),
    h('div', { class: 'grid' }, h('div', { class: 'card' }, depth.el), h('div', { class: 'card' }, rates.el)),
    section('Details', details),
    section('Consumers', consumers),
    section('Bindings', h('div', {}, bindings, h('h3', { text: 'Add binding to this queue' }),
      bindForm(vhost, name, 'to-queue', refreshBindings))),
    section('Publish message', h('div', {},
      h('p', { class: 'small muted', text: 'Published through the default exchange with the queue\'s name as routing key.' }),
      publishForm(vhost, '', { routingKey: name })), false),
    section('Get messages', h('div', {},
      h('p', { class: 'small muted', text: 'Getting messages is destructive unless the ack mode requeues them.' }),
      getForm(vhost, name)), false),
    section('Purge and delete', dangerZone(ctx, vhost, name), false));

  async function update() {
    const q = await api.get(api.path('queues', vhost, name));
    const s = q.message_stats || {};
    depth.push([q.messages_ready, q.messages_unacknowledged]);
    rates.push([rateOf(s, 'publish'), rateOf(s, 'deliver_get'), rateOf(s, 'redeliver'), rateOf(s, 'ack')]);
    clear(tiles,
      ...[['Ready', q.messages_ready, 'ready'], ['Unacked', q.messages_unacknowledged, 'unacked'],
        ['Total', q.messages, 'messages'], ['Consumers', q.consumers, 'consumers']].map(([label, v, id]) =>
        h('div', { class: 'tile', 'data-tile': id }, h('div', { class: 'value', text: fmtNum(v) }), h('div', { class: 'label', text: label }))),
      h('div', { class: 'tile' }, h('div', { class: 'value', text: fmtBytes(q.message_bytes) }), h('div', { class: 'label', text: 'Message bytes' })));
    clear(details, kvTable([
      ['Type', q.type],
      ['Features', badges(features(q))],
      ['State', q.state],
      ['Durable', String(q.durable)],
      ['Auto delete', String(q.auto_delete)],
      ['Exclusive', String(q.exclusive)],
      ['Policy', q.policy || ''],
      ['Operator policy', q.operator_policy || ''],
      ['Effective policy definition', objectTable(q.effective_policy_definition)],
      ['Arguments', objectTable(q.arguments)],
      ['Node', q.node],
    ]));
    clear(consumers, consumersTable(q));
    await refreshBindings();
  }
  return { el, update, what: `Queue ${name} in virtual host ${vhost}` };
}
