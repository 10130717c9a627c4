// Exchanges: the paginated list with an "Add a new exchange" form, and an exchange's page
// (details, bindings in both directions, publish, delete).

import * as api from './api.js';
import {
  h, clear, fmtNum, fmtRate, rateOf, kvTable, objectTable, badges, kvEditor, form, section, act, notify, ListView,
} from './dom.js';
import { bindingsTable, bindForm } from './bindings.js';
import { publishForm } from './messages.js';

function features(x) {
  const f = [];
  if (x.durable) f.push('D');
  if (x.auto_delete) f.push('AD');
  if (x.internal) f.push('I');
  if (x.arguments && x.arguments['alternate-exchange'] !== undefined) f.push('AE');
  return f;
}

/** The empty name is the default exchange; RabbitMQ's pages call it amq.default. */
function shown(name) {
  return name === '' ? '(AMQP default)' : name;
}

function addExchangeForm(ctx, list) {
  const args = kvEditor('exchange-args', ['alternate-exchange', 'x-delayed-type']);
  return form([
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: ctx.vhost() || '/' },
    { name: 'name', label: 'Name', required: true },
    { name: 'type', label: 'Type', type: 'select', options: ['direct', 'fanout', 'headers', 'topic', 'x-delayed-message'] },
    { name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']] },
    { name: 'auto_delete', label: 'Auto delete', type: 'select', options: [['false', 'No'], ['true', 'Yes']] },
    { name: 'internal', label: 'Internal', type: 'select', options: [['false', 'No'], ['true', 'Yes']] },
    { name: 'arguments', label: 'Arguments', editor: args },
  ], 'Add exchange', async (v, f) => {
    await api.put(api.path('exchanges', v.vhost, v.name), {
      type: v.type, durable: v.durable === 'true', auto_delete: v.auto_delete === 'true',
      internal: v.internal === 'true', arguments: v.arguments,
    });
    notify(`Exchange ${v.name} declared.`);
    f.inputs.name.value = '';
    args.reset();
    list.update();
  }, { id: 'add-exchange' });
}

export function exchangesPage(ctx) {
  const columns = [];
  if (!ctx.vhost()) columns.push({ label: 'Virtual host', sort: 'vhost', render: (x) => x.vhost });
  columns.push(
    { label: 'Name', sort: 'name', render: (x) => ctx.link(`#/exchanges${api.path(x.vhost, x.name || 'amq.default')}`, shown(x.name)) },
    { label: 'Type', sort: 'type', render: (x) => x.type },
    { label: 'Features', render: (x) => badges(features(x)) },
    { label: 'Arguments', render: (x) => objectTable(x.arguments) },
    { label: 'Message rate in', num: true, sort: 'message_stats.publish_in_details.rate', render: (x) => fmtRate(rateOf(x.message_stats, 'publish_in')) },
    { label: 'Message rate out', num: true, sort: 'message_stats.publish_out_details.rate', render: (x) => fmtRate(rateOf(x.message_stats, 'publish_out')) },
  );
  const list = new ListView({
    id: 'exchanges-list',
    columns,
    empty: 'No exchanges.',
    fetchPage: (params) => api.get((ctx.vhost() ? api.path('exchanges', ctx.vhost()) : '/exchanges') + api.query(params)),
  });
  const el = h('div', {}, h('h1', { text: 'Exchanges' }), list.el, section('Add a new exchange', addExchangeForm(ctx, list), false));
  return { el, update: () => list.update() };
}

export function exchangePage(ctx, vhost, name) {
  const isDefault = name === '' || name === 'amq.default';
  const details = h('div', {});
  const outgoing = h('div', {});
  const incoming = h('div', {});
  const base = api.path('exchanges', vhost, isDefault ? 'amq.default' : name);
  const refreshBindings = async () => {
    if (isDefault) return;
    const [src, dst] = await Promise.all([api.get(`${base}/bindings/source`), api.get(`${base}/bindings/destination`)]);
    clear(outgoing, bindingsTable(src, 'destination', ctx, refreshBindings));
    clear(incoming, bindingsTable(dst, 'source', ctx, refreshBindings));
  };
  const ifUnused = h('input', { type: 'checkbox', id: 'delete-if-unused' });
  const remove = h('button', {
    id: 'delete-exchange',
    class: 'danger',
    text: 'Delete this exchange',
    onclick: async () => {
      if (!window.confirm(`Delete exchange ${name}?`)) return;
      const q = api.query({ 'if-unused': ifUnused.checked || undefined });
      if (await ctx.leaving(() => act(() => api.del(base + q), `Exchange ${name} deleted.`))) ctx.go('#/exchanges');
    },
  });
  const el = h('div', { id: 'exchange-page' },
    h('h1', {}, 'Exchange ', h('span', { class: 'mono', text: shown(isDefault ? '' : name) }),
      h('span', { class: 'muted small', text: ` in virtual host ${vhost}` })),
    section('Details', details),
    isDefault ? h('p', { class: 'card muted', text: 'The default exchange routes to the queue named by the routing key; it has no bindings to show.' })
      : section('Bindings', h('div', {},
        h('h3', { text: 'This exchange routes to' }), outgoing,
        h('h3', { text: 'Add binding from this exchange' }), bindForm(vhost, name, 'from-exchange', refreshBindings),
        h('h3', { text: 'Exchanges that route to this one' }), incoming)),
    section('Publish message', publishForm(vhost, isDefault ? '' : name), false),
    isDefault || name.startsWith('amq.') ? null
      : section('Delete this exchange', h('div', { class: 'actions' }, h('label', {}, ifUnused, ' only if unused'), remove), false));

  async function update() {
    const x = await api.get(base);
    clear(details, kvTable([
      ['Type', x.type],
      ['Features', badges(features(x))],
      ['Durable', String(x.durable)],
      ['Auto delete', String(x.auto_delete)],
      ['Internal', String(x.internal)],
      ['Policy', x.policy || ''],
      ['Arguments', objectTable(x.arguments)],
      ['Published in', `${fmtNum((x.message_stats || {}).publish_in || 0)} (${fmtRate(rateOf(x.message_stats, 'publish_in'))})`],
      ['Routed out', `${fmtNum((x.message_stats || {}).publish_out || 0)} (${fmtRate(rateOf(x.message_stats, 'publish_out'))})`],
    ]));
    await refreshBindings();
  }
  return { el, update, what: `Exchange ${name} in virtual host ${vhost}` };
}
