// costtrace dashboard: a hash-routed page over the JSON API (/api/…), in
// plain ES modules (no bundler, no build step). uPlot is vendored.
//
// #/                    overview          #/requests?filters  requests explorer
// #/requests/ID         one request       #/tasks/ID          task (live while running)
// #/docs/ID             document          #/entities/ID       entity

import { KEY_STORE, key } from './js/api.js';
import { costPage, taskPage } from './js/costs.js';
import { fill, h } from './js/dom.js';
import { overview } from './js/overview.js';
import { requestDetail, requestsPage } from './js/requests.js';
import { app, renderAuthState, run, showKeyForm, state, stopPage } from './js/shell.js';

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
  if (state.authMode === 'keys' && !key()) {
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
  state.route = route;
  document.getElementById('key-change').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORE);
    showKeyForm('');
  });
  try {
    const health = await (await fetch('/healthz', { cache: 'no-store' })).json();
    state.authMode = health.auth || 'local';
  } catch (_) {
    state.authMode = 'local';
  }
  window.addEventListener('hashchange', route);
  route();
}

boot();
