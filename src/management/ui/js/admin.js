// The Admin tab: users (tags, password, permissions and topic permissions), virtual hosts
// (permissions, limits) and policies and operator policies. Every change is one API call
// an administrator (policies: a policymaker) could make with rabbitmqadmin.

import * as api from './api.js';
import {
  h, clear, fmtNum, fmtRate, fmtBytes, rateOf, kvTable, objectTable, simpleTable, badges, kvEditor, form, section, act, notify,
} from './dom.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];
const POLICY_KEYS = ['message-ttl', 'expires', 'max-length', 'max-length-bytes', 'overflow',
  'dead-letter-exchange', 'dead-letter-routing-key', 'alternate-exchange', 'delivery-limit', 'queue-mode'];

function subnav(ctx, active) {
  const items = [];
  if (ctx.isAdmin()) items.push(['users', 'Users'], ['vhosts', 'Virtual hosts']);
  items.push(['policies', 'Policies']);
  return h('div', { class: 'subnav' }, items.map(([k, label]) =>
    h('a', { href: `#/${k}`, class: k === active ? 'active' : '', text: label })));
}

function tagsField(value) {
  const input = h('input', { name: 'tags', value, placeholder: 'administrator, monitoring' });
  const picks = h('span', { class: 'small' }, TAGS.map((t) => h('button', {
    type: 'button', class: 'link', text: `[${t}] `,
    onclick: () => {
      const tags = input.value.split(',').map((s) => s.trim()).filter(Boolean);
      if (!tags.includes(t)) tags.push(t);
      input.value = tags.join(', ');
    },
  })));
  const el = h('div', {}, input, h('div', {}, picks));
  el.value = () => input.value.split(',').map((s) => s.trim()).filter(Boolean).join(',');
  return el;
}

function permissionForm(ctx, fixed, onChange) {
  const fields = fixed.user === undefined
    ? [{ name: 'user', label: 'User', required: true }]
    : [{ name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: '/' }];
  fields.push(
    { name: 'configure', label: 'Configure regexp', value: '.*' },
    { name: 'write', label: 'Write regexp', value: '.*' },
    { name: 'read', label: 'Read regexp', value: '.*' },
  );
  return form(fields, 'Set permission', async (v) => {
    const user = fixed.user ?? v.user;
    const vhost = fixed.vhost ?? v.vhost;
    await api.put(api.path('permissions', vhost, user), { configure: v.configure, write: v.write, read: v.read });
    notify(`Permissions of ${user} on ${vhost} set.`);
    onChange();
  }, { id: 'set-permission' });
}

function permissionsTable(perms, show, onChange) {
  return simpleTable([
    { label: show === 'user' ? 'User' : 'Virtual host', render: (p) => p[show] },
    { label: 'Configure', render: (p) => h('span', { class: 'mono', text: p.configure }) },
    { label: 'Write', render: (p) => h('span', { class: 'mono', text: p.write }) },
    { label: 'Read', render: (p) => h('span', { class: 'mono', text: p.read }) },
    {
      label: '',
      render: (p) => h('button', {
        class: 'danger', text: 'Clear',
        onclick: () => act(() => api.del(api.path('permissions', p.vhost, p.user)), 'Permission cleared.').then(onChange),
      }),
    },
  ], perms, 'No permissions.');
}

