// The page router: draws the page for the path, keeps the header, and sends the user to log in (or to change
// their password) first. Links inside the app navigate without reloading.

import { api, clearSession, session, whenExpired } from './api.js';
import { h, replace } from './dom.js';

const DEFAULT_PAGE = '/live/px/http_data';

// [pattern, module, export, needs a session]
const ROUTES = [
  [/^\/login$/, './pages/login.js', 'loginPage', false],
  [/^\/invite$/, './pages/login.js', 'invitePage', false],
  [/^\/password$/, './pages/login.js', 'passwordPage', true],
  [/^\/live\/(.+)$/, './pages/live.js', 'livePage', true],
  [/^\/editor$/, './pages/editor.js', 'editorPage', true],
  [/^\/admin\/(viziers|api-keys|deploy-keys|users)$/, './pages/admin.js', 'adminPage', true],
  [/^\/admin\/cron-scripts$/, './pages/cron.js', 'cronPage', true],
  [/^\/settings$/, './pages/settings.js', 'settingsPage', true],
];

const main = document.getElementById('main');
const top = document.getElementById('top');

export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

// A link that navigates inside the app.
export function link(path, ...children) {
  return h('a', { href: path }, ...children);
}

function header(s) {
  const here = location.pathname;
  const item = (path, label) => h('li', {}, h('a', { href: path, 'aria-current': here.startsWith(path) ? 'page' : null }, label));
  replace(top,
    h('nav', { 'aria-label': 'Main' },
      h('a', { href: DEFAULT_PAGE, class: 'brand' }, 'Loupe'),
      h('ul', {},
        item('/live/', 'Live'),
        item('/editor', 'Editor'),
        item('/admin/viziers', 'Viziers'),
        item('/admin/api-keys', 'API keys'),
        item('/admin/deploy-keys', 'Deploy keys'),
        item('/admin/users', 'Users'),
        item('/admin/cron-scripts', 'Cron scripts'),
        item('/settings', 'Settings')),
      h('span', { class: 'who' }, h('span', { id: 'who' }, s.user.email), ' · ', h('span', {}, s.org.name)),
      h('button', { type: 'button', id: 'logout', on: { click: logout } }, 'Log out')));
  top.hidden = false;
}

async function logout() {
  try {
    await api('POST', '/api/v1/auth/logout');
  } catch {
    // The session is dropped here whatever the server says: it may already have ended.
  }
  clearSession();
  navigate('/login');
}

let expiryTimer = null;
// Each render's number: a render that finds a newer one started while it loaded its module stops.
let generation = 0;

async function render() {
  const mine = ++generation;
  const path = location.pathname;
  if (path === '/' || path === '/live' || path === '/live/' || path === '/admin' || path === '/admin/') {
    navigate(path.startsWith('/admin') ? '/admin/viziers' : DEFAULT_PAGE, { replaceState: true });
    return;
  }
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    top.hidden = true;
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. '), link(DEFAULT_PAGE, 'Go to the live view'));
    return;
  }
  const [pattern, module, name, needsSession] = route;
  const s = session();
  if (needsSession && !s) {
    navigate(`/login?next=${encodeURIComponent(path + location.search)}`, { replaceState: true });
    return;
  }
  if (s && s.must_change_password && name !== 'passwordPage' && needsSession) {
    navigate(`/password?next=${encodeURIComponent(path + location.search)}`, { replaceState: true });
    return;
  }
  clearTimeout(expiryTimer);
  if (s) {
    // The page leaves for the login form when the session expires, even if the user does nothing.
    expiryTimer = setTimeout(render, Math.min(2 ** 31 - 1, Math.max(0, s.expires_at * 1000 - Date.now()) + 1000));
  }
  if (needsSession && !s.must_change_password) header(s);
  else top.hidden = true;
  const page = (await import(module))[name];
  if (mine !== generation) return;
  const args = path.match(pattern).slice(1).map(decodeURIComponent);
  replace(main);
  await page(main, { params: new URLSearchParams(location.search), args, navigate });
  const heading = main.querySelector('h1');
  if (heading) document.title = `${heading.textContent} · Loupe`;
}

whenExpired(() => navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`));

document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || a.target || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (a.getAttribute('href').startsWith('#')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);
render();
