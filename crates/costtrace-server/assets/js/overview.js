// Overview: spend over time, by model, provider, service type and entity,
// and the most expensive tasks and documents (all `GET /api/usage/summary`).

import { api, qs } from './api.js';
import { spendChart } from './charts.js';
import { card, fill, h, int, money, unpricedBadge, when } from './dom.js';
import { app, setNav, state } from './shell.js';
import { summaryTable } from './tables.js';

const RANGES = { '24h': 86400, '48h': 172800, '7d': 604800, '30d': 2592000, '90d': 7776000, all: null };

export async function overview(gen, params) {
  setNav('overview');
  const range = params.get('range') in RANGES ? params.get('range') : '30d';
  const bucket = params.get('bucket') === 'hour' || params.get('bucket') === 'day' ? params.get('bucket')
    : RANGES[range] != null && RANGES[range] <= 172800 ? 'hour' : 'day';
  const seconds = RANGES[range];
  // Whole hours, so hour buckets at the edge are complete.
  const from = seconds == null ? null
    : new Date((Math.floor(Date.now() / 3600000) * 3600 - seconds + 3600) * 1000).toISOString();
  // Top tasks and documents need only the first rows; totals cover all.
  const summary = (g) => api('/api/usage/summary' + qs({ group_by: g, from,
    limit: g === 'task_id' || g === 'doc_id' ? 10 : null }));
  const [time, model, provider, service, entity, tasks, docs] = await Promise.all(
    [bucket, 'model', 'provider', 'service_type', 'entity_id', 'task_id', 'doc_id'].map(summary));
  if (gen !== state.generation) return;

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
      card('total spend (priced)', money(model.total_cost_usd, model.unpriced_count, model.record_count), 'total-spend'),
      card('unpriced usage records', unpricedBadge(model.unpriced_count), 'total-unpriced'),
      card('usage records', int(model.record_count), 'total-records'),
      card('entities', int(entities), 'total-entities')),
    h('section', { class: 'panel' }, h('h2', {}, 'Spend by ' + bucket + ' (UTC)'), chartBox),
    h('div', { class: 'grid' },
      summaryTable('top-tasks', 'Most expensive tasks', tasks.groups, 'tasks', 10),
      summaryTable('top-docs', 'Most expensive documents', docs.groups, 'docs', 10),
      summaryTable('by-model', 'By model', model.groups, null, null, '(no model: services)'),
      summaryTable('by-provider', 'By provider', provider.groups, null, null, '(no provider)'),
      summaryTable('by-service', 'By service type', service.groups),
      summaryTable('by-entity', 'By entity', entity.groups, 'entities', null, '(no entity)')));
  spendChart(chartBox, time.groups, bucket === 'hour' ? 3600 : 86400);
}
