// The admin pages: viziers (status, version, agents, last heartbeat), API keys and deploy keys (create, shown
// once; revoke), and users (list, invite, remove). The server decides who may do what; a refusal is shown.

import { api, describe, session } from '../api.js';
import { ago, field, h, replace, when } from '../dom.js';

function table(id, headers, rows) {
  return h('div', { class: 'scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, rows)));
}

function row(cells, attrs) {
  return h('tr', attrs || {}, cells.map((c) => h('td', {}, c)));
}

async function viziers(main, error) {
  const list = await api('GET', '/api/v1/viziers');
  main.append(list.length === 0
    ? h('p', { class: 'muted' }, 'No vizier is registered yet: start one with `loupe vizier up` and a deploy key.')
    : table('viziers', ['Name', 'Status', 'Version', 'Agents', 'Last heartbeat', 'Address', ''],
      list.map((v) => row([
        h('a', { href: `/live/px/http_data?vizier=${encodeURIComponent(v.name)}` }, v.name),
        h('span', { class: `status status-${v.status === 'healthy' ? 'ok' : 'bad'}` }, v.status),
        v.version,
        String(v.num_agents),
        v.last_heartbeat_at ? h('time', { datetime: new Date(v.last_heartbeat_at * 1000).toISOString(), title: when(v.last_heartbeat_at) }, ago(v.last_heartbeat_at)) : 'never',
        v.address || '—',
        h('span', { class: 'muted' }, v.id),
      ], { 'data-vizier': v.name }))));
  void error;
}

// API keys and deploy keys share their shape.
async function keys(main, error, kind) {
  const base = kind === 'api' ? '/api/v1/api-keys' : '/api/v1/deploy-keys';
  const noun = kind === 'api' ? 'API key' : 'deploy key';
  const created = h('div', { id: 'created-key', 'aria-live': 'polite' });
  const listing = h('div', { id: 'key-list' });
  const description = field('Description', { id: 'key-description', type: 'text', maxlength: 1024 });

  async function refresh() {
    const list = await api('GET', base);
    replace(listing, list.length === 0 ? h('p', { class: 'muted' }, `No ${noun}s yet.`)
      : table('keys', ['Key', 'Description', 'Created', 'Last used', 'State', ''], list.map((k) => row([
        h('code', {}, `${k.prefix}…`),
        k.description,
        when(k.created_at),
        k.last_used_at ? when(k.last_used_at) : 'never',
        k.revoked_at ? `revoked ${ago(k.revoked_at)}` : 'active',
        k.revoked_at ? '' : h('button', { type: 'button', class: 'danger revoke', 'aria-label': `Revoke ${noun} ${k.prefix}`, on: { click: async () => {
          error.textContent = '';
          try {
            await api('DELETE', `${base}/${encodeURIComponent(k.id)}`);
            await refresh();
          } catch (e) {
            error.textContent = describe(e);
          }
        } } }, 'Revoke'),
      ], { 'data-key': k.prefix, 'data-revoked': k.revoked_at ? 'true' : 'false' }))));
  }

  main.append(h('form', { class: 'toolbar', id: 'create-key-form', on: { submit: async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const k = await api('POST', base, { description: description.querySelector('input').value });
      replace(created, h('p', {}, `New ${noun} (shown once, copy it now): `, h('output', { id: 'new-key' }, k.key)));
      description.querySelector('input').value = '';
      await refresh();
    } catch (e) {
      error.textContent = describe(e);
    }
  } } }, description, h('button', { type: 'submit', id: 'create-key' }, `Create ${noun}`)), created, listing);
  await refresh();
}

async function users(main, error) {
  const me = session();
  const listing = h('div', { id: 'user-list' });
  const invited = h('div', { id: 'invited', 'aria-live': 'polite' });

  async function refresh() {
    const list = await api('GET', '/api/v1/users');
    replace(listing, table('users', ['Email', 'Name', 'Role', ''], list.map((u) => row([
      u.email, u.display_name, u.role,
      u.id === me.user.id ? h('span', { class: 'muted' }, 'you') : h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${u.email}`, on: { click: async () => {
        error.textContent = '';
        try {
          await api('DELETE', `/api/v1/users/${encodeURIComponent(u.id)}`);
          await refresh();
        } catch (e) {
          error.textContent = describe(e);
        }
      } } }, 'Remove'),
    ], { 'data-user': u.email }))));
  }

  const email = field('Email', { id: 'invite-email', type: 'email', required: true });
  const role = h('select', { id: 'invite-role' }, h('option', { value: 'member' }, 'member'), h('option', { value: 'admin' }, 'admin'));
  main.append(h('form', { class: 'toolbar', id: 'invite-form', on: { submit: async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const inv = await api('POST', '/api/v1/invitations', { email: email.querySelector('input').value, role: role.value });
      const url = `${location.origin}${inv.invite_url_path}`;
      replace(invited, h('p', {}, `Invitation for ${inv.email} (shown once): `, h('output', { id: 'invite-url' }, url)));
    } catch (e) {
      error.textContent = describe(e);
    }
  } } }, email, h('div', { class: 'field' }, h('label', { for: 'invite-role' }, 'Role'), role), h('button', { type: 'submit' }, 'Invite')), invited, listing);
  await refresh();
}

const PAGES = {
  viziers: ['Viziers', viziers],
  'api-keys': ['API keys', (m, e) => keys(m, e, 'api')],
  'deploy-keys': ['Deploy keys', (m, e) => keys(m, e, 'deploy')],
  users: ['Users', users],
};

export async function adminPage(main, { args }) {
  const [title, draw] = PAGES[args[0]];
  const error = h('p', { id: 'page-error', class: 'error', role: 'alert' });
  main.append(h('h1', {}, title), error);
  try {
    await draw(main, error);
  } catch (e) {
    error.textContent = describe(e);
  }
}
