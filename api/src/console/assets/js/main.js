// The console's start: language, who is signed in, then the page for the
// current path. Pages load on demand so each first load stays small.

import { html, render, useEffect, useRef, useState } from '../vendor/htm-preact-standalone.module.js';
import { api, onSession } from './api.js';
import { initLang, t } from './i18n.js';
import { here, navigate, onNavigate } from './router.js';
import { Session, isAdmin } from './context.js';
import { Shell } from './components/shell.js';

/** Top-level paths: the page module, and who may open it. */
const ROUTES = {
  '': { page: 'dashboard', who: 'user' },
  tokens: { page: 'tokens', who: 'user' },
  connect: { page: 'connect', who: 'user' },
  logs: { page: 'logs', who: 'user' },
  password: { page: 'password', who: 'user' },
  keys: { page: 'keys', who: 'admin' },
  channels: { page: 'channels', who: 'admin' },
  fallbacks: { page: 'fallbacks', who: 'admin' },
  users: { page: 'users', who: 'admin' },
  invites: { page: 'invites', who: 'admin' },
  prices: { page: 'prices', who: 'admin' },
  audit: { page: 'audit', who: 'admin' },
  admins: { page: 'admins', who: 'root' },
  login: { page: 'login', who: 'anyone' },
  invite: { page: 'invite', who: 'anyone' },
  reset: { page: 'reset', who: 'anyone' },
};

function route(path) {
  const parts = path.split('/').filter(Boolean);
  const r = ROUTES[parts[0] || ''];
  return r ? { ...r, rest: parts.slice(1) } : { page: 'notfound', who: 'anyone', rest: [] };
}

const modules = {};
/** The module of page `name`, loaded on first use; never another page's while it loads. */
function usePage(name) {
  const [, setLoaded] = useState(0);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    if (modules[name]) return undefined;
    let live = true;
    import(`./pages/${name}.js`)
      .then((m) => {
        modules[name] = m;
        if (live) setLoaded((n) => n + 1);
      })
      .catch((e) => live && setFailed(String(e)));
    return () => {
      live = false;
    };
  }, [name]);
  return [modules[name] || null, failed];
}

function Refused({ root }) {
  return html`
    <section class="refused" aria-labelledby="refused-title">
      <h1 id="refused-title">${t('refused.title')}</h1>
      <p role="alert">${root ? t('refused.root') : t('refused.admin')}</p>
      <p><a href="/">${t('refused.back')}</a></p>
    </section>`;
}

function App({ initial }) {
  const [loc, setLoc] = useState(here);
  const [user, setUser] = useState(initial.user);
  const [mustChange, setMustChange] = useState(initial.mustChange);
  const [instance, setInstance] = useState(initial.instance);
  const [, setLangTick] = useState(0);

  useEffect(() => onNavigate(() => setLoc(here())), []);
  // After a navigation, keyboard and screen-reader users start at the new
  // page's content, as they would after a full page load.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const main = document.getElementById('main');
    if (main && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
  }, [loc.path]);
  useEffect(() => {
    onSession({
      signedOut: () => {
        setUser(null);
        setMustChange(false);
        const cur = location.pathname + location.search;
        if (!route(location.pathname).who.startsWith('anyone')) {
          navigate(`/login?next=${encodeURIComponent(cur)}`, { replace: true });
        }
      },
      mustChange: () => {
        setMustChange(true);
        navigate('/password', { replace: true });
      },
    });
  }, []);

  const r = route(loc.path);
  const signedIn = !!user || mustChange;
  const forced = mustChange || (user && user.must_change_password);

  // Send people where they may be: signed-out visitors to sign in, a forced
  // password change before anything else.
  let redirect = null;
  if (r.who !== 'anyone' && !signedIn) redirect = `/login?next=${encodeURIComponent(loc.path + location.search)}`;
  else if (forced && r.who !== 'anyone' && r.page !== 'password') redirect = '/password';
  useEffect(() => {
    if (redirect) navigate(redirect, { replace: true });
  }, [redirect]);

  const [mod, failed] = usePage(r.page);

  const session = {
    user,
    instance,
    forced,
    /** After a sign-in, an accepted invite or a password change. */
    async signedIn(body) {
      setUser(body.user);
      setMustChange(!!body.must_change_password);
      if (!body.must_change_password) {
        try {
          setInstance(await api('GET', '/api/instance'));
        } catch {
          setInstance(null);
        }
      }
    },
    signedOut() {
      setUser(null);
      setMustChange(false);
      setInstance(null);
    },
    setUser,
    relang: () => setLangTick((n) => n + 1),
  };

  let body;
  if (redirect) body = null;
  else if (r.who === 'admin' && !isAdmin(user)) body = html`<${Refused} />`;
  else if (r.who === 'root' && !(user && user.role === 'root')) body = html`<${Refused} root />`;
  else if (failed) body = html`<p class="form-error" role="alert">${t('error.load')}: ${failed}</p>`;
  else if (!mod) body = html`<p class="loading" aria-live="polite">${t('loading')}</p>`;
  else body = html`<${mod.default} rest=${r.rest} query=${loc.query} key=${r.page} />`;

  return html`
    <${Session.Provider} value=${session}>
      <${Shell} page=${r.page} bare=${r.who === 'anyone' || !signedIn} forced=${forced}>${body}</${Shell}>
    </${Session.Provider}>`;
}

async function start() {
  await initLang();
  const initial = { user: null, mustChange: false, instance: null };
  try {
    initial.user = await api('GET', '/api/users/me', undefined, { quiet: true });
    if (initial.user.must_change_password) initial.mustChange = true;
  } catch (e) {
    if (e.code === 'password_change_required') initial.mustChange = true;
  }
  if (initial.user && !initial.mustChange) {
    try {
      initial.instance = await api('GET', '/api/instance', undefined, { quiet: true });
    } catch {
      // Pages fall back to what they can do without it.
    }
  }
  const root = document.getElementById('app');
  root.textContent = '';
  render(html`<${App} initial=${initial} />`, root);
}

start();
