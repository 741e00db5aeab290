// The script editor, /editor?script=<name>&vizier=<name>: PxL and its vis spec side by side, run on a vizier,
// compile errors marked at their line, and save as an org script.

import { ApiError, api, describe, scriptPath } from '../api.js';
import { h, replace } from '../dom.js';
import { defaults, execFuncs, run } from './live.js';

// The source with each line numbered and the lines of `errors` marked, each followed by its messages.
function marked(source, errors) {
  const byLine = new Map();
  for (const e of errors) {
    if (!byLine.has(e.line)) byLine.set(e.line, []);
    byLine.get(e.line).push(e);
  }
  return h('ol', { class: 'source', id: 'source', 'aria-label': 'Script with its errors' },
    source.split('\n').map((text, i) => {
      const line = i + 1;
      const here = byLine.get(line);
      return h('li', { 'data-line': line, class: here ? 'error-line' : null, 'aria-invalid': here ? 'true' : null },
        h('code', {}, text || ' '),
        here ? here.map((e) => h('div', { class: 'line-error' }, `${' '.repeat(Math.max(0, e.column - 1))}^ ${e.message}`)) : null);
    }));
}

// Puts the caret at `line`:`column` of the textarea.
function focusAt(textarea, line, column) {
  const lines = textarea.value.split('\n');
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i += 1) offset += lines[i].length + 1;
  offset += Math.max(0, column - 1);
  textarea.focus();
  textarea.setSelectionRange(offset, offset);
}

export async function editorPage(main, { params }) {
  const name = params.get('script') || '';
  const error = h('div', { id: 'run-error', class: 'error', role: 'alert' });
  const status = h('p', { id: 'run-status', role: 'status', class: 'muted' });
  const notice = h('p', { id: 'truncated', class: 'notice', role: 'status' });
  const saved = h('p', { id: 'save-status', role: 'status', class: 'muted' });
  const widgets = h('div', { id: 'widgets' });
  const marks = h('div', { id: 'marks' });
  const pxl = h('textarea', { id: 'pxl', spellcheck: 'false', rows: 18, wrap: 'off' });
  const vis = h('textarea', { id: 'vis', spellcheck: 'false', rows: 18, wrap: 'off' });
  const vizier = h('select', { id: 'vizier' });
  const saveName = h('input', { id: 'save-name', type: 'text', pattern: 'org/[a-z0-9_\\-]{1,64}', placeholder: 'org/my_script' });
  const runButton = h('button', { type: 'submit', id: 'run' }, 'Run');
  const cancelButton = h('button', { type: 'button', id: 'cancel', disabled: true }, 'Cancel');
  let controller = null;

  main.append(h('h1', {}, name ? `Editor: ${name}` : 'Editor'),
    h('form', { class: 'toolbar', id: 'editor-form', on: { submit: async (event) => {
      event.preventDefault();
      if (controller) controller.abort();
      controller = new AbortController();
      runButton.disabled = true;
      cancelButton.disabled = false;
      replace(marks);
      let spec = null;
      let funcs = [];
      try {
        spec = vis.value.trim() ? JSON.parse(vis.value) : null;
        // The editor runs a function-form script with its variables' defaults (the live view sets them).
        funcs = execFuncs(spec, defaults(spec));
      } catch (e) {
        error.replaceChildren(h('p', {}, e instanceof SyntaxError ? `The vis spec is not JSON: ${e.message}` : e.message));
        runButton.disabled = false;
        cancelButton.disabled = true;
        return;
      }
      const failure = await run({ pxl: pxl.value, name: name || 'editor', vizier: vizier.value || null, vis: spec, execFuncs: funcs, widgets, notice, status, errorBox: error, signal: controller.signal });
      if (failure && failure.cancelled) status.textContent = 'Cancelled.';
      const errors = (failure && failure.compiler_errors) || [];
      if (errors.length > 0) {
        replace(marks, marked(pxl.value, errors));
        focusAt(pxl, errors[0].line, errors[0].column);
      }
      runButton.disabled = false;
      cancelButton.disabled = true;
      controller = null;
    } } },
      h('label', { for: 'vizier' }, 'Vizier'), vizier, runButton, cancelButton),
    h('div', { class: 'editor' },
      h('div', { class: 'field' }, h('label', { for: 'pxl' }, 'PxL'), pxl),
      h('div', { class: 'field' }, h('label', { for: 'vis' }, 'Vis spec (JSON)'), vis)),
    h('form', { class: 'toolbar', id: 'save-form', on: { submit: async (event) => {
      event.preventDefault();
      saved.textContent = '';
      error.replaceChildren();
      let spec;
      try {
        spec = vis.value.trim() ? JSON.parse(vis.value) : undefined;
      } catch (e) {
        error.replaceChildren(h('p', {}, `The vis spec is not JSON: ${e.message}`));
        return;
      }
      const target = saveName.value.trim();
      try {
        try {
          await api('POST', '/api/v1/scripts', { name: target, pxl: pxl.value, vis: spec });
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 409)) throw e;
          await api('PUT', scriptPath(target), { pxl: pxl.value, vis: spec });
        }
        saved.textContent = `Saved as ${target}.`;
      } catch (e) {
        error.replaceChildren(h('p', {}, describe(e)));
      }
    } } }, h('label', { for: 'save-name' }, 'Save as'), saveName, h('button', { type: 'submit', id: 'save' }, 'Save')),
    saved, status, notice, error, marks, widgets);
  cancelButton.addEventListener('click', () => controller && controller.abort());

  try {
    const [viziers, view] = await Promise.all([
      api('GET', '/api/v1/viziers'),
      name ? api('GET', scriptPath(name)) : Promise.resolve(null),
    ]);
    const wanted = params.get('vizier');
    for (const v of viziers) vizier.append(h('option', { value: v.name, selected: v.name === wanted }, v.name));
    if (view) {
      pxl.value = view.pxl;
      vis.value = view.vis ? JSON.stringify(view.vis, null, 2) : '';
      saveName.value = name.startsWith('org/') ? name : `org/${name.split('/').pop()}`;
    }
  } catch (e) {
    error.replaceChildren(h('p', {}, describe(e)));
  }
}
