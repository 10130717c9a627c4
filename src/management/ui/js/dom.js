// Building blocks every page uses: an element builder, number formats, key/value tables,
// forms with a typed arguments editor, and the server-paginated list (filter, regex, sort,
// page) that keeps the pages usable with tens of thousands of objects. No broker calls here
// beyond what a ListView's fetch function is given.

import { ApiError } from './api.js';

/** h('a', {href: '#/', class: 'x', onclick: f}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null));
  return el;
}

const numberFormat = new Intl.NumberFormat('en-US');

export function fmtNum(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '';
  return numberFormat.format(n);
}

export function fmtRate(r) {
  if (r === undefined || r === null) return '';
  return `${r >= 100 ? Math.round(r) : r.toFixed(1)}/s`;
}

export function fmtBytes(b) {
  if (b === undefined || b === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtDuration(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${mm}m`;
  return `${mm}m ${s % 60}s`;
}

export function rateOf(stats, key) {
  return stats && stats[`${key}_details`] ? stats[`${key}_details`].rate : 0;
}

/** A value from the API as text: objects and lists as JSON. */
export function show(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** A two-column table of [label, value] pairs; values may be nodes. */
export function kvTable(pairs) {
  return h('table', { class: 'kv' },
    h('tbody', {}, pairs.filter(Boolean).map(([k, v]) =>
      h('tr', {}, h('th', { text: k }), h('td', {}, v instanceof Node ? v : show(v))))));
}

/** A table of an object's entries (arguments, client properties), or "none". */
export function objectTable(obj) {
  const entries = Object.entries(obj || {});
  if (entries.length === 0) return h('span', { class: 'muted', text: 'none' });
  return kvTable(entries.map(([k, v]) => [k, h('span', { class: 'mono', text: show(v) })]));
}

export function badges(list, grey) {
  return h('span', {}, (list || []).map((t) => h('span', { class: grey ? 'badge grey' : 'badge', text: t })));
}

/** A table of rows with fixed columns: {label, num, render(row)}. */
export function simpleTable(columns, rows, empty = 'none') {
  if (!rows || rows.length === 0) return h('p', { class: 'muted', text: empty });
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.num ? 'num' : '', text: c.label })))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => {
      const v = c.render(r);
      return h('td', { class: c.num ? 'num' : '' }, v instanceof Node ? v : show(v));
    })))));
}

let statusTimer;
/** A short message under the top bar: 'ok' or 'error'. */
export function notify(text, kind = 'ok') {
  const el = document.getElementById('status');
  el.textContent = text;
  el.className = `status ${kind}`;
  el.hidden = false;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 8000 : 3000);
}

export function errorText(e) {
  return e instanceof ApiError ? `${e.message} (HTTP ${e.status})` : String(e.message || e);
}

/** Runs an action; reports success or the API's reason. */
export async function act(f, done) {
  try {
    await f();
    if (done) notify(done, 'ok');
    return true;
  } catch (e) {
    notify(errorText(e), 'error');
    return false;
  }
}

const TYPES = ['String', 'Number', 'Boolean', 'List'];

function typed(value, type) {
  if (type === 'Number') {
    const n = Number(value);
    if (value.trim() === '' || Number.isNaN(n)) throw new Error(`"${value}" is not a number`);
    return n;
  }
  if (type === 'Boolean') return value === 'true';
  if (type === 'List') {
    const v = JSON.parse(value);
    if (!Array.isArray(v)) throw new Error(`"${value}" is not a JSON list`);
    return v;
  }
  return value;
}

/**
 * Rows of key = value with a type, growing as the last row is filled: queue, exchange and
 * binding arguments, policy definitions, message headers. `.value()` is the object.
 */
export function kvEditor(name, suggestions = []) {
  const rows = h('div', { class: 'kv-editor', 'data-editor': name });
  const listId = `keys-${name}`;
  const datalist = h('datalist', { id: listId }, suggestions.map((s) => h('option', { value: s })));
  function addRow() {
    const key = h('input', { placeholder: 'key', list: listId, 'data-role': 'key' });
    const value = h('input', { placeholder: 'value', 'data-role': 'value' });
    const type = h('select', { 'data-role': 'type' }, TYPES.map((t) => h('option', { value: t, text: t })));
    key.addEventListener('input', () => {
      if (rows.lastChild === row && key.value !== '') addRow();
    });
    const row = h('div', { class: 'actions' }, key, h('span', { text: '=' }), value, type);
    rows.append(row);
  }
  addRow();
  const el = h('div', {}, rows, datalist);
  el.value = () => {
    const out = {};
    for (const row of rows.children) {
      const k = row.querySelector('[data-role=key]').value.trim();
      if (!k) continue;
      out[k] = typed(row.querySelector('[data-role=value]').value, row.querySelector('[data-role=type]').value);
    }
    return out;
  };
  el.reset = () => {
    rows.replaceChildren();
    addRow();
  };
  return el;
}

/**
 * A form of labelled fields. fields: [{name, label, type, options, value, placeholder,
 * required, editor}]; onSubmit(values) may throw; the form says what went wrong under it.
 */
