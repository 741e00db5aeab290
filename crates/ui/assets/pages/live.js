// The live view, /live/<script>?vizier=<name>: pick a vizier and a script, run it, and see each output table
// drawn as its vis spec says (a table by default, a time series where the spec asks for one) as rows stream in.
// The vizier and script are in the URL, so a view can be shared.

import { api, describe, runScript, scriptPath } from '../api.js';
import { h, replace } from '../dom.js';
import { TableWidget } from '../table.js';
import { TimeSeriesWidget } from '../chart.js';

// The display types drawn by `widgets.js`, which is loaded only for a spec that uses one.
const EXTRA = /\.(BarChart|StatChart|HistogramChart|PieChart|GaugeChart|TextChart|RequestGraph|Graph|StackTraceFlameGraph)$/;

function specWidgets(vis) {
  return (vis && Array.isArray(vis.widgets)) ? vis.widgets.filter((w) => w && typeof w === 'object') : [];
}

function typeOf(widget) {
  return widget && widget.displaySpec ? String(widget.displaySpec['@type'] || '') : '';
}

// The vis spec's widgets for an output table: those whose function makes it (Pixie names a widget's output
// after the widget, `widget_<index>` when it has none), those reading a global function's output, and those
// pointing at a `px.display` output by name.
function widgetsFor(vis, table) {
  return specWidgets(vis).filter((w, i) => w.globalFuncOutputName === table || w.name === table ||
    (w.func && (w.func.outputName === table || (!w.name && w.func.name && `widget_${i}` === table))));
}

// Loads the extra widgets if `vis` draws one; resolves with the module (or null).
export async function extraWidgets(vis) {
  return specWidgets(vis).some((w) => EXTRA.test(typeOf(w))) ? import('../widgets.js') : null;
}

function makeWidgets(vis, table, columns, extra) {
  const made = [];
  for (const widget of widgetsFor(vis, table)) {
    const spec = widget.displaySpec || {};
    const type = typeOf(widget);
    const name = widget.name || table;
    if (type.endsWith('TimeseriesChart')) {
      const series = (spec.timeseries || [])[0] || {};
      if (columns.some((c) => c.name === series.value)) {
        made.push(new TimeSeriesWidget(name, columns, { value: series.value, series: series.series }));
      }
    } else if (extra && EXTRA.test(type)) {
      const w = extra.makeExtraWidget(type, name, columns, spec);
      if (w) made.push(w);
    } else if (type.endsWith('.Table')) {
      made.push(new TableWidget(name, columns));
    }
  }
  // An output no widget of the spec draws (or draws with a type this UI does not know) is a table.
  if (made.length === 0) made.push(new TableWidget(table, columns));
  return made;
}

// The `exec_funcs` of a vis spec with these variable values (name → text), as Pixie's UI and `px run` make
// them: each global function, then each widget that calls a function by name.
export function execFuncs(vis, values) {
  if (!vis) return [];
  const call = (f, output) => ({
    func_name: String(f.name),
    output_table_prefix: output,
    arg_values: (f.args || []).map((a) => {
      if (a.variable !== undefined) {
        if (!(a.variable in values)) {
          const declared = ((vis.variables) || []).some((v) => v.name === a.variable);
          throw new Error(declared ? `Variable "${a.variable}" needs a value.`
            : `\`${f.name}\` argument \`${a.name}\` reads variable "${a.variable}", which the vis spec does not declare`);
        }
        return { name: a.name, value: values[a.variable] };
      }
      if (a.value !== undefined) return { name: a.name, value: String(a.value) };
      throw new Error(`\`${f.name}\` argument \`${a.name}\` has neither a value nor a variable`);
    }),
  });
  const out = [];
  for (const g of (vis.globalFuncs || [])) if (g && g.func && g.func.name) out.push(call(g.func, g.outputName));
  specWidgets(vis).forEach((w, i) => {
    if (w.func && w.func.name) out.push(call(w.func, w.name || `widget_${i}`));
  });
  return out;
}

// The spec's variables with their defaults.
export function defaults(vis) {
  const values = {};
  for (const v of (vis && vis.variables) || []) if (v.defaultValue !== undefined) values[v.name] = String(v.defaultValue);
  return values;
}

// One input per variable of the spec, by its type: a list for valid values and booleans, a number field for
// numbers, text otherwise. `values` are the starting values (from the URL), else the defaults.
function variableInputs(vis, values) {
  return ((vis && vis.variables) || []).map((v) => {
    const id = `var-${v.name}`;
    const value = values.get(v.name) ?? (v.defaultValue !== undefined ? String(v.defaultValue) : '');
    let input;
    const choices = Array.isArray(v.validValues) && v.validValues.length > 0 ? v.validValues.map(String)
      : v.type === 'PX_BOOLEAN' ? ['true', 'false'] : null;
    if (choices) {
      input = h('select', { id, name: v.name, 'data-variable': v.name },
        choices.map((c) => h('option', { value: c, selected: c === value }, c)));
    } else {
      const numeric = v.type === 'PX_INT64' || v.type === 'PX_FLOAT64';
      input = h('input', { id, name: v.name, 'data-variable': v.name, type: numeric ? 'number' : 'text',
        step: v.type === 'PX_FLOAT64' ? 'any' : null, value, required: v.defaultValue === undefined, title: v.description || null });
    }
    return h('div', { class: 'field' }, h('label', { for: id }, v.name), input);
  });
}

// A run's outcome as the status line tells it.
function summary(done, started) {
  const ms = Math.round(performance.now() - started);
  return `${done.rows} rows in ${ms} ms`;
}