export function usersPage(ctx) {
  const table = h('div', {});
  const add = form([
    { name: 'username', label: 'Username', required: true },
    { name: 'password', label: 'Password', type: 'password' },
    { name: 'tags', label: 'Tags', editor: tagsField('') },
  ], 'Add user', async (v, f) => {
    const body = v.password ? { password: v.password, tags: v.tags } : { password_hash: '', tags: v.tags };
    await api.put(api.path('users', v.username), body);
    notify(`User ${v.username} added.`);
    f.inputs.username.value = '';
    f.inputs.password.value = '';
    update();
  }, { id: 'add-user' });
  const el = h('div', {}, h('h1', { text: 'Admin' }), subnav(ctx, 'users'),
    h('div', { class: 'card', id: 'users-list' }, h('h2', { text: 'Users' }), table),
    section('Add a user', add, false));
  async function update() {
    const [users, perms] = await Promise.all([api.get('/users'), api.get('/permissions')]);
    clear(table, simpleTable([
      { label: 'Name', render: (u) => ctx.link(`#/users${api.path(u.name)}`, u.name) },
      { label: 'Tags', render: (u) => badges(Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',').filter(Boolean)) },
      { label: 'Can access virtual hosts', render: (u) => perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || h('span', { class: 'muted', text: 'no access' }) },
      { label: 'Has password', render: (u) => (u.password_hash ? '●' : '○') },
    ], users));
  }
  return { el, update };
}

export function userPage(ctx, name) {
  const details = h('div', {});
  const perms = h('div', {});
  const topics = h('div', {});
  let current = null;
  const tags = tagsField('');
  const updateForm = form([
    { name: 'password', label: 'New password (blank keeps it)', type: 'password' },
    { name: 'tags', label: 'Tags', editor: tags },
  ], 'Update user', async (v) => {
    const body = v.password ? { password: v.password, tags: v.tags }
      : { password_hash: current.password_hash, hashing_algorithm: current.hashing_algorithm, tags: v.tags };
    await api.put(api.path('users', name), body);
    notify(`User ${name} updated.`);
    update();
  }, { id: 'update-user' });
  const topicForm = form([
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: '/' },
    { name: 'exchange', label: 'Exchange', value: 'amq.topic' },
    { name: 'write', label: 'Write regexp', value: '.*' },
    { name: 'read', label: 'Read regexp', value: '.*' },
  ], 'Set topic permission', async (v) => {
    await api.put(api.path('topic-permissions', v.vhost, name), { exchange: v.exchange, write: v.write, read: v.read });
    notify('Topic permission set.');
    update();
  }, { id: 'set-topic-permission' });
  const remove = h('button', {
    class: 'danger', id: 'delete-user', text: 'Delete this user',
    onclick: async () => {
      if (!window.confirm(`Delete user ${name}?`)) return;
      if (await ctx.leaving(() => act(() => api.del(api.path('users', name)), `User ${name} deleted.`))) ctx.go('#/users');
    },
  });
  const el = h('div', {}, h('h1', {}, 'User ', h('span', { class: 'mono', text: name })), subnav(ctx, 'users'),
    section('Overview', details),
    section('Permissions', h('div', {}, perms, h('h3', { text: 'Set permission' }), permissionForm(ctx, { user: name }, () => update()))),
    section('Topic permissions', h('div', {}, topics, h('h3', { text: 'Set topic permission' }), topicForm)),
    section('Update this user', updateForm, false),
    section('Delete this user', remove, false));
  let filled = false;
  async function update() {
    const [u, p, t] = await Promise.all([
      api.get(api.path('users', name)),
      api.get(`${api.path('users', name)}/permissions`),
      api.get(`${api.path('users', name)}/topic-permissions`),
    ]);
    current = u;
    const tagList = Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',').filter(Boolean);
    if (!filled) {
      tags.querySelector('input').value = tagList.join(', ');
      filled = true;
    }
    clear(details, kvTable([['Tags', badges(tagList)], ['Hashing algorithm', u.hashing_algorithm], ['Limits', objectTable(u.limits)]]));
    clear(perms, permissionsTable(p, 'vhost', update));
    clear(topics, simpleTable([
      { label: 'Virtual host', render: (x) => x.vhost },
      { label: 'Exchange', render: (x) => x.exchange },
      { label: 'Write', render: (x) => h('span', { class: 'mono', text: x.write }) },
      { label: 'Read', render: (x) => h('span', { class: 'mono', text: x.read }) },
      {
        label: '',
        render: (x) => h('button', {
          class: 'danger', text: 'Clear',
          onclick: () => act(() => api.del(api.path('topic-permissions', x.vhost, name)), 'Topic permissions cleared.').then(update),
        }),
      },
    ], t, 'No topic permissions.'));
  }
  return { el, update, what: `User ${name}` };
}

