// The UI's only way to the master: JSON calls and SSE streams, both carrying the token.

const TOKEN_KEY = 'mantis.token';

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || '',
  set: (value) => value ? localStorage.setItem(TOKEN_KEY, value) : localStorage.removeItem(TOKEN_KEY),
};

function headers(extra = {}) {
  const t = token.get();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// One API call; resolves to the decoded body (null when empty), rejects with ApiError.
export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}

// The items of a list answer: Mantis' {list, prev, next, total} envelope or a bare array.
export const items = (answer) => Array.isArray(answer) ? answer : (answer && answer.list) || [];

// Read an SSE stream with fetch (EventSource cannot send the Authorization header).
// Calls onEvent(data, eventName) per event, and onEnd(reason, status) once: when the
// server ends the stream (its `end` event's reason), refuses it (the HTTP status and the
// error message), or the connection drops.  With retryMs, a dropped connection is opened
// again after that long, as EventSource does.  Returns a function that closes the stream.
export function stream(path, onEvent, onEnd = () => {}, retryMs = 0) {
  const ctl = new AbortController();
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function once() {
    const res = await fetch(path, { headers: headers({ Accept: 'text/event-stream' }), signal: ctl.signal });
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try { message = (await res.json()).error || message; } catch { /* not JSON */ }
      return { reason: message, status: res.status };
    }
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { reason: 'connection closed', dropped: true };
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (!data.length) continue;  // a comment line keeping the connection open
        const payload = JSON.parse(data.join('\n'));
        if (name === 'end') return { reason: payload.reason || 'ended', status: res.status };
        onEvent(payload, name);
      }
    }
  }

  (async () => {
    for (;;) {
      let result;
      try { result = await once(); } catch (err) {
        if (ctl.signal.aborted) return;
        result = { reason: String(err), dropped: true };
      }
      if (result.dropped && retryMs > 0 && !ctl.signal.aborted) {
        await pause(retryMs);
        if (!ctl.signal.aborted) continue;
      }
      if (!ctl.signal.aborted) onEnd(result.reason, result.status);
      return;
    }
  })();
  return () => ctl.abort();
}
