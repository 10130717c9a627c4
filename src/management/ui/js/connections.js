// Connections and channels: paginated lists, a connection's page (client properties, TLS
// details, its channels, "Close this connection" with a reason the client is told).

import * as api from './api.js';
import { h, clear, fmtNum, fmtRate, fmtBytes, rateOf, kvTable, objectTable, simpleTable, form, section, notify, ListView } from './dom.js';

function client(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || p.platform || '';
}

function octRate(c, key) {
  return c[`${key}_details`] ? `${fmtBytes(c[`${key}_details`].rate)}/s` : '';
}

function connectionLink(ctx, name) {
  return ctx.link(`#/connections${api.path(name)}`, name);
}

export function connectionsPage(ctx) {
  const columns = [];
  if (!ctx.vhost()) columns.push({ label: 'Virtual host', sort: 'vhost', render: (c) => c.vhost });
  columns.push(
    { label: 'Name', sort: 'name', render: (c) => connectionLink(ctx, c.name) },
    { label: 'Connection name', render: (c) => (c.client_properties || {}).connection_name || '' },
    { label: 'User', sort: 'user', render: (c) => c.user },
    { label: 'State', sort: 'state', render: (c) => h('span', { class: `state-${c.state}`, text: c.state }) },
    { label: 'TLS', sort: 'ssl', render: (c) => (c.ssl ? (c.ssl_protocol || 'yes') : '') },
    { label: 'Protocol', render: (c) => c.protocol },
    { label: 'Client', render: client },
    { label: 'Channels', num: true, sort: 'channels', render: (c) => fmtNum(c.channels) },
    { label: 'From client', num: true, sort: 'recv_oct_details.rate', render: (c) => octRate(c, 'recv_oct') },
    { label: 'To client', num: true, sort: 'send_oct_details.rate', render: (c) => octRate(c, 'send_oct') },
  );
  const list = new ListView({
    id: 'connections-list',
    columns,
    empty: 'No connections.',
    fetchPage: (params) => api.get((ctx.vhost() ? api.path('vhosts', ctx.vhost(), 'connections') : '/connections') + api.query(params)),
  });
  return { el: h('div', {}, h('h1', { text: 'Connections' }), list.el), update: () => list.update() };
}

function channelColumns(ctx, withConnection) {
  const mode = (ch) => [ch.confirm ? 'C' : '', ch.transactional ? 'T' : ''].join('');
  return [
    { label: 'Channel', sort: 'name', render: (ch) => ch.name },
    withConnection ? { label: 'Connection', render: (ch) => connectionLink(ctx, ch.connection_details.name) } : null,
    { label: 'User', sort: 'user', render: (ch) => ch.user },
    { label: 'Mode', render: mode },
    { label: 'State', render: (ch) => ch.state },
    { label: 'Consumers', num: true, sort: 'consumer_count', render: (ch) => fmtNum(ch.consumer_count) },
    { label: 'Prefetch', num: true, sort: 'prefetch_count', render: (ch) => fmtNum(ch.prefetch_count) },
    { label: 'Unacked', num: true, sort: 'messages_unacknowledged', render: (ch) => fmtNum(ch.messages_unacknowledged) },
    { label: 'Unconfirmed', num: true, sort: 'messages_unconfirmed', render: (ch) => fmtNum(ch.messages_unconfirmed) },
    { label: 'Publish', num: true, sort: 'message_stats.publish_details.rate', render: (ch) => fmtRate(rateOf(ch.message_stats, 'publish')) },
    { label: 'Deliver / get', num: true, sort: 'message_stats.deliver_get_details.rate', render: (ch) => fmtRate(rateOf(ch.message_stats, 'deliver_get')) },
    { label: 'Ack', num: true, sort: 'message_stats.ack_details.rate', render: (ch) => fmtRate(rateOf(ch.message_stats, 'ack')) },
  ].filter(Boolean);
}

export function channelsPage(ctx) {
  const list = new ListView({
    id: 'channels-list',
    columns: channelColumns(ctx, true),
    empty: 'No channels.',
    fetchPage: (params) => api.get((ctx.vhost() ? api.path('vhosts', ctx.vhost(), 'channels') : '/channels') + api.query(params)),
  });
  return { el: h('div', {}, h('h1', { text: 'Channels' }), list.el), update: () => list.update() };
}

function tlsDetails(c) {
  if (!c.ssl) return h('p', { class: 'muted', text: 'Not a TLS connection.' });
  return kvTable([
    ['Protocol', c.ssl_protocol],
    ['Cipher suite', c.ssl_cipher],
    ['Key exchange', c.ssl_key_exchange],
    ['Hash', c.ssl_hash],
    ['Peer certificate subject', c.peer_cert_subject || 'none presented'],
    ['Peer certificate issuer', c.peer_cert_issuer || ''],
    ['Peer certificate validity', c.peer_cert_validity || ''],
  ]);
}

export function connectionPage(ctx, name) {
  const details = h('div', {});
  const tls = h('div', {});
  const props = h('div', {});
  const channels = h('div', {});
  const closeForm = form([{ name: 'reason', label: 'Reason', value: 'Closed via management plugin' }],
    'Force close', async (v) => {
      if (!window.confirm(`Close connection ${name}?`)) return;
      await ctx.leaving(async () => {
        await api.del(api.path('connections', name), { 'X-Reason': v.reason });
        return true;
      });
      notify(`Connection ${name} closed.`);
      ctx.go('#/connections');
    }, { id: 'close-connection' });
  const el = h('div', { id: 'connection-page' },
    h('h1', {}, 'Connection ', h('span', { class: 'mono', text: name })),
    section('Details', details),
    section('Client properties', props, false),
    section('TLS', tls),
    section('Channels', channels),
    section('Close this connection', closeForm, false));

  async function update() {
    const [c, chs] = await Promise.all([
      api.get(api.path('connections', name)),
      api.get(`${api.path('connections', name)}/channels`),
    ]);
    clear(details, kvTable([
      ['User', c.user],
      ['Virtual host', c.vhost],
      ['State', c.state],
      ['Client', client(c)],
      ['Connection name', (c.client_properties || {}).connection_name || ''],
      ['Peer', `${c.peer_host}:${c.peer_port}`],
      ['Local', `${c.host}:${c.port}`],
      ['Protocol', c.protocol],
      ['Authentication', c.auth_mechanism],
      ['Heartbeat', `${c.timeout} s`],
      ['Frame max', `${fmtNum(c.frame_max)} bytes`],
      ['Channel max', fmtNum(c.channel_max)],
      ['Connected at', new Date(c.connected_at).toLocaleString()],
      ['Received', `${fmtBytes(c.recv_oct)} (${octRate(c, 'recv_oct')})`],
      ['Sent', `${fmtBytes(c.send_oct)} (${octRate(c, 'send_oct')})`],
    ]));
    clear(tls, tlsDetails(c));
    clear(props, objectTable(c.client_properties));
    clear(channels, simpleTable(channelColumns(ctx, false), chs, 'No channels.'));
  }
  return { el, update, what: `Connection ${name}` };
}