export function form(fields, submitLabel, onSubmit, { id } = {}) {
  const inputs = {};
  const error = h('p', { class: 'error full', hidden: true });
  const f = h('form', { class: 'inline', id });
  for (const field of fields) {
    let input;
    if (field.editor) {
      input = field.editor;
    } else if (field.type === 'select') {
      input = h('select', { name: field.name },
        field.options.map((o) => (Array.isArray(o)
          ? h('option', { value: o[0], text: o[1] })
          : h('option', { value: o, text: o }))));
      if (field.value !== undefined) input.value = field.value;
    } else if (field.type === 'textarea') {
      input = h('textarea', { name: field.name, placeholder: field.placeholder, value: field.value });
    } else if (field.type === 'checkbox') {
      input = h('input', { type: 'checkbox', name: field.name, checked: field.value });
    } else if (field.type === 'file') {
      input = h('input', { type: 'file', name: field.name, accept: field.accept });
    } else {
      input = h('input', {
        name: field.name, type: field.type || 'text', placeholder: field.placeholder,
        value: field.value, required: field.required,
      });
    }
    inputs[field.name] = input;
    f.append(h('label', { text: field.label }), input);
  }
  const button = h('button', { type: 'submit', class: 'primary', text: submitLabel });
  f.append(error, h('div', { class: 'full actions' }, button));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const values = {};
    try {
      for (const [name, input] of Object.entries(inputs)) {
        if (typeof input.value === 'function') values[name] = input.value();
        else if (input.type === 'checkbox') values[name] = input.checked;
        else if (input.type === 'file') values[name] = input.files[0];
        else values[name] = input.value;
      }
      button.disabled = true;
      await onSubmit(values, f);
    } catch (e) {
      error.textContent = errorText(e);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  f.inputs = inputs;
  return f;
}

/** A collapsible section, open unless told otherwise. */
export function section(title, body, open = true) {
  return h('details', { class: 'section', open }, h('summary', { text: title }), h('div', { class: 'body' }, body));
}

/**
 * A list the broker filters, sorts and pages (RabbitMQ's `name`, `use_regex`, `sort`,
 * `sort_reverse`, `page`, `page_size`): only one page of rows ever reaches the browser.
 * fetchPage(params) returns the API's pagination object.
 */
export class ListView {
  constructor({ columns, fetchPage, sort = 'name', pageSize = 50, empty = 'Nothing to show.', id }) {
    this.columns = columns;
    this.fetchPage = fetchPage;
    this.state = { name: '', regex: false, page: 1, pageSize, sort, reverse: false };
    this.empty = empty;
    this.nameInput = h('input', { type: 'search', placeholder: 'Filter by name', 'data-role': 'filter' });
    this.regexBox = h('input', { type: 'checkbox', 'data-role': 'regex' });
    this.sizeSelect = h('select', { 'data-role': 'page-size' },
      [20, 50, 100, 500].map((n) => h('option', { value: n, text: `${n} per page` })));
    this.sizeSelect.value = String(pageSize);
    this.pager = h('span', { class: 'pager' });
    this.info = h('span', { class: 'muted small' });
    this.body = h('div', { class: 'list-body' });
    let typing;
    this.nameInput.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.refilter(), 250);
    });
    this.regexBox.addEventListener('change', () => this.refilter());
    this.sizeSelect.addEventListener('change', () => {
      this.state.pageSize = Number(this.sizeSelect.value);
      this.refilter();
    });
    this.el = h('div', { class: 'card', id },
      h('div', { class: 'toolbar' }, this.nameInput,
        h('label', { class: 'small' }, this.regexBox, ' Regex'), this.sizeSelect,
        h('span', { class: 'spacer' }), this.info, this.pager),
      this.body);
  }

  refilter() {
    this.state.name = this.nameInput.value;
    this.state.regex = this.regexBox.checked;
    this.state.page = 1;
    this.update();
  }

  async update() {
    const s = this.state;
    let result;
    try {
      result = await this.fetchPage({
        name: s.name, use_regex: s.regex ? 'true' : undefined, sort: s.sort,
        sort_reverse: s.reverse ? 'true' : undefined, page: s.page, page_size: s.pageSize,
        pagination: 'true',
      });
    } catch (e) {
      if (e instanceof ApiError && e.status === 400 && s.page > 1) {
        // the list shrank under the current page
        s.page = 1;
        return this.update();
      }
      clear(this.body, h('p', { class: 'error', text: errorText(e) }));
      return;
    }
    this.render(result);
  }

  render(result) {
    const s = this.state;
    this.info.textContent = result.filtered_count === result.total_count
      ? `${fmtNum(result.total_count)} items`
      : `${fmtNum(result.filtered_count)} of ${fmtNum(result.total_count)} items`;
    clear(this.pager,
      h('button', { text: '‹', disabled: s.page <= 1, onclick: () => { s.page -= 1; this.update(); } }),
      h('span', { class: 'small', text: `page ${result.page} of ${result.page_count}` }),
      h('button', {
        text: '›', disabled: s.page >= result.page_count,
        onclick: () => { s.page += 1; this.update(); },
      }));
    if (result.items.length === 0) {
      clear(this.body, h('p', { class: 'muted', text: this.empty }));
      return;
    }
    const head = h('tr', {}, this.columns.map((c) => {
      const sorted = c.sort && c.sort === s.sort;
      const cls = [c.num ? 'num' : '', c.sort ? 'sortable' : '',
        sorted ? (s.reverse ? 'sorted-desc' : 'sorted-asc') : ''].join(' ');
      return h('th', {
        class: cls,
        text: c.label,
        onclick: c.sort ? () => {
          if (s.sort === c.sort) s.reverse = !s.reverse;
          else { s.sort = c.sort; s.reverse = false; }
          this.update();
        } : undefined,
      });
    }));
    const rows = result.items.map((item) => h('tr', {}, this.columns.map((c) => {
      const v = c.render(item);
      return h('td', { class: c.num ? 'num' : '' }, v instanceof Node ? v : show(v));
    })));
    clear(this.body, h('table', {}, h('thead', {}, head), h('tbody', {}, rows)));
  }
}
