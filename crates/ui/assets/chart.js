// The time series widget: an SVG line chart of one value column over `time_`, one line per series, redrawn
// once per frame as rows arrive. Drawn by hand (a few dozen lines) rather than vendored: the SVG is built with
// createElementNS and text nodes only, so no data is ever parsed as markup.

import { h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 800;
const H = 240;
const PAD = { left: 64, right: 16, top: 12, bottom: 28 };
const COLORS = ['#7cc4ff', '#f7a35c', '#90ed7d', '#e4d354', '#f15c80', '#8085e9', '#2b908f', '#f45b5b'];

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// A cell of `time_` as milliseconds: timestamps arrive as RFC 3339 text without a zone (UTC).
function millis(value) {
  if (typeof value === 'number') return value / 1e6;
  const text = String(value);
  return Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
}

export class TimeSeriesWidget {
  constructor(name, columns, { value, series }) {
    this.name = name;
    this.time = columns.findIndex((c) => c.name === 'time_');
    this.value = columns.findIndex((c) => c.name === value);
    this.series = series ? columns.findIndex((c) => c.name === series) : -1;
    this.valueName = value;
    this.points = new Map();
    this.pending = false;
    this.plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart' });
    this.legend = h('ul', { class: 'legend' });
    this.element = h('section', { class: 'widget chart-widget', 'data-chart': name },
      h('div', { class: 'widget-head' }, h('h2', {}, name)), this.plot, this.legend);
  }

  addRows(rows) {
    for (const row of rows) {
      const x = millis(row[this.time]);
      const y = Number(row[this.value]);
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      const key = this.series >= 0 ? String(row[this.series]) : this.valueName;
      if (!this.points.has(key)) this.points.set(key, []);
      this.points.get(key).push([x, y]);
    }
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }
  }

  render() {
    const all = [...this.points.values()].flat();
    this.plot.replaceChildren();
    this.legend.replaceChildren();
    if (all.length === 0) return;
    const xs = all.map((p) => p[0]);
    const ys = all.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
    const [y0, y1] = [Math.min(0, ...ys), Math.max(...ys)];
    const sx = (x) => PAD.left + ((x - x0) / ((x1 - x0) || 1)) * (W - PAD.left - PAD.right);
    const sy = (y) => H - PAD.bottom - ((y - y0) / ((y1 - y0) || 1)) * (H - PAD.top - PAD.bottom);
    this.plot.append(
      svg('line', { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: 'axis' }),
      svg('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: 'axis' }),
      svg('text', { x: PAD.left - 6, y: PAD.top + 10, 'text-anchor': 'end', class: 'tick' }, y1.toPrecision(3)),
      svg('text', { x: PAD.left - 6, y: H - PAD.bottom, 'text-anchor': 'end', class: 'tick' }, y0.toPrecision(3)),
      svg('text', { x: PAD.left, y: H - 8, class: 'tick' }, new Date(x0).toLocaleTimeString()),
      svg('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end', class: 'tick' }, new Date(x1).toLocaleTimeString()));
    let i = 0;
    for (const [key, points] of this.points) {
      const color = COLORS[i % COLORS.length];
      points.sort((a, b) => a[0] - b[0]);
      const d = points.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      this.plot.append(svg('path', { d, stroke: color, class: 'series' }));
      const swatch = svg('svg', { viewBox: '0 0 10 10', class: 'swatch' }, svg('rect', { width: 10, height: 10, fill: color }));
      this.legend.append(h('li', {}, swatch, ` ${key}`));
      i += 1;
    }
    this.plot.setAttribute('aria-label', `${this.name}: ${this.valueName} over time, ${all.length} points, ${this.points.size} series, from ${y0} to ${y1}`);
  }
}
