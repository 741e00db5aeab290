// The REST API from the page. The session token rides in an `Authorization` header set here, never in a
// cookie, so requests from other sites carry no credential; it lives in this tab's sessionStorage.

const KEY = 'loupe.session';

// The session of this tab: {token, expires_at, user, org, must_change_password}, or null.
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (s && s.expires_at * 1000 <= Date.now()) {
      sessionStorage.removeItem(KEY);
      sessionStorage.setItem('loupe.expired', '1');
      return null;
    }
    return s;
  } catch {
    return null;
  }
}

export function saveSession(s) {
  sessionStorage.setItem(KEY, JSON.stringify({
    token: s.token,
    expires_at: s.expires_at,
    user: s.user,
    org: s.org,
    must_change_password: s.must_change_password,
  }));
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

// Whether the last session ended by expiring (read once).
export function takeExpired() {
  const expired = sessionStorage.getItem('loupe.expired') === '1';
  sessionStorage.removeItem('loupe.expired');
  return expired;
}

// An error answer of the API: its HTTP status, code, message, reason and Retry-After.
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.message) || `the server answered ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.reason = body && body.reason;
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
  }
}

// Called when the server no longer accepts the session (set by the app).
let onExpired = () => {};
export function whenExpired(f) {
  onExpired = f;
}

function headers(json) {
  const h = { Accept: 'application/json' };
  const s = session();
  if (s) h.Authorization = `Bearer ${s.token}`;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

async function failure(response) {
  const body = await response.json().catch(() => null);
  const error = new ApiError(response.status, body, response.headers.get('Retry-After'));
  if (response.status === 401 && session()) {
    clearSession();
    sessionStorage.setItem('loupe.expired', '1');
    onExpired();
  }
  return error;
}

// One call: JSON in and out; throws ApiError on an error answer.
export async function api(method, path, body, signal) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
    signal,
  });
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

// Runs a script (`POST /api/v1/query`) and calls `onLine` with each JSON line as it arrives. Abort with
// `signal` to cancel the query.
export async function runScript(request, onLine, signal) {
  const response = await fetch('/api/v1/query', {
    method: 'POST',
    headers: headers(true),
    body: JSON.stringify(request),
    credentials: 'omit',
    cache: 'no-store',
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (line.trim()) onLine(JSON.parse(line));
    }
  }
}

// The API path of a script (`px/http_data` → `/api/v1/scripts/px/http_data`).
export function scriptPath(name) {
  return `/api/v1/scripts/${name.split('/').map(encodeURIComponent).join('/')}`;
}

// The text to show for a failed call.
export function describe(error) {
  if (error instanceof ApiError) {
    // A throttled answer's message says when to retry; say it if the message does not.
    if (error.status === 429 && error.retryAfter && !/retry/i.test(error.message)) {
      return `${error.message} (retry in ${error.retryAfter} s)`;
    }
    return error.message;
  }
  if (error && error.name === 'AbortError') return 'Cancelled.';
  return `The server could not be reached (${error && error.message}).`;
}
