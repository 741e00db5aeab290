// Login, the password change a new account must make first, and accepting an invitation.

import { api, describe, saveSession, session, takeExpired } from '../api.js';
import { field, h } from '../dom.js';

// Where to go after logging in: the `next` parameter if it is a path of this app, else the live view.
function next(params) {
  const target = params.get('next') || '';
  return /^\/(?!\/)[^\\]*$/.test(target) && !target.startsWith('/login') ? target : '/live/px/http_data';
}

function errorLine() {
  return h('p', { id: 'form-error', class: 'error', role: 'alert' });
}

export async function loginPage(main, { params, navigate }) {
  const error = errorLine();
  const email = h('input', { id: 'email', type: 'email', name: 'email', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', id: 'login' }, 'Log in');
  if (takeExpired()) error.textContent = 'Your session has expired. Log in again.';
  const form = h('form', { class: 'card', id: 'login-form', 'aria-labelledby': 'login-title', on: { submit: async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    try {
      const s = await api('POST', '/api/v1/auth/login', { email: email.value, password: password.value });
      saveSession(s);
      navigate(s.must_change_password ? `/password?next=${encodeURIComponent(next(params))}` : next(params), { replaceState: true });
    } catch (e) {
      error.textContent = describe(e);
      password.select();
    } finally {
      submit.disabled = false;
    }
  } } },
    h('h1', { id: 'login-title' }, 'Log in to Loupe'),
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    submit,
    error);
  main.append(form);
  email.focus();
}

export async function passwordPage(main, { params, navigate }) {
  const s = session();
  const error = errorLine();
  const current = field('Current password', { id: 'current-password', type: 'password', autocomplete: 'current-password', required: true });
  const fresh = field('New password', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
  const confirm = field('Confirm new password', { id: 'confirm-password', type: 'password', autocomplete: 'new-password', required: true });
  const value = (f) => f.querySelector('input').value;
  const submit = h('button', { type: 'submit', id: 'change-password' }, 'Change password');
  const form = h('form', { class: 'card', id: 'password-form', 'aria-labelledby': 'password-title', on: { submit: async (event) => {
    event.preventDefault();
    error.textContent = '';
    if (value(fresh) !== value(confirm)) {
      error.textContent = 'The new passwords do not match.';
      confirm.querySelector('input').focus();
      return;
    }
    submit.disabled = true;
    try {
      const changed = await api('POST', '/api/v1/auth/password', { current_password: value(current), new_password: value(fresh) });
      saveSession(changed);
      navigate(next(params), { replaceState: true });
    } catch (e) {
      error.textContent = describe(e);
    } finally {
      submit.disabled = false;
    }
  } } },
    h('h1', { id: 'password-title' }, 'Change your password'),
    s && s.must_change_password ? h('p', { id: 'must-change' }, 'This is your first login: choose a new password to continue.') : null,
    current, fresh, confirm, submit, error);
  main.append(form);
  current.querySelector('input').focus();
}

export async function invitePage(main, { params, navigate }) {
  const error = errorLine();
  const name = field('Your name', { id: 'display-name', type: 'text', autocomplete: 'name' });
  const password = field('Password', { id: 'new-password', type: 'password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Join');
  main.append(h('form', { class: 'card', 'aria-labelledby': 'invite-title', on: { submit: async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      const s = await api('POST', '/api/v1/invitations/accept', {
        token: params.get('token') || '',
        display_name: name.querySelector('input').value,
        password: password.querySelector('input').value,
      });
      saveSession(s);
      navigate('/live/px/http_data', { replaceState: true });
    } catch (e) {
      error.textContent = describe(e);
    }
  } } }, h('h1', { id: 'invite-title' }, 'Accept your invitation'), name, password, submit, error));
}