export function vhostsPage(ctx) {
  const table = h('div', {});
  const add = form([
    { name: 'name', label: 'Name', required: true },
    { name: 'description', label: 'Description' },
    { name: 'tags', label: 'Tags', placeholder: 'comma separated' },
  ], 'Add virtual host', async (v, f) => {
    await api.put(api.path('vhosts', v.name), { description: v.description, tags: v.tags });
    notify(`Virtual host ${v.name} added.`);
    f.inputs.name.value = '';
    await ctx.reloadVhosts();
    update();
  }, { id: 'add-vhost' });
  const el = h('div', {}, h('h1', { text: 'Admin' }), subnav(ctx, 'vhosts'),
    h('div', { class: 'card', id: 'vhosts-list' }, h('h2', { text: 'Virtual hosts' }), table),
    section('Add a virtual host', add, false));
  async function update() {
    const [vhosts, limits] = await Promise.all([api.get('/vhosts'), api.get('/vhost-limits')]);
    const limitOf = (n) => (limits.find((l) => l.vhost === n) || {}).value;
    clear(table, simpleTable([
      { label: 'Name', render: (v) => ctx.link(`#/vhosts${api.path(v.name)}`, v.name) },
      { label: 'Description', render: (v) => v.description || '' },
      { label: 'Tags', render: (v) => badges(v.tags, true) },
      { label: 'Limits', render: (v) => objectTable(limitOf(v.name)) },
      { label: 'Ready', num: true, render: (v) => fmtNum(v.messages_ready) },
      { label: 'Unacked', num: true, render: (v) => fmtNum(v.messages_unacknowledged) },
      { label: 'Total', num: true, render: (v) => fmtNum(v.messages) },
      { label: 'From client', num: true, render: (v) => `${fmtBytes((v.recv_oct_details || {}).rate || 0)}/s` },
      { label: 'To client', num: true, render: (v) => `${fmtBytes((v.send_oct_details || {}).rate || 0)}/s` },
      { label: 'Publish', num: true, render: (v) => fmtRate(rateOf(v.message_stats, 'publish')) },
      { label: 'Deliver / get', num: true, render: (v) => fmtRate(rateOf(v.message_stats, 'deliver_get')) },
    ], vhosts));
  }
  return { el, update };
}

export function vhostPage(ctx, name) {
  const perms = h('div', {});
  const limits = h('div', {});
  const limitForm = form([
    { name: 'limit', label: 'Limit', type: 'select', options: ['max-connections', 'max-queues'] },
    { name: 'value', label: 'Value (negative: no limit)', type: 'number', required: true },
  ], 'Set limit', async (v) => {
    await api.put(api.path('vhost-limits', name, v.limit), { value: Number(v.value) });
    notify(`Limit ${v.limit} set.`);
    update();
  }, { id: 'set-limit' });
  const remove = h('button', {
    class: 'danger', id: 'delete-vhost', text: 'Delete this virtual host',
    onclick: async () => {
      if (!window.confirm(`Delete virtual host ${name} and everything in it?`)) return;
      if (await ctx.leaving(() => act(() => api.del(api.path('vhosts', name)), `Virtual host ${name} deleted.`))) {
        await ctx.reloadVhosts();
        ctx.go('#/vhosts');
      }
    },
  });
  const el = h('div', {}, h('h1', {}, 'Virtual host ', h('span', { class: 'mono', text: name })), subnav(ctx, 'vhosts'),
    section('Permissions', h('div', {}, perms, h('h3', { text: 'Set permission' }), permissionForm(ctx, { vhost: name }, () => update()))),
    section('Limits', h('div', {}, limits, limitForm)),
    section('Delete this virtual host', remove, false));
  async function update() {
    const [p, l] = await Promise.all([
      api.get(`${api.path('vhosts', name)}/permissions`),
      api.get(api.path('vhost-limits', name)),
    ]);
    clear(perms, permissionsTable(p, 'user', update));
    const entries = Object.entries((l[0] || {}).value || {});
    clear(limits, simpleTable([
      { label: 'Limit', render: ([k]) => k },
      { label: 'Value', render: ([, v]) => v },
      {
        label: '',
        render: ([k]) => h('button', {
          class: 'danger', text: 'Clear',
          onclick: () => act(() => api.del(api.path('vhost-limits', name, k)), 'Limit cleared.').then(update),
        }),
      },
    ], entries, 'No limits.'));
  }
  return { el, update, what: `Virtual host ${name}` };
}

