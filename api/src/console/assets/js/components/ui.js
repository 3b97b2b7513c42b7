// Small pieces every page uses: the page title, loading data, badges.
//
// A rule for every component of the console: return one element (or null),
// never a fragment of several. The Preact bundled in htm 3.1.1 places new
// children of a component's fragment root out of order (a page's heading
// ended up below its data), so pages wrap their content in <div class="page">.

import { html, useEffect, useState, useCallback } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';

/** Set the document title for this page. */
export function useTitle(title) {
  useEffect(() => {
    document.title = title ? `${title} · Sluice` : 'Sluice';
  }, [title]);
}

/**
 * Load data once (and again when `deps` change): `{data, error, loading,
 * reload, setData}`. `setData` lets a page show a change from the API's
 * answer without loading again.
 */
export function useLoad(fn, deps = []) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve()
      .then(fn)
      .then(
        (data) => live && setState({ data, error: null, loading: false }),
        (error) => live && setState({ data: undefined, error, loading: false }),
      );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  const setData = useCallback((f) => setState((s) => ({ ...s, data: typeof f === 'function' ? f(s.data) : f })), []);
  return { ...state, reload, setData };
}

/** Heading of a page with optional actions on its right. */
export function PageHead({ title, children }) {
  return html`
    <div class="page-head">
      <h1>${title}</h1>
      ${children && html`<div class="page-actions">${children}</div>`}
    </div>`;
}

/** What a page shows while loading or after a failed load; null once loaded. */
export function LoadState({ load }) {
  if (load.error) {
    return html`<p class="form-error" role="alert">${t('error.load')}: ${load.error.message}</p>`;
  }
  if (load.loading && load.data === undefined) return html`<p class="loading" aria-live="polite">${t('loading')}</p>`;
  return null;
}

export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

/** `enabled` / `disabled` / `auto_disabled` / invite states, as a coloured word. */
export function StatusBadge({ status }) {
  return html`<span class=${`badge badge-${status}`}>${t(`status.${status}`)}</span>`;
}

export function Badge({ children, kind = 'plain' }) {
  return html`<span class=${`badge badge-${kind}`}>${children}</span>`;
}

/** A table that scrolls sideways inside itself on narrow screens. */
export function TableWrap({ label, children }) {
  return html`<div class="table-wrap" role="region" aria-label=${label} tabindex="0">${children}</div>`;
}

/**
 * Whether a load has answered once (with data or an error); a reload keeps it answered.
 * A section whose open state depends on the load is shown only then, so that it never
 * opens by itself under a click on its summary, which would close it again.
 */
export function settled(load) {
  return load.data !== undefined || load.error != null;
}

/** A collapsible section (a native <details>) for forms that are not always needed. */
export function Section({ title, open, children, id }) {
  return html`
    <details class="panel" open=${open} id=${id}>
      <summary><h2>${title}</h2></summary>
      <div class="panel-body">${children}</div>
    </details>`;
}
