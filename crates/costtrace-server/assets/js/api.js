// The JSON API with the caller's key (sessionStorage, this tab only): the
// dashboard sees exactly what any API client with that key sees.

export const KEY_STORE = 'costtrace.key';

export class AuthError extends Error {}
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function key() {
  return sessionStorage.getItem(KEY_STORE) || '';
}

export async function api(path) {
  const headers = { Accept: 'application/json' };
  if (key()) headers.Authorization = 'Bearer ' + key();
  const resp = await fetch(path, { headers, cache: 'no-store' });
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  const detail = body && body.detail ? body.detail : resp.status + ' ' + resp.statusText;
  if (resp.status === 401) throw new AuthError(detail);
  if (!resp.ok) throw new ApiError(resp.status, detail);
  return body;
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v != null && v !== '') p.set(k, v);
  }
  const s = p.toString();
  return s ? '?' + s : '';
}
