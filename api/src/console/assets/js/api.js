// The one way the console talks to the server. Sessions live in HttpOnly
// cookies that page script never sees; the `Sluice-Session: cookie` header on
// every call is what makes the server accept the cookie on writes (a form on
// another site cannot add it), so nothing here may call `fetch` without it.

const SESSION_HEADER = { 'Sluice-Session': 'cookie' };

/** An error answer from the API, with the field it is about (`param`), if any. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || null;
    this.type = e.type || null;
    this.param = e.param || null;
    this.retryAfter = retryAfter;
  }
}

// Listeners the shell sets: what to do when the session is gone for good, or
// when the server insists on a password change first.
const handlers = { signedOut: () => {}, mustChange: () => {} };
export function onSession(h) {
  Object.assign(handlers, h);
}

async function send(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { ...SESSION_HEADER } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function parse(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: text.slice(0, 300) } };
  }
}

// Several calls may meet an expired access cookie at once: they share one refresh.
let refreshing = null;
/** Trade the refresh cookie for new cookies; true when the session lives on. */
export function refresh() {
  if (!refreshing) {
    refreshing = send('POST', '/api/auth/refresh')
      .then((res) => res.ok)
      .catch(() => false)
      .finally(() => {
        setTimeout(() => (refreshing = null), 0);
      });
  }
  return refreshing;
}

const NO_RETRY = ['/api/auth/login', '/api/auth/refresh', '/api/auth/logout', '/api/invites/accept',
  '/api/invites/inspect', '/api/auth/password-reset'];

/**
 * Call the API: `api('POST', '/api/tokens', {name})`. Resolves with the parsed
 * body (null for 204); rejects with an ApiError. A 401 is retried once after a
 * refresh; if that fails too the shell is told the session is over.
 */
export async function api(method, path, body, opts = {}) {
  const open = NO_RETRY.some((p) => path.startsWith(p));
  let res = await send(method, path, body);
  if (res.status === 401 && !open) {
    if (await refresh()) res = await send(method, path, body);
    if (res.status === 401) {
      if (!opts.quiet) handlers.signedOut();
      throw new ApiError(401, await parse(res));
    }
  }
  const data = await parse(res);
  if (!res.ok) {
    const err = new ApiError(res.status, data, res.headers.get('Retry-After'));
    if (res.status === 403 && err.code === 'password_change_required' && !opts.quiet) {
      handlers.mustChange();
    }
    throw err;
  }
  return data;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Every page of a cursor-paged list (small admin lists: users, invites). */
export async function all(path, max = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < max; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=500${cursor != null ? `&cursor=${cursor}` : ''}`);
    items.push(...page.items);
    if (page.next_cursor == null) break;
    cursor = page.next_cursor;
  }
  return items;
}

/** The viewer's time zone, sent to the stats so days end at the viewer's midnight. */
export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
