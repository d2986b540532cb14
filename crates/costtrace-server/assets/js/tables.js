// Tables shared by the pages: summaries with share bars, requests, pager,
// services, cost cards. Unpriced counts are in every one.

import { card, h, idLink, int, money, ms, unpricedBadge, usd, when } from './dom.js';

/**
 * Rows of {key, total_cost_usd, unpriced_count, record_count} with a share bar;
 * `(none)` (usage without that attribute) is shown as `noneLabel`.
 */
export function summaryTable(id, title, rows, linkKind, limit, noneLabel) {
  const shown = rows.filter((r) => !linkKind || r.key !== '(none)').slice(0, limit || rows.length);
  const max = Math.max(0, ...shown.map((r) => r.total_cost_usd));
  const body = shown.map((r) => {
    const pct = max > 0 ? (100 * r.total_cost_usd) / max : 0;
    const bar = h('div', { class: 'bar' }, h('span'));
    bar.firstChild.style.width = pct.toFixed(1) + '%';
    return h('tr', { 'data-key': r.key },
      h('td', {}, r.key === '(none)' ? h('span', { class: 'muted', text: noneLabel || r.key })
        : linkKind ? idLink(linkKind, r.key) : r.key),
      h('td', { class: 'num' }, money(r.total_cost_usd, r.unpriced_count, r.record_count)),
      h('td', { class: 'share' }, bar),
      h('td', { class: 'num' }, unpricedBadge(r.unpriced_count)),
      h('td', { class: 'num', text: int(r.record_count) }));
  });
  return h('section', { class: 'panel', id },
    h('h2', { text: title }),
    shown.length === 0 ? h('div', { class: 'empty', text: 'No usage in this period.' }) :
      h('table', {},
        h('thead', {}, h('tr', {},
          h('th', { text: 'name' }), h('th', { class: 'num', text: 'spend' }), h('th', { text: '' }),
          h('th', { class: 'num', text: 'unpriced' }), h('th', { class: 'num', text: 'records' }))),
        h('tbody', {}, body)));
}

export function requestsTable(requests, opts) {
  const o = opts || {};
  const rows = requests.map((r) => {
    const status = r.status_code == null ? h('span', { class: 'status-run', text: 'running' })
      : h('span', { class: r.status_code >= 400 ? 'status-err' : '', text: String(r.status_code) });
    return h('tr', { 'data-request-id': r.request_id },
      h('td', { class: 'mono', text: when(r.timestamp) }),
      h('td', {}, idLink('requests', r.request_id)),
      o.noTask ? null : h('td', {}, idLink('tasks', r.task_id)),
      o.noDoc ? null : h('td', {}, idLink('docs', r.doc_id)),
      o.noEntity ? null : h('td', {}, idLink('entities', r.entity_id)),
      h('td', { text: [r.operation_type, r.task_type].filter(Boolean).join(' / ') || '—' }),
      h('td', { class: 'num' }, status),
      h('td', { class: 'num', text: ms(r.processing_time_ms) }),
      h('td', { class: 'num', text: String((r.services_used || []).length) }),
      h('td', { class: 'num' }, money(r.total_cost_usd, r.unpriced_count)),
      h('td', { class: 'num' }, unpricedBadge(r.unpriced_count)));
  });
  const head = ['time', 'request', o.noTask ? null : 'task', o.noDoc ? null : 'doc',
    o.noEntity ? null : 'entity', 'operation', 'status', 'duration', 'services', 'cost', 'unpriced']
    .filter((x) => x !== null);
  const numeric = new Set(['status', 'duration', 'services', 'cost', 'unpriced']);
  return h('table', { id: o.id || 'requests-table' },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { class: numeric.has(t) ? 'num' : '', text: t })))),
    h('tbody', {}, rows));
}

