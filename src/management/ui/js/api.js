// The only way the UI talks to the broker: the public management HTTP API, with the
// signed-in user's basic-auth credentials, exactly as rabbitmqadmin or curl would call it.
// It never keeps broker state; pages ask again on every refresh.

const KEY = 'warren-credentials';
let onUnauthorised = () => {};

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

export function setCredentials(username, password) {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  sessionStorage.setItem(KEY, btoa(String.fromCharCode(...bytes)));
}

export function forgetCredentials() {
  sessionStorage.removeItem(KEY);
}

/** Called with the API's reason when a request comes back 401 (password changed, user deleted). */
export function whenUnauthorised(f) {
  onUnauthorised = f;
}

/** `/queues/%2F/orders` from ['queues', '/', 'orders']: every name is one encoded segment. */
export function path(...segments) {
  return '/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function request(method, apiPath, { body, headers = {} } = {}) {
  const h = {
    Authorization: `Basic ${sessionStorage.getItem(KEY) || ''}`,
    // asks the broker not to send WWW-Authenticate, so a wrong password never opens the
    // browser's own login box
    'X-Requested-With': 'XMLHttpRequest',
    ...headers,
  };
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(`api${apiPath}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await r.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!r.ok) {
    const reason = (json && (json.reason || json.error)) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && apiPath !== '/whoami') onUnauthorised(reason);
    throw new ApiError(r.status, typeof reason === 'string' ? reason : JSON.stringify(reason));
  }
  return { json, response: r };
}

export async function get(apiPath) {
  return (await request('GET', apiPath)).json;
}

export async function put(apiPath, body) {
  return (await request('PUT', apiPath, { body })).json;
}

export async function post(apiPath, body) {
  return request('POST', apiPath, { body });
}

export async function del(apiPath, headers) {
  return (await request('DELETE', apiPath, { headers })).json;
}

/** Checks a username and password without keeping them: the user behind them, or an ApiError. */
export async function whoami(username, password) {
  const previous = sessionStorage.getItem(KEY);
  setCredentials(username, password);
  try {
    return await get('/whoami');
  } catch (e) {
    if (previous === null) forgetCredentials();
    else sessionStorage.setItem(KEY, previous);
    throw e;
  }
}
