// costtrace dashboard: a hash-routed page over the JSON API (/api/…).
//
// It reads exactly what any API client reads, with the same
// `Authorization: Bearer KEY` (kept in sessionStorage), so a tenant key sees
// only its tenant. DOM is built with textContent, never innerHTML: ids and
// names come from users' data.
(function () {
  'use strict';

  const KEY_STORE = 'costtrace.key';
  const POLL_MS = 2000;
  const app = document.getElementById('app');

  // Each navigation bumps `generation`; work started for an older page
  // (fetches, timers, charts) checks it and stops.
  let generation = 0;
  let timers = [];
  let charts = [];
  let authMode = 'local';

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // ------------------------------------------------------------------ DOM

  function h(tag, attrs, ...children) {
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

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** replaceChildren that skips null/false children (it would print "null"). */
  function fill(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  function link(href, text) {
    return h('a', { href, text });
  }

  function idLink(kind, id) {
    if (id == null || id === '') return h('span', { class: 'muted', text: '—' });
    return h('a', { href: '#/' + kind + '/' + encodeURIComponent(id), class: 'mono', text: id });
  }

  // --------------------------------------------------------------- format

  /** Dollars: cents for $1 and up, finer below so cheap calls never read $0. */
  function usd(v) {
    if (v == null) return '—';
    const a = Math.abs(v);
    const d = a >= 1 || a === 0 ? 2 : a >= 0.01 ? 4 : 6;
    return '$' + v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  }

  function int(n) {
    return Number(n || 0).toLocaleString('en-US');
  }

  /** The unpriced count, always shown, highlighted when non-zero. */
  function unpricedBadge(n) {
    return h('span', { class: n > 0 ? 'unpriced' : 'unpriced zero', 'data-unpriced': n || 0 },
      int(n) + ' unpriced');
  }

  /** A priced total: "unpriced" instead of $0 when nothing in it had a price. */
  function money(total, unpriced, records) {
    if (total === 0 && unpriced > 0 && (records == null || unpriced >= records)) {
      return h('span', { class: 'unpriced', text: 'unpriced' });
    }
    return h('span', { class: 'usd', text: usd(total) });
  }

  /** "2025-01-15T10:30:45.123Z" → "2025-01-15 10:30:45 UTC" (always UTC). */
  function when(ts) {
    if (!ts) return '—';
    return ts.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') + ' UTC';
  }

  function ms(v) {
    if (v == null) return '—';
    return v >= 1000 ? (v / 1000).toFixed(2) + ' s' : Math.round(v) + ' ms';
  }

  // ------------------------------------------------------------------ API

  function key() {
    return sessionStorage.getItem(KEY_STORE) || '';
  }

  async function api(path) {
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

  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v != null && v !== '') p.set(k, v);
    }
    const s = p.toString();
    return s ? '?' + s : '';
  }

  // --------------------------------------------------------------- shell

  function setNav(name) {
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === name);
    }
  }

  function renderAuthState() {
    const state = document.getElementById('auth-state');
    const change = document.getElementById('key-change');
    if (authMode === 'keys' || key()) {
      state.textContent = key() ? 'signed in with an API key' : 'API key required';
      change.hidden = !key();
    } else {
      state.textContent = 'local mode (no key needed)';
      change.hidden = true;
    }
  }

  function stopPage() {
    generation += 1;
    for (const t of timers) clearTimeout(t);
    timers = [];
    for (const c of charts) c.destroy();
    charts = [];
    return generation;
  }

  function showKeyForm(message) {
    stopPage();
    setNav('');
    renderAuthState();
    const input = h('input', { type: 'password', id: 'key-input', placeholder: 'ct_…', autocomplete: 'off', 'aria-label': 'API key' });
    const form = h('form', {
      id: 'key-form',
      onsubmit: (e) => {
        e.preventDefault();
        const k = input.value.trim();
        if (!k) return;
        sessionStorage.setItem(KEY_STORE, k);
        renderAuthState();
        route();
      },
    }, input, h('button', { type: 'submit', class: 'primary', id: 'key-submit', text: 'Use key' }));
    fill(app, h('div', { class: 'panel login' },
      h('h2', { text: 'This costtrace server needs an API key' }),
      message ? h('div', { class: 'error', id: 'auth-message', role: 'alert', text: message }) : null,
      h('p', { class: 'muted' },
        'Paste a key made with ', h('code', { text: 'costtrace keys create' }),
        '. A tenant key shows only that tenant. The key stays in this tab (sessionStorage).'),
      form));
    input.focus();
  }

  function showError(err, gen) {
    if (gen !== generation) return;
    if (err instanceof AuthError) {
      const hadKey = !!key();
      sessionStorage.removeItem(KEY_STORE);
      showKeyForm(hadKey ? 'The server rejected the key: ' + err.message : err.message);
      return;
    }
    fill(app, h('div', { class: 'error', id: 'page-error', role: 'alert', text: err.message }));
  }

  /** Runs a page; errors of the current page end up on screen. */
  async function run(page, ...args) {
    const gen = stopPage();
    try {
      await page(gen, ...args);
    } catch (err) {
      showError(err, gen);
    }
  }

  // -------------------------------------------------------------- tables

  /** Rows of {key, total_cost_usd, unpriced_count, record_count} with a share bar. */
  function summaryTable(id, title, rows, linkKind, limit) {
    const shown = rows.filter((r) => !linkKind || r.key !== '(none)').slice(0, limit || rows.length);
    const max = Math.max(0, ...shown.map((r) => r.total_cost_usd));
    const body = shown.map((r) => {
      const pct = max > 0 ? (100 * r.total_cost_usd) / max : 0;
      const bar = h('div', { class: 'bar' }, h('span'));
      bar.firstChild.style.width = pct.toFixed(1) + '%';
      return h('tr', { 'data-key': r.key },
        h('td', {}, linkKind && r.key !== '(none)' ? idLink(linkKind, r.key) : r.key),
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

  function requestsTable(requests, opts) {
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
        h('td', { class: 'num' }, h('span', { class: 'usd', text: usd(r.total_cost_usd) })),
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

  function pager(total, page, pageSize, go) {
    const pages = Math.max(1, Math.ceil(total / pageSize));
    return h('div', { class: 'pager' },
      h('button', { type: 'button', id: 'prev', disabled: page <= 1, onclick: () => go(page - 1), text: '← Previous' }),
      h('span', { id: 'page-info', text: 'page ' + page + ' of ' + pages }),
      h('button', { type: 'button', id: 'next', disabled: page >= pages, onclick: () => go(page + 1), text: 'Next →' }));
  }

  function card(label, value, id) {
    return h('div', { class: 'card' }, h('div', { class: 'label', text: label }),
      h('div', { class: 'value', id }, value));
  }

  // -------------------------------------------------------------- charts

  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

  /** A uPlot chart that follows its container's width. */
  function chart(container, opts, data) {
    const width = Math.max(300, container.clientWidth || 600);
    const u = new uPlot(Object.assign({ width, height: 240, tzDate: utc }, opts), data, container);
    charts.push(u);
    return u;
  }

  window.addEventListener('resize', () => {
    for (const c of charts) {
      const w = c.root.parentElement ? c.root.parentElement.clientWidth : 0;
      if (w > 0) c.setSize({ width: w, height: 240 });
    }
  });

  const usdAxis = (u, splits) => splits.map((v) => (v == null ? '' : usd(v)));

  /** x-axis ticks in UTC: "11-21" for days, "14:00" (with the date at midnight) for hours. */
  const timeAxis = {
    space: 60,
    values: (u, splits, axis, space, incr) => splits.map((v) => {
      if (v == null) return '';
      const iso = new Date(v * 1000).toISOString();
      const day = iso.slice(5, 10);
      const hm = iso.slice(11, 16);
      if (incr >= 86400) return day;
      if (incr >= 60) return hm === '00:00' ? hm + '\n' + day : hm;
      return incr >= 1 ? iso.slice(11, 19) : iso.slice(11, 23);
    }),
  };

  /** An x range that keeps one point (or one bar) in view, padded by `pad` seconds. */
  const xRange = (pad) => (u, min, max) => (min == null ? [0, 1] : [min - pad, max + pad]);

  /** Bucket key from the summary API ("YYYY-MM-DD" or "YYYY-MM-DDTHH:00Z") → epoch seconds. */
  function bucketSeconds(keyText) {
    const t = Date.parse(keyText.length === 10 ? keyText + 'T00:00:00Z' : keyText);
    return Number.isFinite(t) ? t / 1000 : null;
  }

  /** Time buckets in order with empty ones filled in (up to a sane count). */
  function timeSeries(groups, step) {
    const pts = groups.map((g) => [bucketSeconds(g.key), g]).filter((p) => p[0] != null)
      .sort((a, b) => a[0] - b[0]);
    const xs = [];
    const spend = [];
    const unpriced = [];
    if (pts.length === 0) return [xs, spend, unpriced];
    const byT = new Map(pts);
    const first = pts[0][0];
    const last = pts[pts.length - 1][0];
    const fill = (last - first) / step <= 5000;
    const times = fill ? [] : pts.map((p) => p[0]);
    if (fill) for (let t = first; t <= last; t += step) times.push(t);
    for (const t of times) {
      const g = byT.get(t);
      xs.push(t);
      spend.push(g ? g.total_cost_usd : 0);
      unpriced.push(g ? g.unpriced_count : 0);
    }
    return [xs, spend, unpriced];
  }

  function spendChart(container, groups, step) {
    const data = timeSeries(groups, step);
    if (data[0].length === 0) {
      container.append(h('div', { class: 'empty', text: 'No usage in this period.' }));
      return null;
    }
    return chart(container, {
      scales: { x: { time: true, range: xRange(step / 2) }, usd: { auto: true, range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] }, n: { auto: true, range: (u, min, max) => [0, Math.max(1, max * 1.2)] } },
      series: [
        { value: (u, v) => (v == null ? '—' : new Date(v * 1000).toISOString().slice(0, step < 86400 ? 16 : 10).replace('T', ' ')) },
        { label: 'spend', scale: 'usd', stroke: '#1d4ed8', fill: 'rgba(59,130,246,0.35)', width: 1,
          paths: uPlot.paths.bars({ size: [0.8, 48] }), points: { show: false }, value: (u, v) => usd(v) },
        { label: 'unpriced records', scale: 'n', stroke: '#d97706', width: 2, points: { show: true, size: 5 },
          value: (u, v) => (v == null ? '—' : int(v)) },
      ],
      axes: [
        timeAxis,
        { scale: 'usd', values: usdAxis, size: 70 },
        { scale: 'n', side: 1, grid: { show: false }, values: (u, s) => s.map((v) => (Number.isInteger(v) ? v : '')) },
      ],
    }, data);
  }

  /** Cumulative priced cost of a task, request by request. */
  function cumulativeData(requests, end) {
    const sorted = requests.slice().sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    const xs = [];
    const ys = [];
    let sum = 0;
    for (const r of sorted) {
      sum += r.total_cost_usd || 0;
      const t = Date.parse(r.timestamp) / 1000;
      if (xs.length && xs[xs.length - 1] >= t) {
        ys[ys.length - 1] = sum;
      } else {
        xs.push(t);
        ys.push(sum);
      }
    }
    // Carry the total to the last activity, so the line shows how long it ran.
    const last = end ? Date.parse(end) / 1000 : NaN;
    if (xs.length && Number.isFinite(last) && last > xs[xs.length - 1]) {
      xs.push(last);
      ys.push(sum);
    }
    return [xs, ys];
  }

  function cumulativeChart(container, data) {
    return chart(container, {
      scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) }, usd: { auto: true, range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      series: [{}, { label: 'cost so far', scale: 'usd', stroke: '#1d4ed8', fill: 'rgba(59,130,246,0.15)', width: 2,
        paths: uPlot.paths.stepped({ align: 1 }), value: (u, v) => usd(v) }],
      axes: [timeAxis, { scale: 'usd', values: usdAxis, size: 70 }],
    }, data);
  }

  // ------------------------------------------------------------- overview

  const RANGES = { '24h': 86400, '48h': 172800, '7d': 604800, '30d': 2592000, '90d': 7776000, all: null };

  async function overview(gen, params) {
    setNav('overview');
    const range = params.get('range') in RANGES ? params.get('range') : '30d';
    const bucket = params.get('bucket') === 'hour' || params.get('bucket') === 'day' ? params.get('bucket')
      : RANGES[range] != null && RANGES[range] <= 172800 ? 'hour' : 'day';
    const seconds = RANGES[range];
    // Whole hours, so hour buckets at the edge are complete.
    const from = seconds == null ? null
      : new Date((Math.floor(Date.now() / 3600000) * 3600 - seconds + 3600) * 1000).toISOString();
    const summary = (g) => api('/api/usage/summary' + qs({ group_by: g, from }));
    const [time, model, provider, service, entity, tasks, docs] = await Promise.all(
      [bucket, 'model', 'provider', 'service_type', 'entity_id', 'task_id', 'doc_id'].map(summary));
    if (gen !== generation) return;

    const go = (r, b) => {
      location.hash = '#/' + qs({ range: r, bucket: b });
    };
    const rangeSel = h('select', { id: 'range', onchange: (e) => go(e.target.value, null) },
      Object.keys(RANGES).map((r) => h('option', { value: r, selected: r === range, text: r === 'all' ? 'all time' : 'last ' + r })));
    const bucketSel = h('select', { id: 'bucket', onchange: (e) => go(range, e.target.value) },
      ['hour', 'day'].map((b) => h('option', { value: b, selected: b === bucket, text: 'by ' + b })));

    const chartBox = h('div', { class: 'chart', id: 'spend-chart' });
    const entities = entity.groups.filter((g) => g.key !== '(none)').length;
    fill(app,
      h('h1', {}, 'Where the money goes'),
      h('div', { class: 'controls' }, h('label', {}, 'period', rangeSel), h('label', {}, 'buckets', bucketSel),
        h('span', { class: 'muted' }, from ? 'since ' + when(from) : 'all recorded usage')),
      h('div', { class: 'cards' },
        card('total spend (priced)', usd(model.total_cost_usd), 'total-spend'),
        card('unpriced usage records', unpricedBadge(model.unpriced_count), 'total-unpriced'),
        card('usage records', int(model.record_count), 'total-records'),
        card('entities', int(entities), 'total-entities')),
      h('section', { class: 'panel' }, h('h2', {}, 'Spend by ' + bucket + ' (UTC)'), chartBox),
      h('div', { class: 'grid' },
        summaryTable('top-tasks', 'Most expensive tasks', tasks.groups, 'tasks', 10),
        summaryTable('top-docs', 'Most expensive documents', docs.groups, 'docs', 10),
        summaryTable('by-model', 'By model', model.groups),
        summaryTable('by-provider', 'By provider', provider.groups),
        summaryTable('by-service', 'By service type', service.groups),
        summaryTable('by-entity', 'By entity', entity.groups, 'entities')));
    spendChart(chartBox, time.groups, bucket === 'hour' ? 3600 : 86400);
  }

  // ------------------------------------------------------------- requests

  const FILTERS = ['task_id', 'doc_id', 'entity_id', 'task_type', 'operation_type', 'status_code', 'from', 'to'];

  async function requestsPage(gen, params) {
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
      if (err instanceof ApiError && gen === generation) {
        // A bad filter value: keep the form so it can be fixed.
        fill(body, h('div', { class: 'error', id: 'page-error', role: 'alert', text: err.message }));
        return;
      }
      throw err;
    }
    if (gen !== generation) return;
    const pageCost = list.requests.reduce((s, r) => s + (r.total_cost_usd || 0), 0);
    const pageUnpriced = list.requests.reduce((s, r) => s + (r.unpriced_count || 0), 0);
    fill(body,
      h('p', { id: 'req-summary' }, h('strong', { id: 'req-total', text: int(list.total) }),
        list.total === 1 ? ' request' : ' requests', ' match; this page: ', h('span', { class: 'usd', text: usd(pageCost) }), ' ',
        unpricedBadge(pageUnpriced)),
      list.requests.length ? requestsTable(list.requests) : h('div', { class: 'empty', text: 'No requests match.' }),
      pager(list.total, page, pageSize, (p) => nav({ page: p })));
  }

  async function requestDetail(gen, id) {
    setNav('requests');
    const r = await api('/api/requests/' + encodeURIComponent(id));
    if (gen !== generation) return;
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
        card('cost (priced)', usd(r.total_cost_usd), 'request-total'),
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

  // ------------------------------------------- task, document and entity

  /** Per service: priced dollars from the cost view, unpriced counts from the requests. */
  function serviceRows(cost, requests) {
    const unpriced = new Map();
    for (const r of requests) {
      for (const s of r.services_used || []) {
        const n = (s.breakdown && s.breakdown.unpriced_count) || 0;
        unpriced.set(s.service_type, (unpriced.get(s.service_type) || 0) + n);
      }
    }
    const rows = Object.entries(cost.breakdown_by_service || {}).map(([k, v]) => ({
      key: k, total_cost_usd: v, unpriced_count: unpriced.get(k) || 0, record_count: null,
    }));
    for (const [k, n] of unpriced) {
      if (!rows.some((r) => r.key === k)) rows.push({ key: k, total_cost_usd: 0, unpriced_count: n, record_count: null });
    }
    rows.sort((a, b) => b.total_cost_usd - a.total_cost_usd || a.key.localeCompare(b.key));
    return rows;
  }

  function serviceTable(rows) {
    const max = Math.max(0, ...rows.map((r) => r.total_cost_usd));
    return h('table', { id: 'by-service' },
      h('thead', {}, h('tr', {}, h('th', { text: 'service' }), h('th', { class: 'num', text: 'cost' }),
        h('th', { text: '' }), h('th', { class: 'num', text: 'unpriced' }))),
      h('tbody', {}, rows.map((r) => {
        const bar = h('div', { class: 'bar' }, h('span'));
        bar.firstChild.style.width = (max > 0 ? (100 * r.total_cost_usd) / max : 0).toFixed(1) + '%';
        return h('tr', { 'data-key': r.key }, h('td', { class: 'mono', text: r.key }),
          h('td', { class: 'num' }, r.total_cost_usd === 0 && r.unpriced_count > 0
            ? h('span', { class: 'unpriced', text: 'unpriced' }) : h('span', { class: 'usd', text: usd(r.total_cost_usd) })),
          h('td', { class: 'share' }, bar), h('td', { class: 'num' }, unpricedBadge(r.unpriced_count)));
      })));
  }

  function costCards(cost, prefix) {
    return h('div', { class: 'cards' },
      card('total cost (priced)', usd(cost.total_cost_usd), prefix + '-total'),
      card('unpriced usage', unpricedBadge(cost.unpriced_count), prefix + '-unpriced'),
      card('requests', int(cost.request_count), prefix + '-requests'),
      card('period (UTC)', h('span', { class: 'mono small' },
        when(cost.period_start).replace(' UTC', ''), h('br'), '→ ' + when(cost.period_end).replace(' UTC', '')), prefix + '-period'));
  }

  async function taskPage(gen, id) {
    setNav('');
    const status = h('span', { class: 'badge', id: 'task-status', text: '…' });
    const updated = h('span', { class: 'muted', id: 'task-updated' });
    const cards = h('div', {});
    const services = h('section', { class: 'panel' }, h('h2', { text: 'Cost by service' }));
    const chartBox = h('div', { class: 'chart', id: 'task-chart' });
    const requests = h('section', { class: 'panel' }, h('h2', { text: 'Cost by request' }));
    fill(app,
      h('h1', {}, 'Task ', h('span', { class: 'mono', id: 'task-id', text: id }), status, updated),
      cards,
      h('div', { class: 'grid' }, services, h('section', { class: 'panel' }, h('h2', { text: 'Cost so far' }), chartBox)),
      requests);
    let plot = null;

    const refresh = async () => {
      const [cost, list] = await Promise.all([
        api('/api/tasks/' + encodeURIComponent(id) + '/cost'),
        api('/api/requests' + qs({ task_id: id, page_size: 1000 })),
      ]);
      if (gen !== generation) return;
      // Running: a request has not ended yet (seed 004: poll for cost).
      const running = list.requests.some((r) => r.status_code == null);
      status.className = running ? 'badge live' : 'badge';
      status.textContent = running ? 'running · live every ' + POLL_MS / 1000 + ' s' : 'finished';
      updated.textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
      fill(cards, costCards(cost, 'task'));
      fill(services, h('h2', { text: 'Cost by service' }), serviceTable(serviceRows(cost, list.requests)));
      fill(requests, h('h2', { text: 'Cost by request' }),
        list.total > list.requests.length ? h('p', { class: 'muted', text: 'Showing the latest ' + list.requests.length + ' of ' + int(list.total) + ' requests.' }) : null,
        requestsTable(list.requests, { noTask: true, id: 'task-requests-table' }));
      const data = cumulativeData(list.requests, running ? new Date().toISOString() : cost.period_end);
      if (plot) plot.setData(data);
      else if (data[0].length) plot = cumulativeChart(chartBox, data);
      if (running) timers.push(setTimeout(() => poll(), POLL_MS));
    };
    const poll = () => refresh().catch((err) => showError(err, gen));
    await refresh();
  }

  /** Documents and entities: the cost view plus their requests, paginated. */
  async function costPage(gen, kind, id, params) {
    setNav('');
    const conf = {
      docs: { title: 'Document', field: 'doc_id', prefix: 'doc', opts: { noDoc: true } },
      entities: { title: 'Entity', field: 'entity_id', prefix: 'entity', opts: { noEntity: true } },
    }[kind];
    const page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
    const pageSize = 25;
    const [cost, list, all] = await Promise.all([
      api('/api/' + kind + '/' + encodeURIComponent(id) + '/cost'),
      api('/api/requests' + qs({ [conf.field]: id, page, page_size: pageSize })),
      // Unpriced counts per service need every request; documents are small.
      kind === 'docs' ? api('/api/requests' + qs({ doc_id: id, page_size: 1000 })) : Promise.resolve(null),
    ]);
    if (gen !== generation) return;
    const go = (p) => {
      location.hash = '#/' + kind + '/' + encodeURIComponent(id) + qs({ page: p });
    };
    fill(app,
      h('h1', {}, conf.title + ' ', h('span', { class: 'mono', id: conf.prefix + '-id', text: id })),
      costCards(cost, conf.prefix),
      h('section', { class: 'panel' }, h('h2', { text: 'Cost by service' }),
        serviceTable(serviceRows(cost, all ? all.requests : [])),
        all ? null : h('p', { class: 'muted', text: 'Unpriced usage in total: ' + int(cost.unpriced_count) + ' (per service on each request).' })),
      h('section', { class: 'panel' }, h('h2', {}, 'Requests ', h('span', { class: 'muted', id: conf.prefix + '-request-total', text: '(' + int(list.total) + ')' }),
        ' ', link('#/requests' + qs({ [conf.field]: id }), 'open in explorer')),
      list.requests.length ? requestsTable(list.requests, conf.opts) : h('div', { class: 'empty', text: 'No request records; the cost above comes from usage linked to this ' + conf.title.toLowerCase() + '.' }),
      pager(list.total, page, pageSize, go)));
  }

  // --------------------------------------------------------------- router

  function route() {
    renderAuthState();
    const raw = location.hash.replace(/^#/, '') || '/';
    const [path, query] = raw.split('?');
    const params = new URLSearchParams(query || '');
    const parts = path.split('/').filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (_) {
        return p;
      }
    });
    if (authMode === 'keys' && !key()) {
      showKeyForm('');
      return;
    }
    if (parts.length === 0) run(overview, params);
    else if (parts[0] === 'requests' && parts.length === 1) run(requestsPage, params);
    else if (parts[0] === 'requests') run(requestDetail, parts.slice(1).join('/'));
    else if (parts[0] === 'tasks' && parts.length > 1) run(taskPage, parts.slice(1).join('/'));
    else if ((parts[0] === 'docs' || parts[0] === 'entities') && parts.length > 1) {
      run(costPage, parts[0], parts.slice(1).join('/'), params);
    } else {
      stopPage();
      fill(app, h('div', { class: 'error', id: 'page-error', text: 'No such page: #' + raw }));
    }
  }

  async function boot() {
    document.getElementById('key-change').addEventListener('click', () => {
      sessionStorage.removeItem(KEY_STORE);
      showKeyForm('');
    });
    try {
      const health = await (await fetch('/healthz', { cache: 'no-store' })).json();
      authMode = health.auth || 'local';
    } catch (_) {
      authMode = 'local';
    }
    window.addEventListener('hashchange', route);
    route();
  }

  boot();
})();
