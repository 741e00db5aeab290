// The vis spec's other widgets: bar chart, stat, histogram, pie, gauge, text, graph (Graph and RequestGraph,
// as px/cluster and px/service_graph draw services and the requests between them) and flamegraph
// (StackTraceFlameGraph: folded stacks, `a;b;c`, with a sample count each). Loaded only when a spec asks for one, so the first load stays
// small. Drawn by hand in SVG, like the time series: elements by createElementNS, data as text nodes and
// attribute values only, never markup. Each widget redraws at most once per frame as rows stream in.

import { h } from './dom.js';
import { svg } from './chart.js';

const COLORS = ['#7cc4ff', '#f7a35c', '#90ed7d', '#e4d354', '#f15c80', '#8085e9', '#2b908f', '#f45b5b'];

// The most bars, nodes and flamegraph frames drawn: a chart of more would be unreadable and slow; the heading
// says how many were left out.
const MAX_BARS = 60;
const MAX_NODES = 80;
// The most pie slices: the rest are summed into one.
const MAX_SLICES = 12;

function column(columns, name) {
  return name ? columns.findIndex((c) => c.name === name) : -1;
}

// A number as a chart label reads it.
function short(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return Number.isInteger(value) ? String(value) : value.toPrecision(3);
}

// A value by its column's semantic type, for stats and hover text.
export function formatValue(value, col) {
  if (value === null || value === undefined) return '—';
  const type = col && col.semantic_type;
  if (typeof value === 'number') {
    if (type === 'ST_DURATION_NS') {
      if (value >= 1e9) return `${(value / 1e9).toFixed(2)} s`;
      if (value >= 1e6) return `${(value / 1e6).toFixed(2)} ms`;
      if (value >= 1e3) return `${(value / 1e3).toFixed(1)} µs`;
      return `${value} ns`;
    }
    if (type === 'ST_PERCENT') return `${(value * 100).toFixed(1)}%`;
    if (type === 'ST_BYTES') return `${short(value)}B`;
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  return String(value);
}

// Redraws `widget` once per frame, however many batches arrive.
function schedule(widget) {
  if (widget.pending) return;
  widget.pending = true;
  requestAnimationFrame(() => { widget.pending = false; widget.render(); });
}

function frame(kind, name, ...body) {
  return h('section', { class: `widget ${kind}-widget`, [`data-${kind}`]: name },
    h('div', { class: 'widget-head' }, h('h2', {}, name)), ...body);
}

// BarChart: `bar {value, label, groupBy, stackBy, horizontal}`; one bar per label (and group), the values of
// rows with the same label summed.
export class BarWidget {
  constructor(name, columns, spec) {
    const bar = spec.bar || {};
    this.name = name;
    this.valueCol = columns[column(columns, bar.value)];
    this.value = column(columns, bar.value);
    this.label = column(columns, bar.label);
    this.group = column(columns, bar.groupBy || bar.stackBy);
    this.horizontal = Boolean(bar.horizontal);
    this.totals = new Map();
    this.plot = svg('svg', { role: 'img', class: 'chart bars' });
    this.note = h('p', { class: 'muted note' });
    this.element = frame('bar', name, this.plot, this.note);
  }

  addRows(rows) {
    for (const row of rows) {
      const value = Number(row[this.value]);
      if (!Number.isFinite(value)) continue;
      const label = this.label >= 0 ? String(row[this.label]) : String(this.totals.size);
      const key = this.group >= 0 ? `${label} · ${row[this.group]}` : label;
      this.totals.set(key, (this.totals.get(key) || 0) + value);
    }
    schedule(this);
  }

  render() {
    let bars = [...this.totals];
    const all = bars.length;
    if (all > MAX_BARS) bars = bars.sort((a, b) => b[1] - a[1]).slice(0, MAX_BARS);
    this.note.textContent = all > MAX_BARS ? `The ${MAX_BARS} largest of ${all} bars.` : '';
    const max = Math.max(0, ...bars.map((b) => b[1])) || 1;
    const min = Math.min(0, ...bars.map((b) => b[1]));
    this.plot.replaceChildren();
    const step = 26;
    if (this.horizontal) {
      const W = 800;
      const left = 200;
      const H = Math.max(40, bars.length * step + 8);
      this.plot.setAttribute('viewBox', `0 0 ${W} ${H}`);
      const sx = (v) => left + ((v - min) / ((max - min) || 1)) * (W - left - 70);
      bars.forEach(([label, value], i) => {
        const y = 4 + i * step;
        const x0 = sx(Math.min(0, value));
        this.plot.append(svg('g', { class: 'bar', 'data-label': label, 'data-value': value },
          svg('title', {}, `${label}: ${formatValue(value, this.valueCol)}`),
          svg('text', { x: left - 6, y: y + 15, 'text-anchor': 'end', class: 'tick' }, label.length > 30 ? `${label.slice(0, 29)}…` : label),
          svg('rect', { x: x0, y, width: Math.max(1, Math.abs(sx(value) - sx(0))), height: step - 6, fill: COLORS[i % COLORS.length] }),
          svg('text', { x: Math.max(sx(value), sx(0)) + 4, y: y + 15, class: 'tick' }, short(value))));
      });
    } else {
      const H = 240;
      const bottom = 48;
      const w = Math.max(8, Math.min(60, 760 / Math.max(1, bars.length)));
      const W = Math.max(800, 40 + bars.length * w);
      this.plot.setAttribute('viewBox', `0 0 ${W} ${H}`);
      const sy = (v) => H - bottom - ((v - min) / ((max - min) || 1)) * (H - bottom - 16);
      bars.forEach(([label, value], i) => {
        const x = 40 + i * w;
        const y0 = sy(Math.max(0, value));
        this.plot.append(svg('g', { class: 'bar', 'data-label': label, 'data-value': value },
          svg('title', {}, `${label}: ${formatValue(value, this.valueCol)}`),
          svg('rect', { x: x + 2, y: y0, width: w - 4, height: Math.max(1, Math.abs(sy(value) - sy(0))), fill: COLORS[i % COLORS.length] }),
          svg('text', { x: x + w / 2, y: y0 - 3, 'text-anchor': 'middle', class: 'tick' }, short(value)),
          svg('text', { x: x + w / 2, y: H - bottom + 14, 'text-anchor': 'middle', class: 'tick' }, label.length > 12 ? `${label.slice(0, 11)}…` : label)));
      });
    }
    this.plot.setAttribute('aria-label', `${this.name}: ${bars.map(([l, v]) => `${l} ${formatValue(v, this.valueCol)}`).join(', ')}`);
  }
}

// StatChart: `stat {value}`; one big number, the last row's value.
export class StatWidget {
  constructor(name, columns, spec) {
    const valueName = (spec.stat && spec.stat.value) || spec.value;
    this.name = name;
    this.index = column(columns, valueName);
    this.col = columns[this.index];
    this.valueName = valueName;
    this.output = h('output', { class: 'stat-value' }, '—');
    this.element = frame('stat', name, this.output, h('p', { class: 'muted' }, valueName || ''));
  }

  addRows(rows) {
    if (rows.length > 0 && this.index >= 0) {
      this.last = rows[rows.length - 1][this.index];
      schedule(this);
    }
  }

  render() {
    this.output.textContent = formatValue(this.last, this.col);
    this.output.dataset.value = String(this.last);
  }
}

// HistogramChart: `histogram {value, maxbins, minstep, prebinCount}`: the values of `value` counted into at
// most `maxbins` bins of equal width (no narrower than `minstep`); with `prebinCount`, each row's `value` is
// a bin's start and that column its count, as Pixie's scripts that bin in PxL send them.
export class HistogramWidget {
  constructor(name, columns, spec) {
    const hist = spec.histogram || {};
    this.name = name;
    this.valueCol = columns[column(columns, hist.value)];
    this.value = column(columns, hist.value);
    this.count = column(columns, hist.prebinCount);
    this.maxbins = Math.max(1, Math.min(MAX_BARS, Math.floor(Number(hist.maxbins)) || 30));
    this.minstep = Math.max(0, Number(hist.minstep) || 0);
    this.points = [];
    this.plot = svg('svg', { role: 'img', class: 'chart bars histogram' });
    this.element = frame('histogram', name, this.plot);
  }

  addRows(rows) {
    if (this.value < 0) return;
    for (const row of rows) {
      const value = Number(row[this.value]);
      const count = this.count >= 0 ? Number(row[this.count]) : 1;
      if (Number.isFinite(value) && Number.isFinite(count)) this.points.push([value, count]);
    }
    schedule(this);
  }

  // [from, to, count] per bin, lowest first.
  bins() {
    if (this.points.length === 0) return [];
    let lo = Infinity;
    let hi = -Infinity;
    for (const [v] of this.points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    let step = Math.max((hi - lo) / this.maxbins, this.minstep);
    if (!(step > 0)) step = 1;
    const n = Math.max(1, Math.min(this.maxbins, Math.floor((hi - lo) / step) + 1));
    const counts = new Array(n).fill(0);
    for (const [v, c] of this.points) counts[Math.min(n - 1, Math.floor((v - lo) / step))] += c;
    return counts.map((c, i) => [lo + i * step, lo + (i + 1) * step, c]);
  }

  render() {
    const bins = this.bins();
    const H = 240;
    const bottom = 40;
    const W = 800;
    const w = (W - 60) / Math.max(1, bins.length);
    const max = Math.max(1, ...bins.map((b) => b[2]));
    this.plot.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.plot.replaceChildren();
    bins.forEach(([from, to, count], i) => {
      const x = 40 + i * w;
      const height = (count / max) * (H - bottom - 16);
      this.plot.append(svg('g', { class: 'bin', 'data-from': from, 'data-to': to, 'data-count': count },
        svg('title', {}, `${formatValue(from, this.valueCol)} – ${formatValue(to, this.valueCol)}: ${count}`),
        svg('rect', { x: x + 1, y: H - bottom - height, width: Math.max(1, w - 2), height: Math.max(count ? 1 : 0, height), fill: COLORS[0] }),
        svg('text', { x: x + w / 2, y: H - bottom - height - 3, 'text-anchor': 'middle', class: 'tick' }, short(count)),
        ...(i % Math.ceil(bins.length / 10) === 0 ? [svg('text', { x, y: H - bottom + 14, class: 'tick' }, short(from))] : [])));
    });
    this.plot.setAttribute('aria-label', `${this.name}: histogram of ${this.points.length} rows in ${bins.length} bins`);
  }
}

// PieChart: `label`, `value`: one slice per label, the values of rows with the same label summed (the
// largest slices, the rest as one "other").
export class PieWidget {
  constructor(name, columns, spec) {
    this.name = name;
    this.valueCol = columns[column(columns, spec.value)];
    this.value = column(columns, spec.value);
    this.label = column(columns, spec.label);
    this.totals = new Map();
    this.plot = svg('svg', { role: 'img', class: 'chart pie', viewBox: '0 0 800 260' });
    this.element = frame('pie', name, this.plot);
  }

  addRows(rows) {
    if (this.value < 0) return;
    for (const row of rows) {
      const value = Number(row[this.value]);
      if (!Number.isFinite(value) || value <= 0) continue;
      const label = this.label >= 0 ? String(row[this.label]) : this.name;
      this.totals.set(label, (this.totals.get(label) || 0) + value);
    }
    schedule(this);
  }

  slices() {
    const all = [...this.totals].sort((a, b) => b[1] - a[1]);
    if (all.length <= MAX_SLICES) return all;
    const rest = all.slice(MAX_SLICES - 1).reduce((sum, [, v]) => sum + v, 0);
    return [...all.slice(0, MAX_SLICES - 1), ['other', rest]];
  }

  render() {
    const slices = this.slices();
    const total = slices.reduce((sum, [, v]) => sum + v, 0) || 1;
    const [cx, cy, r] = [130, 130, 110];
    this.plot.replaceChildren();
    let angle = -Math.PI / 2;
    slices.forEach(([label, value], i) => {
      const share = value / total;
      const next = angle + share * 2 * Math.PI;
      const color = COLORS[i % COLORS.length];
      const point = (a) => `${cx + r * Math.cos(a)} ${cy + r * Math.sin(a)}`;
      // A whole circle cannot be one arc: two halves.
      const d = share >= 0.9999
        ? `M ${point(angle)} A ${r} ${r} 0 1 1 ${point(angle + Math.PI)} A ${r} ${r} 0 1 1 ${point(angle)} Z`
        : `M ${cx} ${cy} L ${point(angle)} A ${r} ${r} 0 ${share > 0.5 ? 1 : 0} 1 ${point(next)} Z`;
      this.plot.append(svg('g', { class: 'slice', 'data-label': label, 'data-value': value },
        svg('title', {}, `${label}: ${formatValue(value, this.valueCol)} (${(share * 100).toFixed(1)}%)`),
        svg('path', { d, fill: color }),
        svg('rect', { x: 290, y: 14 + i * 20, width: 12, height: 12, fill: color }),
        svg('text', { x: 308, y: 25 + i * 20, class: 'tick' },
          `${label.length > 40 ? `${label.slice(0, 39)}…` : label}: ${short(value)} (${(share * 100).toFixed(1)}%)`)));
      angle = next;
    });
    this.plot.setAttribute('aria-label', `${this.name}: ${slices.map(([l, v]) => `${l} ${formatValue(v, this.valueCol)}`).join(', ')}`);
  }
}

// GaugeChart: `value`: the last row's value on a half dial, full at 100% for a percentage and at the
// largest value seen otherwise.
export class GaugeWidget {
  constructor(name, columns, spec) {
    this.name = name;
    this.index = column(columns, spec.value);
    this.col = columns[this.index];
    this.max = 0;
    this.dial = svg('svg', { role: 'img', class: 'chart gauge', viewBox: '0 0 200 120' });
    this.output = h('output', { class: 'stat-value' }, '—');
    this.element = frame('gauge', name, this.dial, this.output);
  }

  addRows(rows) {
    if (rows.length === 0 || this.index < 0) return;
    for (const row of rows) this.max = Math.max(this.max, Math.abs(Number(row[this.index])) || 0);
    this.last = rows[rows.length - 1][this.index];
    schedule(this);
  }

  render() {
    const value = Number(this.last);
    const full = this.col && this.col.semantic_type === 'ST_PERCENT' ? 1 : (this.max || 1);
    const share = Number.isFinite(value) ? Math.max(0, Math.min(1, value / full)) : 0;
    const arc = (to) => {
      const a = Math.PI * (1 - to);
      return `M 20 100 A 80 80 0 0 1 ${100 + 80 * Math.cos(a)} ${100 - 80 * Math.sin(a)}`;
    };
    this.dial.replaceChildren(
      svg('path', { d: arc(1), class: 'gauge-track', fill: 'none', stroke: '#444', 'stroke-width': 16 }),
      svg('path', { d: arc(share), class: 'gauge-value', fill: 'none', stroke: COLORS[0], 'stroke-width': 16, 'data-share': share }));
    this.output.textContent = formatValue(this.last, this.col);
    this.output.dataset.value = String(this.last);
    this.dial.setAttribute('aria-label', `${this.name}: ${this.output.textContent}`);
  }
}

// TextChart: `body`, Markdown the spec's author wrote, shown as text: a `#` line as a heading, other lines
// as paragraphs (blank lines between them), never as markup. It has no data.
export function textWidget(name, spec) {
  const blocks = String((spec && spec.body) || '').split(/\n\s*\n/).map((b) => b.trim()).filter(Boolean);
  const body = blocks.map((b) => {
    const heading = /^(#{1,6})\s+(.*)$/s.exec(b);
    return heading ? h('h3', {}, heading[2]) : h('p', {}, b.replace(/\s*\n\s*/g, ' '));
  });
  return { element: frame('text', name || 'text', h('div', { class: 'text-body' }, ...body)) };
}

// Graph (`adjacencyList {fromColumn, toColumn}`, edge and node weight and edge colour columns) and
// RequestGraph (requestor and responder service or pod columns, request rate, error rate, latencies): nodes
// in layers from the sources, edges as arrows whose width follows the weight and whose colour follows
// `edgeThresholds` (or the error rate).
export class GraphWidget {
  constructor(name, columns, spec, request) {
    const pick = (...names) => names.map((n) => column(columns, spec[n])).find((i) => i >= 0) ?? -1;
    this.name = name;
    this.columns = columns;
    if (request) {
      this.from = pick('requestorServiceColumn', 'requestorPodColumn', 'requestorIPColumn');
      this.to = pick('responderServiceColumn', 'responderPodColumn', 'responderIPColumn');
      this.weight = pick('requestsPerSecondColumn', 'totalRequestCountColumn');
      this.color = pick('errorRateColumn');
      this.thresholds = { medium: 0.01, high: 0.05 };
      this.hover = ['requestsPerSecondColumn', 'errorRateColumn', 'p50Column', 'p99Column', 'totalRequestCountColumn']
        .map((n) => column(columns, spec[n])).filter((i) => i >= 0);
    } else {
      const adjacency = spec.adjacencyList || {};
      this.from = column(columns, adjacency.fromColumn);
      this.to = column(columns, adjacency.toColumn);
      this.weight = column(columns, spec.edgeWeightColumn);
      this.color = column(columns, spec.edgeColorColumn);
      const t = spec.edgeThresholds || {};
      this.thresholds = { medium: Number(t.mediumThreshold ?? Infinity), high: Number(t.highThreshold ?? Infinity) };
      this.hover = (spec.edgeHoverInfo || []).map((n) => column(columns, n)).filter((i) => i >= 0);
    }
    this.edges = new Map();
    this.plot = svg('svg', { role: 'img', class: 'chart graph' });
    this.note = h('p', { class: 'muted note' });
    this.element = frame('graph', name, this.plot, this.note);
  }

  addRows(rows) {
    if (this.from < 0 || this.to < 0) return;
    for (const row of rows) {
      const from = String(row[this.from] ?? '');
      const to = String(row[this.to] ?? '');
      if (!from || !to) continue;
      const key = `${from}\u0000${to}`;
      const edge = this.edges.get(key) || { from, to, weight: 0, color: null, hover: [] };
      edge.weight += this.weight >= 0 ? Number(row[this.weight]) || 0 : 1;
      if (this.color >= 0) edge.color = Number(row[this.color]);
      edge.hover = this.hover.map((i) => `${this.columns[i].name}: ${formatValue(row[i], this.columns[i])}`);
      this.edges.set(key, edge);
    }
    schedule(this);
  }

  // Layers by longest path from a source (a node nothing points to); cycles fall into the next free layer.
  layout(nodes, edges) {
    const incoming = new Map(nodes.map((n) => [n, 0]));
    const out = new Map(nodes.map((n) => [n, []]));
    for (const e of edges) {
      if (e.from === e.to) continue;
      incoming.set(e.to, incoming.get(e.to) + 1);
      out.get(e.from).push(e.to);
    }
    const layer = new Map();
    let queue = nodes.filter((n) => incoming.get(n) === 0);
    if (queue.length === 0) queue = [nodes[0]];
    queue.forEach((n) => layer.set(n, 0));
    // Each node moves right at most once per node: a bounded longest-path pass that cycles cannot loop.
    for (let pass = 0; pass < nodes.length && queue.length > 0; pass += 1) {
      const next = [];
      for (const n of queue) {
        for (const m of out.get(n)) {
          if (!layer.has(m) || layer.get(m) < layer.get(n) + 1) {
            layer.set(m, layer.get(n) + 1);
            next.push(m);
          }
        }
      }
      queue = [...new Set(next)];
    }
    for (const n of nodes) if (!layer.has(n)) layer.set(n, 0);
    return layer;
  }

  render() {
    let edges = [...this.edges.values()];
    let nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
    const allNodes = nodes.length;
    if (nodes.length > MAX_NODES) {
      const weight = new Map();
      for (const e of edges) for (const n of [e.from, e.to]) weight.set(n, (weight.get(n) || 0) + e.weight);
      nodes = nodes.sort((a, b) => weight.get(b) - weight.get(a)).slice(0, MAX_NODES).sort();
      const kept = new Set(nodes);
      edges = edges.filter((e) => kept.has(e.from) && kept.has(e.to));
    }
    this.note.textContent = allNodes > MAX_NODES ? `The ${MAX_NODES} busiest of ${allNodes} nodes.` : '';
    this.plot.replaceChildren();
    if (nodes.length === 0) return;
    const layer = this.layout(nodes, edges);
    const layers = Math.max(...layer.values()) + 1;
    const byLayer = Array.from({ length: layers }, () => []);
    for (const n of nodes) byLayer[layer.get(n)].push(n);
    const rowsMax = Math.max(...byLayer.map((l) => l.length));
    const W = Math.max(800, layers * 220);
    const H = Math.max(120, rowsMax * 60 + 20);
    const pos = new Map();
    byLayer.forEach((list, i) => list.forEach((n, j) => pos.set(n, {
      x: 90 + (layers === 1 ? (W - 180) / 2 : (i * (W - 180)) / (layers - 1)),
      y: (H * (j + 1)) / (list.length + 1),
    })));
    this.plot.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const maxWeight = Math.max(...edges.map((e) => e.weight)) || 1;
    this.plot.append(svg('defs', {}, ...['ok', 'medium', 'high'].map((level) =>
      svg('marker', { id: `arrow-${level}`, viewBox: '0 0 10 10', refX: 10, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 10, markerHeight: 10, orient: 'auto-start-reverse', class: `edge-${level}` },
        svg('path', { d: 'M0,0L10,5L0,10z' })))));
    for (const e of edges) {
      const a = pos.get(e.from);
      const b = pos.get(e.to);
      const level = e.color === null || !Number.isFinite(e.color) ? 'ok'
        : e.color >= this.thresholds.high ? 'high' : e.color >= this.thresholds.medium ? 'medium' : 'ok';
      // Stop short of the target's circle, so the arrow head shows.
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const len = Math.hypot(dx, dy) || 1;
      const d = e.from === e.to
        ? `M${a.x - 8},${a.y - 12}C${a.x - 40},${a.y - 60} ${a.x + 40},${a.y - 60} ${a.x + 8},${a.y - 12}`
        : `M${a.x + (dx / len) * 14},${a.y + (dy / len) * 14}L${b.x - (dx / len) * 16},${b.y - (dy / len) * 16}`;
      this.plot.append(svg('g', { class: `edge edge-${level}`, 'data-edge': `${e.from} → ${e.to}`, 'data-weight': e.weight },
        svg('title', {}, [`${e.from} → ${e.to}`, ...e.hover].join('\n')),
        svg('path', { d, 'stroke-width': (1 + (4 * e.weight) / maxWeight).toFixed(1), 'marker-end': `url(#arrow-${level})` })));
    }
    for (const n of nodes) {
      const { x, y } = pos.get(n);
      this.plot.append(svg('g', { class: 'node', 'data-node': n },
        svg('title', {}, n),
        svg('circle', { cx: x, cy: y, r: 12 }),
        svg('text', { x, y: y + 28, 'text-anchor': 'middle', class: 'tick' }, n.length > 32 ? `…${n.slice(-31)}` : n)));
    }
    this.plot.setAttribute('aria-label', `${this.name}: ${nodes.length} nodes, ${edges.length} edges: ${edges.map((e) => `${e.from} to ${e.to}`).join(', ')}`);
  }
}

// StackTraceFlameGraph: `stacktraceColumn` (folded frames, root first, joined by `;`) and `countColumn`.
// Each frame is as wide as its samples; click (or Enter on) a frame to zoom into it, Reset to zoom out.
export class FlameGraphWidget {
  constructor(name, columns, spec) {
    this.name = name;
    this.stack = column(columns, spec.stacktraceColumn || 'stack_trace');
    this.count = column(columns, spec.countColumn || 'count');
    this.root = { name: 'all', value: 0, children: new Map() };
    this.focus = [];
    this.plot = svg('svg', { role: 'img', class: 'chart flame' });
    this.reset = h('button', { type: 'button', class: 'reset-zoom', disabled: true, on: { click: () => { this.focus = []; this.render(); } } }, 'Reset zoom');
    this.element = frame('flamegraph', name, this.plot);
    this.element.querySelector('.widget-head').append(this.reset);
  }

  addRows(rows) {
    if (this.stack < 0 || this.count < 0) return;
    for (const row of rows) {
      const count = Number(row[this.count]);
      if (!Number.isFinite(count) || count <= 0) continue;
      let node = this.root;
      node.value += count;
      for (const name of String(row[this.stack] ?? '').split(';').filter((f) => f !== '')) {
        if (!node.children.has(name)) node.children.set(name, { name, value: 0, children: new Map() });
        node = node.children.get(name);
        node.value += count;
      }
    }
    schedule(this);
  }

  render() {
    const W = 1000;
    const ROW = 18;
    // The zoomed frame spans the width; its ancestors stay drawn above it, full width.
    let top = this.root;
    const path = [this.root];
    for (const name of this.focus) {
      const next = top.children.get(name);
      if (!next) break;
      top = next;
      path.push(next);
    }
    this.reset.disabled = path.length === 1;
    const frames = [];
    path.forEach((node, depth) => frames.push({ node, depth, x: 0, w: W, trail: path.slice(1, depth + 1).map((n) => n.name) }));
    const walk = (node, depth, x, w, trail) => {
      let offset = x;
      for (const child of [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const cw = (child.value / node.value) * w;
        // Frames narrower than a pixel are left out (their samples still count in their parents).
        if (cw >= 1) {
          const childTrail = [...trail, child.name];
          frames.push({ node: child, depth, x: offset, w: cw, trail: childTrail });
          walk(child, depth + 1, offset, cw, childTrail);
        }
        offset += cw;
      }
    };
    walk(top, path.length, 0, W, path.slice(1).map((n) => n.name));
    const depth = Math.max(...frames.map((f) => f.depth)) + 1;
    this.plot.setAttribute('viewBox', `0 0 ${W} ${depth * ROW}`);
    this.plot.replaceChildren();
    const total = this.root.value || 1;
    for (const f of frames) {
      const share = ((f.node.value / total) * 100).toFixed(1);
      const label = f.w > 40 ? (f.node.name.length * 7 > f.w - 6 ? `${f.node.name.slice(0, Math.max(1, Math.floor((f.w - 6) / 7) - 1))}…` : f.node.name) : '';
      const zoom = () => { this.focus = f.trail; this.render(); };
      const g = svg('g', { class: 'frame', tabindex: 0, role: 'button', 'data-frame': f.node.name, 'data-depth': f.depth, 'data-samples': f.node.value, 'aria-label': `${f.node.name}: ${f.node.value} samples, ${share}%` },
        svg('title', {}, `${f.node.name}\n${f.node.value} samples (${share}%)`),
        svg('rect', { x: f.x.toFixed(1), y: f.depth * ROW, width: Math.max(0.5, f.w - 1).toFixed(1), height: ROW - 2, fill: flameColor(f.node.name) }),
        svg('text', { x: (f.x + 4).toFixed(1), y: f.depth * ROW + 13, class: 'frame-label' }, label));
      g.addEventListener('click', zoom);
      g.addEventListener('keydown', (event) => { if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); zoom(); } });
      this.plot.append(g);
    }
    this.plot.setAttribute('aria-label', `${this.name}: flamegraph of ${this.root.value} samples${path.length > 1 ? `, zoomed into ${top.name}` : ''}`);
  }
}

// Warm colours, the same for the same frame name.
function flameColor(name) {
  let hash = 0;
  for (let i = 0; i < name.length; i += 1) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  return `hsl(${10 + (hash % 40)}, ${70 + (hash % 20)}%, ${45 + (hash % 15)}%)`;
}

// The widget for a display spec this module draws, or null.
export function makeExtraWidget(type, name, columns, spec) {
  if (type.endsWith('.BarChart')) return new BarWidget(name, columns, spec);
  if (type.endsWith('.StatChart')) return new StatWidget(name, columns, spec);
  if (type.endsWith('.HistogramChart')) return new HistogramWidget(name, columns, spec);
  if (type.endsWith('.PieChart')) return new PieWidget(name, columns, spec);
  if (type.endsWith('.GaugeChart')) return new GaugeWidget(name, columns, spec);
  if (type.endsWith('.RequestGraph')) return new GraphWidget(name, columns, spec, true);
  if (type.endsWith('.Graph')) return new GraphWidget(name, columns, spec, false);
  if (type.endsWith('.StackTraceFlameGraph')) return new FlameGraphWidget(name, columns, spec);
  return null;
}

// The display types this module draws (the live view loads it before a run whose spec names one).
export const EXTRA_TYPES = ['BarChart', 'StatChart', 'HistogramChart', 'PieChart', 'GaugeChart', 'TextChart',
  'RequestGraph', 'Graph', 'StackTraceFlameGraph'];
