// Settings, /settings: the caller's profile and org (read-only, as the API exposes them), a password change,
// and the caller's own settings (key → value, `/api/v1/users/me/settings`).

import { api, describe, saveSession } from '../api.js';
import { field, h, replace, when } from '../dom.js';

function facts(id, pairs) {
  return h('dl', { class: 'facts', id }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v)]));
}

export async function settingsPage(main) {
  const error = h('p', { id: 'page-error', class: 'error', role: 'alert' });
  const profile = h('section', { id: 'profile' }, h('h2', {}, 'Profile'));
  const org = h('section', { id: 'org' }, h('h2', {}, 'Organization'));

  const passwordStatus = h('p', { id: 'password-status', role: 'status', class: 'muted' });
  const current = field('Current password', { id: 'settings-current-password', type: 'password', autocomplete: 'current-password', required: true });
  const fresh = field('New password', { id: 'settings-new-password', type: 'password', autocomplete: 'new-password', required: true });
  const confirm = field('Confirm new password', { id: 'settings-confirm-password', type: 'password', autocomplete: 'new-password', required: true });
  const value = (f) => f.querySelector('input').value;
  const password = h('form', { id: 'settings-password-form', class: 'narrow', on: { submit: async (event) => {
    event.preventDefault();
    error.textContent = '';
    passwordStatus.textContent = '';
    if (value(fresh) !== value(confirm)) {
      error.textContent = 'The new passwords do not match.';
      return;
    }
    try {
      // The change ends every other session and answers a new one for this tab.
      saveSession(await api('POST', '/api/v1/auth/password', { current_password: value(current), new_password: value(fresh) }));
      for (const f of [current, fresh, confirm]) f.querySelector('input').value = '';
      passwordStatus.textContent = 'Password changed.';
    } catch (e) {
      error.textContent = describe(e);
    }
  } } }, h('h2', {}, 'Change password'), current, fresh, confirm, h('button', { type: 'submit', id: 'settings-change-password' }, 'Change password'), passwordStatus);

  const listing = h('div', { id: 'settings-list' });
  const key = field('Key', { id: 'setting-key', type: 'text', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}', maxlength: 64 });
  const val = field('Value', { id: 'setting-value', type: 'text', maxlength: 4096 });
  const draw = (settings) => {
    const entries = Object.entries(settings.settings || {});
    replace(listing, entries.length === 0 ? h('p', { class: 'muted' }, 'No settings yet.')
      : h('table', { id: 'settings' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col' }, 'Value'))),
        h('tbody', {}, entries.map(([k, v]) => h('tr', { 'data-setting': k }, h('td', {}, k), h('td', {}, v))))));
  };
  const mine = h('section', { id: 'user-settings' }, h('h2', {}, 'Your settings'),
    h('form', { class: 'toolbar', id: 'setting-form', on: { submit: async (event) => {
      event.preventDefault();
      error.textContent = '';
      try {
        draw(await api('PUT', '/api/v1/users/me/settings', { settings: { [value(key)]: value(val) } }));
        key.querySelector('input').value = '';
        val.querySelector('input').value = '';
      } catch (e) {
        error.textContent = describe(e);
      }
    } } }, key, val, h('button', { type: 'submit', id: 'save-setting' }, 'Save')), listing);

  main.append(h('h1', {}, 'Settings'), error, h('div', { class: 'settings-grid' }, profile, org), password, mine);
  try {
    const [me, theOrg, settings] = await Promise.all([
      api('GET', '/api/v1/auth/me'), api('GET', '/api/v1/org'), api('GET', '/api/v1/users/me/settings')]);
    profile.append(facts('profile-facts', [['Email', me.user.email], ['Name', me.user.display_name || '—'], ['Role', me.user.role]]));
    org.append(facts('org-facts', [['Name', theOrg.name], ['Id', theOrg.id], ['Created', when(theOrg.created_at)]]));
    draw(settings);
  } catch (e) {
    error.textContent = describe(e);
  }
}
