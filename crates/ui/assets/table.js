// The table widget: a result table that grows as rows stream in, sortable by any column (click or Enter on
// its header), filtered by a search box, and paged, so 10,000 rows stay responsive (only one page is in the
// DOM). Every cell is text.

import { h, replace } from './dom.js';

const PAGE = 100;

// How a cell reads, by the column's semantic type.
function format(value, column) {
  if (value === null || value === undefined) return '';
  if (column.semantic_type === 'ST_DURATION_NS' && typeof value === 'number') {
    if (value >= 1e9) return `${(value / 1e9).toFixed(2)} s`;
    if (value >= 1e6) return `${(value / 1e6).toFixed(2)} ms`;
    if (value >= 1e3) return `${(value / 1e3).toFixed(1)} µs`;
    return `${value} ns`;
  }
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export class TableWidget {
  constructor(name, columns, { links } = {}) {
    this.name = name;
    this.columns = columns;
    this.rows = [];
    this.sort = null; // {index, descending}
    this.filter = '';
    this.page = 0;
    this.links = links || {};
    this.pending = false;
    const id = `t-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    this.count = h('span', { class: 'muted count', 'aria-live': 'polite' }, '0 rows');
    this.filterInput = h('input', {
      type: 'search',
      id: `${id}-filter`,
      class: 'filter',
      placeholder: 'filter rows',
      on: { input: () => { this.filter = this.filterInput.value.toLowerCase(); this.page = 0; this.render(); } },
    });
    this.head = h('tr');
    this.body = h('tbody');
    this.pager = h('div', { class: 'pager' });
    this.element = h('section', { class: 'widget table-widget', 'data-table': name, 'aria-labelledby': `${id}-title` },
      h('div', { class: 'widget-head' },
        h('h2', { id: `${id}-title` }, name),
        this.count,
        h('label', { for: `${id}-filter`, class: 'visually-hidden' }, `Filter ${name}`),
        this.filterInput),
      h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, this.head), this.body)),
      this.pager);
    this.drawHead();
  }

  drawHead() {
    replace(this.head, this.columns.map((column, index) => {
      const sorted = this.sort && this.sort.index === index;
      const direction = sorted ? (this.sort.descending ? 'descending' : 'ascending') : 'none';
      return h('th', { scope: 'col', 'aria-sort': direction },
        h('button', { type: 'button', class: 'sort', on: { click: () => this.sortBy(index) } },
          column.name, sorted ? (this.sort.descending ? ' ▼' : ' ▲') : ''));
    }));
  }

  sortBy(index) {
    const descending = this.sort && this.sort.index === index ? !this.sort.descending : false;
    this.sort = { index, descending };
    this.sorted = null;
    this.page = 0;
    this.drawHead();
    this.render();
    this.head.children[index].querySelector('button').focus();
  }

  // Adds rows; the page is redrawn once per frame however many batches arrive.
  addRows(rows) {
    for (const row of rows) this.rows.push(row);
    this.sorted = null;
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.render(); });
    }
  }

  visible() {
    if (!this.sorted) {
      const rows = this.rows.slice();
      if (this.sort) {
        const { index, descending } = this.sort;
        rows.sort((a, b) => (descending ? -1 : 1) * compare(a[index], b[index]));
      }
      this.sorted = rows;
    }
    if (!this.filter) return this.sorted;
    return this.sorted.filter((row) => row.some((v, i) => format(v, this.columns[i]).toLowerCase().includes(this.filter)));
  }

  render() {
    const rows = this.visible();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const shown = rows.slice(this.page * PAGE, (this.page + 1) * PAGE);
    replace(this.body, shown.map((row) => h('tr', {}, row.map((value, i) => this.cell(value, i)))));
    const total = this.rows.length;
    this.count.textContent = rows.length === total ? `${total} rows` : `${rows.length} of ${total} rows`;
    replace(this.pager,
      h('button', { type: 'button', disabled: this.page === 0, on: { click: () => { this.page -= 1; this.render(); } } }, 'Previous'),
      h('span', { class: 'muted' }, ` page ${this.page + 1} of ${pages} `),
      h('button', { type: 'button', disabled: this.page >= pages - 1, on: { click: () => { this.page += 1; this.render(); } } }, 'Next'));
  }

  cell(value, index) {
    const column = this.columns[index];
    const text = format(value, column);
    const td = h('td', { title: text.length > 60 ? text : null, 'data-column': column.name });
    const link = this.links[column.name];
    if (link && value !== null && value !== '') {
      td.append(h('a', { href: link(value) }, text));
    } else {
      td.textContent = text;
    }
    if (typeof value === 'number') td.className = 'num';
    return td;
  }
}
