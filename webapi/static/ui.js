// Small helpers shared by the pages: escaping, formatting, notices, a page's lifetime.

export const USER = 'ui';  // who the master records as asking, for actions taken here

const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => ENTITIES[c]);

export function ago(epochMs) {
  if (!epochMs || epochMs <= 0) return '';
  const s = Math.max(0, (Date.now() - epochMs) / 1000);
  return s < 90 ? `${s.toFixed(0)}s ago` : s < 5400 ? `${(s / 60).toFixed(0)}m ago` : `${(s / 3600).toFixed(1)}h ago`;
}

export const num = (n, digits = 0) => (n === undefined || n === null || Number.isNaN(n)) ? '' : Number(n).toFixed(digits);

// "Started 2 · Accepted 1" as state chips.
export const chips = (counts) => Object.entries(counts || {})
  .map(([state, n]) => `<span class="chip state-${esc(state)}">${esc(state)} ${esc(n)}</span>`).join(' ');

export const state = (s) => `<span class="chip state-${esc(s)}">${esc(s)}</span>`;

export function table(headers, rows, empty) {
  if (!rows.length) return `<p class="muted empty">${esc(empty)}</p>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>`
    + `<tbody>${rows.join('')}</tbody></table>`;
}

let toastTimer;
export function toast(message, bad = false) {
  const el = document.getElementById('toast');
  el.textContent = message;
  el.className = bad ? 'show bad' : 'show';
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = ''; }, 4000);
}

// Run an action, reporting its outcome; resolves to its result, or undefined on failure.
export async function attempt(what, action) {
  try {
    const result = await action();
    toast(`${what}: done`);
    return result;
  } catch (err) {
    toast(`${what}: ${err.message}`, true);
    return undefined;
  }
}

export function debounce(fn, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

// What a page holds while shown (timers, streams, listeners), all released by close().
export class Page {
  constructor() { this.closers = []; this.open = true; }
  every(ms, fn) { const t = setInterval(fn, ms); this.closers.push(() => clearInterval(t)); }
  on(target, type, fn) { target.addEventListener(type, fn); this.closers.push(() => target.removeEventListener(type, fn)); }
  hold(close) { this.closers.push(close); return close; }
  close() { this.open = false; this.closers.splice(0).forEach((c) => c()); }
}
