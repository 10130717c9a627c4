// Publishing and getting messages from a page: the forms behind "Publish message" (on an
// exchange or, through the default exchange, a queue) and "Get messages" (on a queue),
// speaking the API's JSON for properties, payload and payload_encoding.

import * as api from './api.js';
import { h, clear, kvEditor, form, notify, objectTable, fmtNum } from './dom.js';

const PROPERTY_KEYS = ['content_type', 'content_encoding', 'priority', 'correlation_id', 'reply_to',
  'expiration', 'message_id', 'timestamp', 'type', 'user_id', 'app_id'];
const NUMERIC_PROPERTIES = new Set(['priority', 'timestamp']);

/** The publish form; routingKey fixed when publishing to a queue through the default exchange. */
export function publishForm(vhost, exchange, { routingKey } = {}) {
  const headers = kvEditor(`headers-${exchange}`, ['x-delay']);
  const properties = kvEditor(`props-${exchange}`, PROPERTY_KEYS);
  const fields = [];
  if (routingKey === undefined) fields.push({ name: 'routing_key', label: 'Routing key' });
  fields.push(
    { name: 'delivery_mode', label: 'Delivery mode', type: 'select', value: '2', options: [['1', '1 - Non-persistent'], ['2', '2 - Persistent']] },
    { name: 'headers', label: 'Headers', editor: headers },
    { name: 'properties', label: 'Properties', editor: properties },
    { name: 'payload', label: 'Payload', type: 'textarea' },
    { name: 'payload_encoding', label: 'Payload encoding', type: 'select', options: [['string', 'String (UTF-8)'], ['base64', 'Base64']] },
  );
  return form(fields, 'Publish message', async (v, f) => {
    const props = { delivery_mode: Number(v.delivery_mode) };
    for (const [k, value] of Object.entries(v.properties)) {
      props[k] = NUMERIC_PROPERTIES.has(k) ? Number(value) : String(value);
    }
    if (Object.keys(v.headers).length) props.headers = v.headers;
    const { json } = await api.post(api.path('exchanges', vhost, exchange || 'amq.default', 'publish'), {
      properties: props,
      routing_key: routingKey ?? v.routing_key,
      payload: v.payload,
      payload_encoding: v.payload_encoding,
    });
    if (json && json.routed) notify('Message published.');
    else notify('Message published, but not routed.', 'error');
    f.inputs.payload.value = '';
  }, { id: 'publish-form' });
}

function messageView(m, i) {
  return h('div', { class: 'message', 'data-message': i },
    h('div', { class: 'small' },
      h('b', { text: `Message ${i + 1}` }),
      ` · exchange "${m.exchange}" · routing key "${m.routing_key}" · redelivered ${m.redelivered}`,
      ` · ${fmtNum(m.message_count)} left in queue · ${fmtNum(m.payload_bytes)} bytes`),
    h('h3', { text: 'Properties' }), objectTable(m.properties),
    h('h3', { text: `Payload (${m.payload_encoding})` }),
    h('pre', { class: 'mono payload', text: m.payload }));
}

/** The get form: ack mode, encoding, count; the messages shown under it. */
export function getForm(vhost, queue) {
  const results = h('div', { id: 'get-results' });
  const f = form([
    {
      name: 'ackmode', label: 'Ack mode', type: 'select', value: 'ack_requeue_true',
      options: [['ack_requeue_true', 'Nack message requeue true'], ['ack_requeue_false', 'Automatic ack'],
        ['reject_requeue_true', 'Reject requeue true'], ['reject_requeue_false', 'Reject requeue false']],
    },
    { name: 'encoding', label: 'Encoding', type: 'select', options: [['auto', 'Auto string / base64'], ['base64', 'base64']] },
    { name: 'count', label: 'Messages', type: 'number', value: '1' },
    { name: 'truncate', label: 'Truncate payloads at (bytes)', type: 'number', value: '50000' },
  ], 'Get message(s)', async (v) => {
    const { json } = await api.post(api.path('queues', vhost, queue, 'get'), {
      count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding, truncate: Number(v.truncate),
    });
    clear(results, json.length === 0
      ? h('p', { class: 'muted', text: 'Queue is empty.' })
      : json.map(messageView));
  }, { id: 'get-form' });
  return h('div', {}, f, results);
}
