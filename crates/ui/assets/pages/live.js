// The live view, /live/<script>?vizier=<name>: pick a vizier and a script, run it, and see each output table
// drawn as its vis spec says (a table by default, a time series where the spec asks for one) as rows stream in.
// The vizier and script are in the URL, so a view can be shared.

import { api, describe, runScript, scriptPath } from '../api.js';
import { h, replace } from '../dom.js';
import { TableWidget } from '../table.js';
import { TimeSeriesWidget } from '../chart.js';

// The vis spec's widget for an output table, if it names one (Pixie's `widgets[].func.outputName`, or a
// global func's output the widget points at).
function widgetFor(vis, table) {
  const widgets = (vis && Array.isArray(vis.widgets)) ? vis.widgets : [];
  return widgets.find((w) => w && (w.globalFuncOutputName === table || w.name === table ||
    (w.func && w.func.outputName === table))) || null;
}

function makeWidget(vis, table, columns) {
  const widget = widgetFor(vis, table);
  const spec = widget && widget.displaySpec;
  const type = spec ? String(spec['@type'] || '') : '';
  if (type.endsWith('TimeseriesChart')) {
    const series = (spec.timeseries || [])[0] || {};
    if (columns.some((c) => c.name === series.value)) {
      return new TimeSeriesWidget(widget.name || table, columns, { value: series.value, series: series.series });
    }
  }
  return new TableWidget(table, columns);
}

// A run's outcome as the status line tells it.
function summary(done, started) {
  const ms = Math.round(performance.now() - started);
  const truncated = done.truncated ? ` (stopped at ${done.rows} rows)` : '';
  return `${done.rows} rows in ${ms} ms${truncated}`;
}

// A compile error as a list of its places.
export function compileErrors(error) {
  return h('ul', { class: 'compile-errors' }, (error.compiler_errors || []).map((e) =>
    h('li', { 'data-line': e.line }, `line ${e.line}, column ${e.column}: ${e.message}`)));
}

// Runs `pxl` on `vizier` and draws into `widgets`; resolves with the error line of the stream, if any.
export async function run({ pxl, name, vizier, vis, widgets, status, errorBox, signal }) {
  replace(widgets);
  errorBox.replaceChildren();
  status.textContent = 'Running…';
  const started = performance.now();
  const byTable = new Map();
  let failure = null;
  let finished = false;
  try {
    await runScript({ pxl, name, vizier }, (line) => {
      // `done` first: its `rows` is a count, not rows.
      if (line.done) {
        finished = true;
        status.textContent = summary(line, started);
      } else if (line.columns) {
        const widget = makeWidget(vis, line.table, line.columns);
        byTable.set(line.table, widget);
        widgets.append(widget.element);
      } else if (line.rows) {
        const widget = byTable.get(line.table);
        if (widget) widget.addRows(line.rows);
      } else if (line.error) {
        failure = line.error;
        errorBox.append(h('p', {}, line.error.message), compileErrors(line.error));
        status.textContent = 'Failed.';
      }
    }, signal);
    if (!finished && !failure) {
      failure = { message: 'The results ended early: the connection to the server was lost.' };
      status.textContent = 'Failed.';
      errorBox.append(h('p', {}, failure.message));
    }
  } catch (e) {
    if (e && e.name === 'AbortError') {
      // Cancelled, or replaced by a newer run (which owns the status line then): the caller tells which.
      return { message: 'Cancelled.', cancelled: true };
    }
    status.textContent = 'Failed.';
    errorBox.append(h('p', {}, describe(e)));
    failure = { message: describe(e) };
  }
  return failure;
}

export async function livePage(main, { params, args }) {
  let script = args[0];
  const status = h('p', { id: 'run-status', role: 'status', class: 'muted' });
  const errorBox = h('div', { id: 'run-error', class: 'error', role: 'alert' });
  const widgets = h('div', { id: 'widgets' });
  const vizierSelect = h('select', { id: 'vizier', name: 'vizier' });
  const scriptSelect = h('select', { id: 'script', name: 'script' });
  const runButton = h('button', { type: 'submit', id: 'run' }, 'Run');
  const cancelButton = h('button', { type: 'button', id: 'cancel', disabled: true }, 'Cancel');
  const title = h('h1', {}, `Live: ${script}`);
  const editLink = h('a', { href: `/editor?script=${encodeURIComponent(script)}`, id: 'edit-script' }, 'Edit');
  let controller = null;

  const shareable = () => {
    const query = vizierSelect.value ? `?vizier=${encodeURIComponent(vizierSelect.value)}` : '';
    history.replaceState(null, '', `/live/${script.split('/').map(encodeURIComponent).join('/')}${query}`);
  };

  async function start() {
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    status.textContent = 'Running…';
    runButton.disabled = true;
    cancelButton.disabled = false;
    try {
      const view = await api('GET', scriptPath(script), undefined, mine.signal);
      const failure = await run({ pxl: view.pxl, name: script, vizier: vizierSelect.value || null, vis: view.vis, widgets, status, errorBox, signal: mine.signal });
      if (failure && failure.cancelled && controller === mine) status.textContent = 'Cancelled.';
    } catch (e) {
      // A run replaced by a newer one, or cancelled, says so and leaves the page to the newer one.
      if (e && e.name === 'AbortError') {
        if (controller === mine) status.textContent = 'Cancelled.';
      } else {
        status.textContent = 'Failed.';
        errorBox.replaceChildren(h('p', {}, describe(e)));
      }
    } finally {
      if (controller === mine) {
        runButton.disabled = false;
        cancelButton.disabled = true;
        controller = null;
      }
    }
  }

  cancelButton.addEventListener('click', () => controller && controller.abort());
  vizierSelect.addEventListener('change', () => { shareable(); start(); });
  scriptSelect.addEventListener('change', () => {
    script = scriptSelect.value;
    title.textContent = `Live: ${script}`;
    editLink.setAttribute('href', `/editor?script=${encodeURIComponent(script)}`);
    document.title = `${title.textContent} · Loupe`;
    shareable();
    start();
  });

  main.append(title,
    h('form', { class: 'toolbar', id: 'run-form', on: { submit: (event) => { event.preventDefault(); start(); } } },
      h('label', { for: 'vizier' }, 'Vizier'), vizierSelect,
      h('label', { for: 'script' }, 'Script'), scriptSelect,
      runButton, cancelButton,
      editLink),
    status, errorBox, widgets);

  let viziers;
  let scripts;
  try {
    [viziers, scripts] = await Promise.all([api('GET', '/api/v1/viziers'), api('GET', '/api/v1/scripts')]);
  } catch (e) {
    errorBox.append(h('p', {}, describe(e)));
    return;
  }
  const wanted = params.get('vizier');
  if (viziers.length === 0) {
    vizierSelect.append(h('option', { value: '' }, 'no vizier registered'));
  }
  if (wanted && !viziers.some((v) => v.name === wanted || v.id === wanted)) {
    // A shared link may name a vizier this user cannot see: keep it, and let the server say so.
    vizierSelect.append(h('option', { value: wanted, selected: true }, `${wanted} (not in your list)`));
  }
  for (const v of viziers) {
    vizierSelect.append(h('option', { value: v.name, selected: v.name === wanted || v.id === wanted }, `${v.name} (${v.status})`));
  }
  if (!scripts.some((s) => s.name === script)) scripts.unshift({ name: script, description: '' });
  for (const s of scripts) {
    scriptSelect.append(h('option', { value: s.name, selected: s.name === script, title: s.description }, s.name));
  }
  if (viziers.length > 0 || wanted) {
    shareable();
    start();
  }
}