function policyTable(list, kind, onChange) {
  return simpleTable([
    { label: 'Virtual host', render: (p) => p.vhost },
    { label: 'Name', render: (p) => p.name },
    { label: 'Pattern', render: (p) => h('span', { class: 'mono', text: p.pattern }) },
    { label: 'Apply to', render: (p) => p['apply-to'] },
    { label: 'Definition', render: (p) => objectTable(p.definition) },
    { label: 'Priority', num: true, render: (p) => p.priority },
    {
      label: '',
      render: (p) => h('button', {
        class: 'danger', text: 'Delete', 'data-delete-policy': p.name,
        onclick: () => act(() => api.del(api.path(kind, p.vhost, p.name)), `Policy ${p.name} deleted.`).then(onChange),
      }),
    },
  ], list, 'No policies.');
}

function policyForm(ctx, kind, onChange) {
  const definition = kvEditor(`${kind}-definition`, POLICY_KEYS);
  return form([
    { name: 'vhost', label: 'Virtual host', type: 'select', options: ctx.vhosts, value: ctx.vhost() || '/' },
    { name: 'name', label: 'Name', required: true },
    { name: 'pattern', label: 'Pattern', placeholder: '^orders\\.', required: true },
    { name: 'apply_to', label: 'Apply to', type: 'select', options: kind === 'policies' ? ['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues'] : ['queues', 'classic_queues', 'quorum_queues'] },
    { name: 'priority', label: 'Priority', type: 'number', value: '0' },
    { name: 'definition', label: 'Definition', editor: definition },
  ], kind === 'policies' ? 'Add / update policy' : 'Add / update operator policy', async (v, f) => {
    await api.put(api.path(kind, v.vhost, v.name), {
      pattern: v.pattern, 'apply-to': v.apply_to, priority: Number(v.priority || 0), definition: v.definition,
    });
    notify(`Policy ${v.name} set.`);
    f.inputs.name.value = '';
    definition.reset();
    onChange();
  }, { id: `add-${kind}` });
}

export function policiesPage(ctx) {
  const policies = h('div', { id: 'policies-list' });
  const operator = h('div', { id: 'operator-policies-list' });
  const scope = (kind) => (ctx.vhost() ? api.path(kind, ctx.vhost()) : `/${kind}`);
  const el = h('div', {}, h('h1', { text: 'Admin' }), subnav(ctx, 'policies'),
    h('div', { class: 'card' }, h('h2', { text: 'User policies' }), policies),
    section('Add / update a policy', policyForm(ctx, 'policies', () => update()), false),
    ctx.isAdmin() ? h('div', { class: 'card' }, h('h2', { text: 'Operator policies' }), operator) : null,
    ctx.isAdmin() ? section('Add / update an operator policy', policyForm(ctx, 'operator-policies', () => update()), false) : null);
  async function update() {
    clear(policies, policyTable(await api.get(scope('policies')), 'policies', update));
    if (ctx.isAdmin()) clear(operator, policyTable(await api.get(scope('operator-policies')), 'operator-policies', update));
  }
  return { el, update };
}
