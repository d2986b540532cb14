// The page frame: navigation, the key form, errors, and the life of one
// page. Each navigation bumps `state.generation`; work started for an older
// page (fetches, timers, charts) compares it and stops.

import { AuthError, KEY_STORE, key } from './api.js';
import { fill, h } from './dom.js';

export const app = document.getElementById('app');

export const state = {
  generation: 0,
  timers: [],
  charts: [],
  /** `local` (no key needed) or `keys`, from /healthz. */
  authMode: 'local',
  /** Set by app.js: renders the page the hash names. */
  route: () => {},
};

export function setNav(name) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === name);
  }
}

export function renderAuthState() {
  const state = document.getElementById('auth-state');
  const change = document.getElementById('key-change');
  if (state.authMode === 'keys' || key()) {
    state.textContent = key() ? 'signed in with an API key' : 'API key required';
    change.hidden = !key();
  } else {
    state.textContent = 'local mode (no key needed)';
    change.hidden = true;
  }
}

export function stopPage() {
  state.generation += 1;
  for (const t of state.timers) clearTimeout(t);
  state.timers = [];
  for (const c of state.charts) c.destroy();
  state.charts = [];
  return state.generation;
}

export function showKeyForm(message) {
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
      state.route();
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

export function showError(err, gen) {
  if (gen !== state.generation) return;
  if (err instanceof AuthError) {
    const hadKey = !!key();
    sessionStorage.removeItem(KEY_STORE);
    showKeyForm(hadKey ? 'The server rejected the key: ' + err.message : err.message);
    return;
  }
  fill(app, h('div', { class: 'error', id: 'page-error', role: 'alert', text: err.message }));
}

/** Runs a page; errors of the current page end up on screen. */
export async function run(page, ...args) {
  const gen = stopPage();
  try {
    await page(gen, ...args);
  } catch (err) {
    showError(err, gen);
  }
}
