// DOM helpers. Everything that reaches the page goes through `h` and `text`: data becomes text nodes and
// attribute values, never markup, so captured traffic (attacker-written) cannot add elements or run script.

// Properties set as properties, not attributes (their live value matters).
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'readOnly', 'required']);

// h('button', {type: 'submit', on: {click: f}}, 'Run'): an element with attributes, listeners and children.
// Children are nodes, or anything else, which becomes text. Attributes named on* are refused: listeners go
// through `on`, and the policy forbids inline handlers anyway.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'on') {
      for (const [event, listener] of Object.entries(value)) el.addEventListener(event, listener);
    } else if (key === 'class') {
      el.className = value;
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else if (/^on/i.test(key)) {
      throw new Error(`refusing inline handler attribute ${key}`);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

// Appends children (nested arrays allowed), turning non-nodes into text.
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Replaces an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A labelled form field: <div class="field"><label for=id>label</label><input id=id ...></div>.
export function field(label, attrs, tag = 'input') {
  const input = h(tag, attrs);
  return h('div', { class: 'field' }, h('label', { for: attrs.id }, label), input);
}

// `seconds` (Unix) as a local date and time, and how long ago.
export function when(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const date = new Date(seconds * 1000);
  return `${date.toLocaleString()} (${ago(seconds)})`;
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
