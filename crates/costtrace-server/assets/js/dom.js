// Building DOM (textContent only: ids and names are users' data) and
// formatting money, counts and times.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** replaceChildren that skips null/false children (it would print "null"). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function link(href, text) {
  return h('a', { href, text });
}

export function idLink(kind, id) {
  if (id == null || id === '') return h('span', { class: 'muted', text: '—' });
  return h('a', { href: '#/' + kind + '/' + encodeURIComponent(id), class: 'mono', text: id });
}

/** Dollars: cents for $1 and up, finer below so cheap calls never read $0. */
export function usd(v) {
  if (v == null) return '—';
  const a = Math.abs(v);
  const d = a >= 1 || a === 0 ? 2 : a >= 0.01 ? 4 : 6;
  return '$' + v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function int(n) {
  return Number(n || 0).toLocaleString('en-US');
}

/** The unpriced count, always shown, highlighted when non-zero. */
export function unpricedBadge(n) {
  return h('span', { class: n > 0 ? 'unpriced' : 'unpriced zero', 'data-unpriced': n || 0 },
    int(n) + ' unpriced');
}

/**
 * A priced total: "unpriced" instead of $0 when it has unpriced usage and no
 * priced cost (`records`, when known, must all be unpriced).
 */
export function money(total, unpriced, records) {
  if (total === 0 && unpriced > 0 && (records == null || unpriced >= records)) {
    return h('span', { class: 'unpriced', text: 'unpriced' });
  }
  return h('span', { class: 'usd', text: usd(total) });
}

/** "2025-01-15T10:30:45.123Z" → "2025-01-15 10:30:45 UTC" (always UTC). */
export function when(ts) {
  if (!ts) return '—';
  return ts.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC';
}

export function ms(v) {
  if (v == null) return '—';
  return v >= 1000 ? (v / 1000).toFixed(2) + ' s' : Math.round(v) + ' ms';
}

export function card(label, value, id) {
  return h('div', { class: 'card' }, h('div', { class: 'label', text: label }),
    h('div', { class: 'value', id }, value));
}
