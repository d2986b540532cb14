// Task, document and entity pages. The task page polls while a request of
// the task is still running (seed 004: "poll for cost").

import { api, qs } from './api.js';
import { cumulativeChart, cumulativeData } from './charts.js';
import { fill, h, int, link } from './dom.js';
import { app, setNav, showError, state } from './shell.js';
import { costCards, pager, requestsTable, serviceRows, serviceTable } from './tables.js';

const POLL_MS = 2000;

export async function taskPage(gen, id) {
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
    if (gen !== state.generation) return;
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
    if (running) state.timers.push(setTimeout(() => poll(), POLL_MS));
  };
  const poll = () => refresh().catch((err) => showError(err, gen));
  await refresh();
}

/** Documents and entities: the cost view plus their requests, paginated. */
export async function costPage(gen, kind, id, params) {
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
    // Unpriced counts per service come from the requests (up to the API's 1,000).
    api('/api/requests' + qs({ [conf.field]: id, page_size: 1000 })),
  ]);
  if (gen !== state.generation) return;
  const go = (p) => {
    location.hash = '#/' + kind + '/' + encodeURIComponent(id) + qs({ page: p });
  };
  fill(app,
    h('h1', {}, conf.title + ' ', h('span', { class: 'mono', id: conf.prefix + '-id', text: id })),
    costCards(cost, conf.prefix),
    h('section', { class: 'panel' }, h('h2', { text: 'Cost by service' }),
      serviceTable(serviceRows(cost, all.requests))),
    h('section', { class: 'panel' }, h('h2', {}, 'Requests ', h('span', { class: 'muted', id: conf.prefix + '-request-total', text: '(' + int(list.total) + ')' }),
      ' ', link('#/requests' + qs({ [conf.field]: id }), 'open in explorer')),
    list.requests.length ? requestsTable(list.requests, conf.opts) : h('div', { class: 'empty', text: 'No request records; the cost above comes from usage linked to this ' + conf.title.toLowerCase() + '.' }),
    pager(list.total, page, pageSize, go)));
}
