// The frame around every page: skip link, header with the navigation the
// viewer's role may use, the language switch, and sign-out. At phone width the
// navigation folds behind a menu button.

import { html, useEffect, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { lang, setLang, t } from '../i18n.js';
import { navigate } from '../router.js';
import { useSession, isAdmin } from '../context.js';

const LINKS = [
  { href: '/', page: 'dashboard', label: 'nav.dashboard', who: 'user' },
  { href: '/tokens', page: 'tokens', label: 'nav.tokens', who: 'user' },
  { href: '/connect', page: 'connect', label: 'nav.connect', who: 'user' },
  { href: '/logs', page: 'logs', label: 'nav.logs', who: 'user' },
  { href: '/keys', page: 'keys', label: 'nav.keys', who: 'admin' },
  { href: '/channels', page: 'channels', label: 'nav.channels', who: 'admin' },
  { href: '/fallbacks', page: 'fallbacks', label: 'nav.fallbacks', who: 'admin' },
  { href: '/users', page: 'users', label: 'nav.users', who: 'admin' },
  { href: '/invites', page: 'invites', label: 'nav.invites', who: 'admin' },
  { href: '/prices', page: 'prices', label: 'nav.prices', who: 'admin' },
  { href: '/audit', page: 'audit', label: 'nav.audit', who: 'admin' },
  { href: '/admins', page: 'admins', label: 'nav.admins', who: 'root' },
];

function allowed(who, user) {
  if (who === 'user') return !!user;
  if (who === 'admin') return isAdmin(user);
  return !!user && user.role === 'root';
}

function LangSwitch() {
  const session = useSession();
  const other = lang() === 'zh-CN' ? { code: 'en', name: 'English' } : { code: 'zh-CN', name: '中文' };
  const flip = async () => {
    await setLang(other.code);
    session.relang();
  };
  return html`<button type="button" class="lang" lang=${other.code} onClick=${flip}
    title=${t('lang.switch')}>${other.name}</button>`;
}

export function Shell({ page, bare, forced, children }) {
  const session = useSession();
  const { user } = session;
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [page]);

  const signOut = async () => {
    try {
      await api('POST', '/api/auth/logout', undefined, { quiet: true });
    } catch {
      // The cookies may already be gone; signing out locally is what matters.
    }
    session.signedOut();
    navigate('/login', { replace: true });
  };

  const links = forced || bare ? [] : LINKS.filter((l) => allowed(l.who, user));
  const who = user ? user.username : '';

  return html`<div class="shell">
    <a class="skip" href="#main">${t('skip')}</a>
    <header class="top">
      <div class="top-row">
        <a class="brand" href=${bare ? '/login' : '/'}>
          <img src="/assets/favicon.svg" alt="" width="24" height="24" /><span>Sluice</span>
        </a>
        ${!bare && html`<button type="button" class="menu-toggle" aria-expanded=${open ? 'true' : 'false'}
          aria-controls="site-nav" onClick=${() => setOpen(!open)}>${t('nav.menu')}</button>`}
        <div class="top-tools">
          <${LangSwitch} />
        </div>
      </div>
      ${!bare && html`
        <nav id="site-nav" class=${`site-nav ${open ? 'open' : ''}`} aria-label=${t('nav.label')}>
          <ul>
            ${links.map((l) => html`<li><a href=${l.href} aria-current=${l.page === page ? 'page' : undefined}>${t(l.label)}</a></li>`)}
          </ul>
          <div class="nav-user">
            ${who && html`<span class="who" title=${t(`role.${user.role}`)}>${who}</span>`}
            ${!forced && html`<a href="/password" aria-current=${page === 'password' ? 'page' : undefined}>${t('nav.password')}</a>`}
            <button type="button" onClick=${signOut}>${t('nav.signout')}</button>
          </div>
        </nav>`}
    </header>
    <main id="main" tabindex="-1">${children}</main></div>`;
}
