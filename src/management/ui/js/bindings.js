// Bindings on queue and exchange pages: the table (with Unbind) and the form that adds one,
// through /api/bindings/VHOST/e/SOURCE/q|e/DESTINATION and the binding's properties key.

import * as api from './api.js';
import { h, simpleTable, kvEditor, form, act, objectTable } from './dom.js';

function bindingPath(b) {
  const kind = b.destination_type === 'queue' ? 'q' : 'e';
  // the properties key is already quoted for a URL, as the API's Location header gives it
  return `${api.path('bindings', b.vhost, 'e', b.source, kind, b.destination)}/${b.properties_key}`;
}

/** side: 'source' shows where a binding comes from, 'destination' where it goes. */
export function bindingsTable(bindings, side, ctx, onChange) {
  const columns = [];
  if (side === 'source') {
    columns.push({
      label: 'From',
      render: (b) => (b.source === ''
        ? h('span', { class: 'muted', text: '(Default exchange binding)' })
        : ctx.link(`#/exchanges${api.path(b.vhost, b.source)}`, b.source)),
    });
  } else {
    columns.push({
      label: 'To',
      render: (b) => (b.destination_type === 'queue'
        ? ctx.link(`#/queues${api.path(b.vhost, b.destination)}`, b.destination)
        : ctx.link(`#/exchanges${api.path(b.vhost, b.destination)}`, b.destination)),
    });
  }
  columns.push(
    { label: 'Routing key', render: (b) => h('span', { class: 'mono', text: b.routing_key }) },
    { label: 'Arguments', render: (b) => objectTable(b.arguments) },
    {
      label: '',
      render: (b) => (b.source === '' ? '' : h('button', {
        class: 'danger',
        text: 'Unbind',
        'data-unbind': `${b.source}|${b.destination}|${b.routing_key}`,
        onclick: () => act(() => api.del(bindingPath(b)), 'Binding removed.').then(onChange),
      })),
    },
  );
  return simpleTable(columns, bindings, 'No bindings.');
}

/** Binds `name` (a queue or exchange) from a source exchange, or to a destination. */
export function bindForm(vhost, name, direction, onChange) {
  const args = kvEditor(`binding-${direction}`, ['x-match']);
  const fields = direction === 'to-queue' || direction === 'to-exchange'
    ? [{ name: 'other', label: 'From exchange', required: true }]
    : [
      { name: 'kind', label: 'To', type: 'select', options: [['q', 'Queue'], ['e', 'Exchange']] },
      { name: 'other', label: 'Destination', required: true },
    ];
  fields.push({ name: 'routing_key', label: 'Routing key' }, { name: 'arguments', label: 'Arguments', editor: args });
  return form(fields, 'Bind', async (v, f) => {
    let p;
    if (direction === 'to-queue') p = api.path('bindings', vhost, 'e', v.other, 'q', name);
    else if (direction === 'to-exchange') p = api.path('bindings', vhost, 'e', v.other, 'e', name);
    else p = api.path('bindings', vhost, 'e', name, v.kind, v.other);
    await api.post(p, { routing_key: v.routing_key, arguments: v.arguments });
    f.inputs.other.value = '';
    f.inputs.routing_key.value = '';
    args.reset();
    onChange();
  }, { id: `bind-${direction}` });
}