export function pager(total, page, pageSize, go) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return h('div', { class: 'pager' },
    h('button', { type: 'button', id: 'prev', disabled: page <= 1, onclick: () => go(page - 1), text: '← Previous' }),
    h('span', { id: 'page-info', text: 'page ' + page + ' of ' + pages }),
    h('button', { type: 'button', id: 'next', disabled: page >= pages, onclick: () => go(page + 1), text: 'Next →' }));
}

/**
 * Per service: priced dollars from the cost view, unpriced counts summed from
 * the requests' services_used. When those do not add up to the view's
 * unpriced_count (more than 1,000 requests, or usage outside any request),
 * the per-service counts are lower bounds and `complete` is false.
 */
export function serviceRows(cost, requests) {
  const unpriced = new Map();
  for (const r of requests) {
    for (const s of r.services_used || []) {
      const n = (s.breakdown && s.breakdown.unpriced_count) || 0;
      unpriced.set(s.service_type, (unpriced.get(s.service_type) || 0) + n);
    }
  }
  let seen = 0;
  for (const n of unpriced.values()) seen += n;
  const rows = Object.entries(cost.breakdown_by_service || {}).map(([k, v]) => ({
    key: k, total_cost_usd: v, unpriced_count: unpriced.get(k) || 0,
  }));
  for (const [k, n] of unpriced) {
    if (!rows.some((r) => r.key === k)) rows.push({ key: k, total_cost_usd: 0, unpriced_count: n });
  }
  rows.sort((a, b) => b.total_cost_usd - a.total_cost_usd || a.key.localeCompare(b.key));
  return { rows, complete: seen === cost.unpriced_count, unpriced: cost.unpriced_count };
}

/** The service table; with incomplete counts a $0 service reads "unpriced?" and counts are "≥ n". */
export function serviceTable({ rows, complete, unpriced }) {
  const max = Math.max(0, ...rows.map((r) => r.total_cost_usd));
  const cost = (r) => {
    if (r.total_cost_usd !== 0) return h('span', { class: 'usd', text: usd(r.total_cost_usd) });
    if (r.unpriced_count > 0) return h('span', { class: 'unpriced', text: 'unpriced' });
    return complete ? h('span', { class: 'usd', text: usd(0) }) : h('span', { class: 'unpriced', text: 'unpriced?' });
  };
  const count = (n) => (complete ? unpricedBadge(n) : h('span', { class: 'unpriced', text: '≥ ' + int(n) + ' unpriced' }));
  return h('div', {},
    h('table', { id: 'by-service' },
      h('thead', {}, h('tr', {}, h('th', { text: 'service' }), h('th', { class: 'num', text: 'cost' }),
        h('th', { text: '' }), h('th', { class: 'num', text: 'unpriced' }))),
      h('tbody', {}, rows.map((r) => {
        const bar = h('div', { class: 'bar' }, h('span'));
        bar.firstChild.style.width = (max > 0 ? (100 * r.total_cost_usd) / max : 0).toFixed(1) + '%';
        return h('tr', { 'data-key': r.key }, h('td', { class: 'mono', text: r.key }),
          h('td', { class: 'num' }, cost(r)), h('td', { class: 'share' }, bar), h('td', { class: 'num' }, count(r.unpriced_count)));
      }))),
    complete ? null : h('p', { class: 'muted', id: 'services-partial',
      text: 'Unpriced usage in total: ' + int(unpriced) + '. Per service, only what the first 1,000 requests show is counted.' }));
}

export function costCards(cost, prefix) {
  return h('div', { class: 'cards' },
    card('total cost (priced)', money(cost.total_cost_usd, cost.unpriced_count), prefix + '-total'),
    card('unpriced usage', unpricedBadge(cost.unpriced_count), prefix + '-unpriced'),
    card('requests', int(cost.request_count), prefix + '-requests'),
    card('period (UTC)', h('span', { class: 'mono small' },
      when(cost.period_start).replace(' UTC', ''), h('br'), '→ ' + when(cost.period_end).replace(' UTC', '')), prefix + '-period'));
}
