// The audit log (admins and root): who changed what, when and from where,
// newest first, filtered, paged with a cursor and exported as CSV with the
// same filters. A change shows the fields it changed side by side, before and
// after; a creation or a deletion folds the whole thing away.

import { html, useState, useEffect } from '../../vendor/htm-preact-standalone.module.js';
import { api, query, all } from '../api.js';
import { t } from '../i18n.js';
import { when, localToIso } from '../format.js';
import { useForm, useIds, TextField, Select, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, Empty, TableWrap, Badge } from '../components/ui.js';

const PAGE = 50;
/** Families of actions, as `GET /api/audit?action=` takes them. */
const FAMILIES = ['user', 'admin', 'channel', 'key', 'token', 'price', 'group', 'invite', 'fallback'];
const KINDS = ['user', 'channel', 'key', 'token', 'price', 'group', 'invite', 'fallback'];

function filtersToQuery(f) {
  return {
    from: localToIso(f.from), to: localToIso(f.to), actor_id: f.actor_id, action: f.action,
    target_type: f.target_type, target_id: f.target_id.trim(),
  };
}

/** A stored value, as a person reads it. */
function shown(v) {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Fields of one side only (a creation, a deletion, a test's result), folded. */
function Whole({ label, value }) {
  if (value === null || value === undefined) return null;
  const fields = value && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : [['', value]];
  return html`<details class="audit-whole">
    <summary>${label}</summary>
    <dl class="facts">
      ${fields.map(([k, v]) => html`<dt>${k}</dt><dd><code>${shown(v)}</code></dd>`)}
    </dl>
  </details>`;
}

/** What an entry did: changed fields side by side, or the whole thing folded. */
function Changes({ entry }) {
  const { before, after } = entry;
  const objects = before && after && typeof before === 'object' && typeof after === 'object';
  if (!objects) {
    if (before == null && after == null) return html`<span class="hint">—</span>`;
    if (before == null) return html`<${Whole} label=${t(entry.action.endsWith('.test') ? 'audit.result' : 'audit.created')} value=${after} />`;
    if (after == null) return html`<${Whole} label=${t('audit.deleted')} value=${before} />`;
    return html`<span><del>${shown(before)}</del> → <ins>${shown(after)}</ins></span>`;
  }
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  if (!keys.length) return html`<span class="hint">${t('audit.no_change')}</span>`;
  return html`<table class="diff">
    <thead><tr>
      <th scope="col">${t('audit.field')}</th><th scope="col">${t('audit.before')}</th><th scope="col">${t('audit.after')}</th>
    </tr></thead>
    <tbody>
      ${keys.map((k) => html`<tr key=${k}>
        <th scope="row">${k}</th><td><del>${shown(before[k])}</del></td><td><ins>${shown(after[k])}</ins></td>
      </tr>`)}
    </tbody>
  </table>`;
}

export default function Audit() {
  const id = useIds('audit');
  useTitle(t('audit.title'));
  const form = useForm({ from: '', to: '', actor_id: '', action: '', target_type: '', target_id: '' });
  const [applied, setApplied] = useState(form.values);
  const [rows, setRows] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const users = useLoad(() => all('/api/users'), []);

  const fetchPage = async (filters, after) => {
    setBusy(true);
    setError(null);
    try {
      const page = await api('GET', `/api/audit${query({ ...filtersToQuery(filters), cursor: after, limit: PAGE })}`);
      setRows((r) => (after != null && r ? [...r, ...page.items] : page.items));
      setCursor(page.next_cursor ?? null);
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    fetchPage(applied, null);
  }, [applied]);

  const onSubmit = (e) => {
    e.preventDefault();
    setApplied({ ...form.values });
  };
  const exportHref = `/api/audit/export${query(filtersToQuery(applied))}`;
  const any = { value: '', label: t('logs.any') };

  return html`<div class="page">
    <${PageHead} title=${t('audit.title')}>
      <a class="button" href=${exportHref} download="sluice-audit.csv">${t('logs.export')}</a>
    </${PageHead}>
    <p class="hint audit-intro">${t('audit.intro')}</p>
    <form class="filters" onSubmit=${onSubmit} novalidate aria-label=${t('logs.filters')}>
      <${TextField} id=${`${id}-from`} label=${t('field.from')} type="datetime-local" ...${form.bind('from')} />
      <${TextField} id=${`${id}-to`} label=${t('field.to')} type="datetime-local" ...${form.bind('to')} />
      <${Select} id=${`${id}-actor`} label=${t('audit.actor')} ...${form.bind('actor_id')}
        options=${[{ value: '', label: t('logs.everyone') }, ...(users.data || []).map((u) => ({ value: String(u.id), label: u.username }))]} />
      <${Select} id=${`${id}-action`} label=${t('audit.action')} ...${form.bind('action')}
        options=${[any, ...FAMILIES.map((f) => ({ value: f, label: `${f}.*` }))]} />
      <${Select} id=${`${id}-kind`} label=${t('audit.target_type')} ...${form.bind('target_type')}
        options=${[any, ...KINDS.map((k) => ({ value: k, label: k }))]} />
      <${TextField} id=${`${id}-target`} label=${t('audit.target_id')} ...${form.bind('target_id')} />
      <div class="actions"><${Submit} busy=${busy}>${t('logs.apply')}</${Submit}></div>
    </form>
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    ${rows === null && !error && html`<p class="loading">${t('loading')}</p>`}
    ${rows && !rows.length && html`<${Empty}>${t('audit.empty')}</${Empty}>`}
    ${rows && rows.length > 0 && html`
      <${TableWrap} label=${t('audit.title')}>
        <table class="audit">
          <thead><tr>
            <th scope="col">${t('col.time')}</th><th scope="col">${t('audit.actor')}</th><th scope="col">${t('audit.address')}</th>
            <th scope="col">${t('audit.action')}</th><th scope="col">${t('audit.target')}</th><th scope="col">${t('audit.changes')}</th>
          </tr></thead>
          <tbody>
            ${rows.map((r) => html`<tr key=${r.id} data-action=${r.action}>
              <td>${when(r.at)}</td>
              <td>${r.actor_username} <${Badge}>${t(`role.${r.actor_role}`)}</${Badge}></td>
              <td>${r.address || '—'}</td>
              <td><code>${r.action}</code></td>
              <td>${r.target_label} <span class="hint">${r.target_type}${r.target_id !== r.target_label ? ` #${r.target_id}` : ''}</span></td>
              <td class="wrap"><${Changes} entry=${r} /></td>
            </tr>`)}
          </tbody>
        </table>
      </${TableWrap}>
      ${cursor != null && html`<p><button type="button" onClick=${() => fetchPage(applied, cursor)} disabled=${busy}>${t('logs.more')}</button></p>`}`}</div>`;
}
