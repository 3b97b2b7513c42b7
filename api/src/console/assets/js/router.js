// Client-side navigation: links inside the console change the view without a
// reload; the server answers every console path with the same page.

const listeners = new Set();

/** The current location as `{path, query}`. */
export function here() {
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Go to a console path; `replace` keeps the history entry. */
export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', to);
  for (const fn of listeners) fn();
  window.scrollTo(0, 0);
}

/** Call `fn` whenever the location changes; returns the unsubscriber. */
export function onNavigate(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

window.addEventListener('popstate', () => {
  for (const fn of listeners) fn();
});

// A plain click on a same-origin link becomes client-side navigation; links
// that download, open elsewhere or leave the console behave as usual.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  if (url.hash && url.pathname === location.pathname) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

/** A local path to return to after signing in; never another site. */
export function safeNext(next) {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}