// What the page says when the cap cut the result.
function truncation(done) {
  if (!done.truncated) return '';
  const total = done.total_rows ? ` of ${done.total_rows}${done.complete === false ? '+' : ''}` : '';
  return `Result truncated: showing the first ${done.rows}${total} rows (ordered by table, then by column values). Narrow the script (a shorter time range, a filter) to see the rest.`;
}

// A compile error as a list of its places.
export function compileErrors(error) {
  return h('ul', { class: 'compile-errors' }, (error.compiler_errors || []).map((e) =>
    h('li', { 'data-line': e.line }, `line ${e.line}, column ${e.column}: ${e.message}`)));
}

// Runs `pxl` on `vizier` and draws into `widgets`; resolves with the error line of the stream, if any.
export async function run({ pxl, name, vizier, vis, execFuncs: funcs, widgets, status, errorBox, notice, signal }) {
  replace(widgets);
  errorBox.replaceChildren();
  if (notice) notice.textContent = '';
  status.textContent = 'Running…';
  const started = performance.now();
  const extra = await extraWidgets(vis);
  // Each table's columns in the order announced, and its widgets.
  const columnsOf = new Map();
  const byTable = new Map();
  const draw = (table) => {
    const made = makeWidgets(vis, table, columnsOf.get(table), extra);
    byTable.set(table, made);
    widgets.append(...made.map((w) => w.element));
  };
  // Text widgets read no table: they are drawn as the run starts.
  const drawText = () => {
    if (!extra) return;
    for (const w of specWidgets(vis)) {
      if (typeOf(w).endsWith('.TextChart')) widgets.append(extra.textWidget(w.name, w.displaySpec).element);
    }
  };
  drawText();
  let failure = null;
  let finished = false;
  try {
    await runScript({ pxl, name, vizier, exec_funcs: funcs && funcs.length ? funcs : undefined }, (line) => {
      // `done` first: its `rows` is a count, not rows.
      if (line.done) {
        finished = true;
        status.textContent = summary(line, started);
        if (notice) notice.textContent = truncation(line);
      } else if (line.reset) {
        // Past the cap the server sends the rows it keeps again, in a stable order: start the widgets afresh.
        replace(widgets);
        drawText();
        for (const table of columnsOf.keys()) draw(table);
      } else if (line.columns) {
        columnsOf.set(line.table, line.columns);
        draw(line.table);
      } else if (line.rows) {
        for (const widget of byTable.get(line.table) || []) widget.addRows(line.rows);
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
  const notice = h('p', { id: 'truncated', class: 'notice', role: 'status' });
  const errorBox = h('div', { id: 'run-error', class: 'error', role: 'alert' });
  const widgets = h('div', { id: 'widgets' });
  const vizierSelect = h('select', { id: 'vizier', name: 'vizier' });
  const scriptSelect = h('select', { id: 'script', name: 'script' });
  const variables = h('fieldset', { id: 'variables', class: 'toolbar variables', hidden: true });
  const runButton = h('button', { type: 'submit', id: 'run' }, 'Run');
  const cancelButton = h('button', { type: 'button', id: 'cancel', disabled: true }, 'Cancel');
  const title = h('h1', {}, `Live: ${script}`);
  const editLink = h('a', { href: `/editor?script=${encodeURIComponent(script)}`, id: 'edit-script' }, 'Edit');
  let controller = null;
  // The script's source and vis spec, fetched once per script; the URL's variable values for the first one.
  let view = null;
  let wantedValues = new Map([...params].filter(([k]) => k !== 'vizier'));

  const values = () => Object.fromEntries([...variables.querySelectorAll('[data-variable]')].map((i) => [i.dataset.variable, i.value]));

  const shareable = () => {
    const query = new URLSearchParams();
    if (vizierSelect.value) query.set('vizier', vizierSelect.value);
    for (const [k, v] of Object.entries(values())) if (k !== 'vizier') query.set(k, v);
    const text = query.toString();
    history.replaceState(null, '', `/live/${script.split('/').map(encodeURIComponent).join('/')}${text ? `?${text}` : ''}`);
  };

  async function load(signal) {
    if (view) return view;
    const fetched = await api('GET', scriptPath(script), undefined, signal);
    view = fetched;
    replace(variables, ((view.vis && view.vis.variables) || []).length ? h('legend', {}, 'Variables') : null, variableInputs(view.vis, wantedValues));
    variables.hidden = variables.children.length === 0;
    wantedValues = new Map();
    return view;
  }

  async function start() {
    if (controller) controller.abort();
    controller = new AbortController();
    const mine = controller;
    status.textContent = 'Running…';
    runButton.disabled = true;
    cancelButton.disabled = false;
    try {
      const { pxl, vis } = await load(mine.signal);
      shareable();
      const funcs = execFuncs(vis, { ...defaults(vis), ...values() });
      const failure = await run({ pxl, name: script, vizier: vizierSelect.value || null, vis, execFuncs: funcs, widgets, status, errorBox, notice, signal: mine.signal });
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
    view = null;
    replace(variables);
    variables.hidden = true;
    title.textContent = `Live: ${script}`;
    editLink.setAttribute('href', `/editor?script=${encodeURIComponent(script)}`);
    document.title = `${title.textContent} · Loupe`;
    start();
  });

  main.append(title,
    h('form', { class: 'toolbar', id: 'run-form', on: { submit: (event) => { event.preventDefault(); start(); } } },
      h('label', { for: 'vizier' }, 'Vizier'), vizierSelect,
      h('label', { for: 'script' }, 'Script'), scriptSelect,
      variables,
      runButton, cancelButton,
      editLink),
    status, notice, errorBox, widgets);

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
    start();
  }
}
