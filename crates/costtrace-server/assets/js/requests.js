// Requests explorer (the API's filters and pagination) and one request
// with its services_used.

import { ApiError, api, qs } from './api.js';
import { card, fill, h, idLink, int, money, ms, unpricedBadge, usd, when } from './dom.js';
import { app, setNav, state } from './shell.js';
import { pager, requestsTable } from './tables.js';

const FILTERS = ['task_id', 'doc_id', 'entity_id', 'task_type', 'operation_type', 'status_code', 'from', 'to'];

export async function requestsPage(gen, params) {
  setNav('requests');
  const page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
  const pageSize = [10, 25, 50, 100].includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 25;
  const filter = {};
  for (const f of FILTERS) filter[f] = params.get(f) || '';

  const nav = (changes) => {
    const next = Object.assign({}, filter, { page, page_size: pageSize }, changes);
    location.hash = '#/requests' + qs(next);
  };
  const inputs = FILTERS.map((f) => h('input', {
    name: f, id: 'f-' + f, value: filter[f],
    placeholder: f === 'from' || f === 'to' ? 'e.g. 2025-01-15T00:00:00Z' : f === 'status_code' ? 'e.g. 500' : '',
  }));
  const sizeSel = h('select', { id: 'f-page_size', name: 'page_size' },
    [10, 25, 50, 100].map((n) => h('option', { value: n, selected: n === pageSize, text: n + ' per page' })));
  const form = h('form', {
    class: 'filters', id: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      const changes = { page: 1, page_size: Number(sizeSel.value) };
      for (const i of inputs) changes[i.name] = i.value.trim();
      nav(changes);
    },
  },
  FILTERS.map((f, i) => h('label', {}, f, inputs[i])),
  h('label', {}, 'page size', sizeSel),
  h('div', { class: 'controls' },
    h('button', { type: 'submit', class: 'primary', id: 'apply', text: 'Apply' }),
    h('button', { type: 'button', id: 'clear', text: 'Clear', onclick: () => { location.hash = '#/requests'; } })));

  const body = h('div', {}, h('p', { class: 'muted', text: 'Loading…' }));
  fill(app, h('h1', {}, 'Requests'), h('section', { class: 'panel' }, form), h('section', { class: 'panel' }, body));
  let list;
  try {
    list = await api('/api/requests' + qs(Object.assign({}, filter, { page, page_size: pageSize })));
  } catch (err) {
    if (err instanceof ApiError && gen === state.generation) {
      // A bad filter value: keep the form so it can be fixed.
      fill(body, h('div', { class: 'error', id: 'page-error', role: 'alert', text: err.message }));
      return;
    }
    throw err;
  }
  if (gen !== state.generation) return;
  const pageCost = list.requests.reduce((s, r) => s + (r.total_cost_usd || 0), 0);
  const pageUnpriced = list.requests.reduce((s, r) => s + (r.unpriced_count || 0), 0);
  fill(body,
    h('p', { id: 'req-summary' }, h('strong', { id: 'req-total', text: int(list.total) }),
      list.total === 1 ? ' request' : ' requests', ' match; this page: ', money(pageCost, pageUnpriced), ' ',
      unpricedBadge(pageUnpriced)),
    list.requests.length ? requestsTable(list.requests) : h('div', { class: 'empty', text: 'No requests match.' }),
    pager(list.total, page, pageSize, (p) => nav({ page: p })));
}

export async function requestDetail(gen, id) {
  setNav('requests');
  const r = await api('/api/requests/' + encodeURIComponent(id));
  if (gen !== state.generation) return;
  const services = (r.services_used || []).map((s) => {
    const parts = Object.entries(s.breakdown || {}).filter(([k]) => k !== 'unpriced_count')
      .map(([k, v]) => k + ' ' + (typeof v === 'number' ? int(v) : String(v)));
    const unpriced = (s.breakdown && s.breakdown.unpriced_count) || 0;
    return h('tr', { 'data-service': s.service_type },
      h('td', { class: 'mono', text: s.service_type }),
      h('td', { class: 'kv', text: parts.join(' · ') || '—' }),
      h('td', { class: 'num' }, s.cost_usd == null ? h('span', { class: 'unpriced', text: 'unpriced' }) : h('span', { class: 'usd', text: usd(s.cost_usd) })),
      h('td', { class: 'num' }, unpricedBadge(unpriced)));
  });
  const status = r.status_code == null ? h('span', { class: 'badge live', text: 'running' })
    : h('span', { class: r.status_code >= 400 ? 'badge err' : 'badge', text: 'HTTP ' + r.status_code });
  fill(app,
    h('h1', {}, 'Request ', h('span', { class: 'mono', id: 'request-id', text: r.request_id }), status),
    h('div', { class: 'cards' },
      card('cost (priced)', money(r.total_cost_usd, r.unpriced_count), 'request-total'),
      card('unpriced usage', unpricedBadge(r.unpriced_count), 'request-unpriced'),
      card('duration', ms(r.processing_time_ms), 'request-duration')),
    h('section', { class: 'panel' }, h('dl', { class: 'fields' },
      h('dt', { text: 'task' }), h('dd', {}, idLink('tasks', r.task_id)),
      h('dt', { text: 'document' }), h('dd', {}, idLink('docs', r.doc_id)),
      h('dt', { text: 'entity' }), h('dd', {}, idLink('entities', r.entity_id)),
      h('dt', { text: 'operation' }), h('dd', { text: r.operation_type || '—' }),
      h('dt', { text: 'task type' }), h('dd', { text: r.task_type || '—' }),
      h('dt', { text: 'endpoint' }), h('dd', { class: 'mono', text: [r.method, r.endpoint].filter(Boolean).join(' ') || '—' }),
      h('dt', { text: 'started' }), h('dd', { class: 'mono', text: when(r.timestamp) }),
      r.error_message ? [h('dt', { text: 'error' }), h('dd', { class: 'status-err', id: 'request-error', text: r.error_message })] : null)),
    h('section', { class: 'panel' }, h('h2', { text: 'Services used' }),
      services.length ? h('table', { id: 'services' },
        h('thead', {}, h('tr', {}, h('th', { text: 'service' }), h('th', { text: 'breakdown' }),
          h('th', { class: 'num', text: 'cost' }), h('th', { class: 'num', text: 'unpriced' }))),
        h('tbody', {}, services)) : h('div', { class: 'empty', text: 'No usage recorded for this request.' })));
}
