// Cron scripts, /admin/cron-scripts: the org's scheduled scripts (create, enable or disable, delete) and the
// results of their last runs on each vizier, through `/api/v1/cron-scripts`. The server decides who may do what.

import { api, describe } from '../api.js';
import { ago, field, h, replace, when } from '../dom.js';

const PATH = '/api/v1/cron-scripts';

function schedule(c) {
  if (c.frequency_s) return `every ${c.frequency_s} s`;
  return c.cron ? `cron ${c.cron}` : '—';
}

function table(id, headers, rows) {
  return h('div', { class: 'scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows)));
}

export async function cronPage(main) {
  const error = h('p', { id: 'page-error', class: 'error', role: 'alert' });
  const listing = h('div', { id: 'cron-list' });
  const results = h('section', { id: 'cron-results', 'aria-live': 'polite' });
  const name = field('Name', { id: 'cron-name', type: 'text', required: true, pattern: '[a-z0-9_\\-]{1,64}', placeholder: 'http_errors' });
  const every = field('Every (seconds)', { id: 'cron-frequency', type: 'number', min: 1, step: 1, value: '60' });
  const cron = field('or cron (UTC)', { id: 'cron-expression', type: 'text', placeholder: '*/5 * * * *' });
  const script = field('PxL', { id: 'cron-script', spellcheck: 'false', rows: 6, required: true }, 'textarea');
  const enabled = h('input', { id: 'cron-enabled', type: 'checkbox', checked: true });
  const input = (f) => f.querySelector('input, textarea');
  let viziers = new Map();

  async function showResults(c) {
    replace(results, h('h2', {}, `Results of ${c.name}`), h('p', { class: 'muted' }, 'Loading…'));
    try {
      const list = await api('GET', `${PATH}/${encodeURIComponent(c.name)}/results`);
      replace(results, h('h2', {}, `Results of ${c.name}`), list.length === 0
        ? h('p', { class: 'muted', id: 'no-results' }, 'No run has reported yet.')
        : table('results', ['Vizier', 'Run at', 'Duration', 'Rows', 'Bytes', 'Outcome'], list.map((r) =>
          h('tr', { 'data-result': r.error_code === 0 ? 'ok' : 'failed' },
            h('td', {}, viziers.get(r.vizier_id) || r.vizier_id),
            h('td', { title: when(r.run_at) }, ago(r.run_at)),
            h('td', { class: 'num' }, `${r.duration_ms} ms`),
            h('td', { class: 'num' }, String(r.records)),
            h('td', { class: 'num' }, String(r.bytes)),
            h('td', { class: r.error_code === 0 ? 'status-ok' : 'status-bad' }, r.error_code === 0 ? 'ok' : r.error)))));
    } catch (e) {
      replace(results);
      error.textContent = describe(e);
    }
  }

  async function act(call) {
    error.textContent = '';
    try {
      await call();
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  }

  async function refresh() {
    const list = await api('GET', PATH);
    replace(listing, list.length === 0 ? h('p', { class: 'muted' }, 'No cron scripts yet.')
      : table('cron-scripts', ['Name', 'Schedule', 'Viziers', 'State', 'Updated', ''], list.map((c) => {
        const path = `${PATH}/${encodeURIComponent(c.name)}`;
        return h('tr', { 'data-cron': c.name, 'data-enabled': c.enabled ? 'true' : 'false' },
          h('td', {}, h('code', { title: c.script }, c.name)),
          h('td', {}, schedule(c)),
          h('td', {}, c.viziers.length === 0 ? 'all' : c.viziers.map((id) => viziers.get(id) || id).join(', ')),
          h('td', { class: c.enabled ? 'status-ok' : 'muted' }, c.enabled ? 'enabled' : 'disabled'),
          h('td', { title: when(c.updated_at) }, ago(c.updated_at)),
          h('td', { class: 'actions' },
            h('button', { type: 'button', class: 'toggle', 'aria-label': `${c.enabled ? 'Disable' : 'Enable'} ${c.name}`,
              on: { click: () => act(() => api('PATCH', path, { enabled: !c.enabled })) } }, c.enabled ? 'Disable' : 'Enable'),
            h('button', { type: 'button', class: 'results', 'aria-label': `Results of ${c.name}`, on: { click: () => showResults(c) } }, 'Results'),
            h('button', { type: 'button', class: 'danger delete', 'aria-label': `Delete ${c.name}`,
              on: { click: () => act(async () => { await api('DELETE', path); replace(results); }) } }, 'Delete')));
      })));
  }

  main.append(h('h1', {}, 'Cron scripts'), error,
    h('form', { class: 'cron-form', id: 'create-cron-form', on: { submit: (event) => {
      event.preventDefault();
      const expression = input(cron).value.trim();
      const body = { name: input(name).value.trim(), script: input(script).value, enabled: enabled.checked };
      if (expression) body.cron = expression;
      else body.frequency_s = Number(input(every).value);
      act(async () => {
        await api('POST', PATH, body);
        input(name).value = '';
      });
    } } },
    h('div', { class: 'toolbar' }, name, every, cron,
      h('div', { class: 'field' }, h('label', { for: 'cron-enabled' }, 'Enabled'), enabled),
      h('button', { type: 'submit', id: 'create-cron' }, 'Create')),
    script),
    listing, results);
  try {
    viziers = new Map((await api('GET', '/api/v1/viziers')).map((v) => [v.id, v.name]));
  } catch {
    // Names are a nicety: ids are shown without them.
  }
  await refresh();
}
