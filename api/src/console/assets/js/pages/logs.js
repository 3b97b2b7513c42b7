// Usage logs: every request with what it cost, filtered, paged with a
// cursor, and exported as CSV with the same filters.

import { html, useState, useEffect } from '../../vendor/htm-preact-standalone.module.js';
import { api, query, all } from '../api.js';
import { t } from '../i18n.js';
import { useSession, isAdmin } from '../context.js';
import { num, cost, when, ms, localToIso } from '../format.js';
import { useForm, useIds, TextField, Select, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, Empty, TableWrap } from '../components/ui.js';

const STATUSES = [200, 400, 401, 403, 404, 429, 500, 502, 503];
const PAGE = 50;

function filtersToQuery(f) {
  return {
    from: localToIso(f.from), to: localToIso(f.to), model: f.model, token_id: f.token_id,
    status: f.status, user_id: f.user_id,
  };
}

export default function Logs() {
  const session = useSession();
  const admin = isAdmin(session.user);
  const upu = session.instance ? session.instance.units_per_usd : 1000000;
  const id = useIds('logs');
  useTitle(t('logs.title'));
  const form = useForm({ from: '', to: '', model: '', token_id: '', status: '', user_id: '' });
  const [applied, setApplied] = useState(form.values);
  const [rows, setRows] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const tokens = useLoad(() => api('GET', '/api/tokens?limit=500'), []);
  const users = useLoad(() => (admin ? all('/api/users') : Promise.resolve([])), [admin]);

  const fetchPage = async (filters, after) => {
    setBusy(true);
    setError(null);
    try {
      const page = await api('GET', `/api/logs${query({ ...filtersToQuery(filters), cursor: after, limit: PAGE })}`);
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
  const models = session.instance ? session.instance.models : [];
  const tokenItems = (tokens.data && tokens.data.items) || [];
  const tokenName = (row) => row.token_name || (row.token_id != null ? `#${row.token_id}` : '—');
  const exportHref = `/api/logs/export${query(filtersToQuery(applied))}`;

  return html`<div class="page">
    <${PageHead} title=${t('logs.title')}>
      <a class="button" href=${exportHref} download="sluice-usage.csv">${t('logs.export')}</a>
    </${PageHead}>
    <form class="filters" onSubmit=${onSubmit} novalidate aria-label=${t('logs.filters')}>
      <${TextField} id=${`${id}-from`} label=${t('field.from')} type="datetime-local" ...${form.bind('from')} />
      <${TextField} id=${`${id}-to`} label=${t('field.to')} type="datetime-local" ...${form.bind('to')} />
      <${Select} id=${`${id}-model`} label=${t('field.model')} ...${form.bind('model')}
        options=${[{ value: '', label: t('logs.any') }, ...models.map((m) => ({ value: m, label: m }))]} />
      <${Select} id=${`${id}-token`} label=${t('field.token')} ...${form.bind('token_id')}
        options=${[{ value: '', label: t('logs.any') }, ...tokenItems.map((x) => ({ value: String(x.id), label: x.name }))]} />
      <${Select} id=${`${id}-status`} label=${t('field.status')} ...${form.bind('status')}
        options=${[{ value: '', label: t('logs.any') }, ...STATUSES.map((s) => ({ value: String(s), label: String(s) }))]} />
      ${admin && html`<${Select} id=${`${id}-user`} label=${t('field.user')} ...${form.bind('user_id')}
        options=${[{ value: '', label: t('logs.everyone') }, ...(users.data || []).map((u) => ({ value: String(u.id), label: u.username }))]} />`}
      <div class="actions"><${Submit} busy=${busy}>${t('logs.apply')}</${Submit}></div>
    </form>
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    ${rows === null && !error && html`<p class="loading">${t('loading')}</p>`}
    ${rows && !rows.length && html`<${Empty}>${t('logs.empty')}</${Empty}>`}
    ${rows && rows.length > 0 && html`
      <${TableWrap} label=${t('logs.title')}>
        <table class="logs">
          <thead><tr>
            <th scope="col">${t('col.time')}</th><th scope="col">${t('col.token')}</th><th scope="col">${t('col.model')}</th>
            <th scope="col">${t('col.tokens_in')}</th><th scope="col">${t('col.tokens_out')}</th><th scope="col">${t('col.cost')}</th>
            <th scope="col">${t('col.latency')}</th><th scope="col">${t('col.status')}</th><th scope="col">${t('col.attempts')}</th>
            <th scope="col">${t('col.error')}</th>
          </tr></thead>
          <tbody>
            ${rows.map((r) => html`<tr key=${r.id} data-request-id=${r.request_id}>
              <td>${when(r.created_at)}</td>
              <td>${tokenName(r)}</td>
              <td>${r.model}${r.upstream_model && r.upstream_model !== r.model ? html` <span class="hint">→ ${r.upstream_model}</span>` : ''}</td>
              <td class="num">${num(r.prompt_tokens)}${r.usage_estimated ? '*' : ''}</td>
              <td class="num">${num(r.completion_tokens)}${r.usage_estimated ? '*' : ''}</td>
              <td class="num cost">${cost(r.quota, upu)}</td>
              <td class="num">${ms(r.latency_ms)}</td>
              <td><span class=${`badge ${r.status >= 400 ? 'badge-disabled' : 'badge-enabled'}`}>${r.status}</span></td>
              <td class="num">${r.attempts}</td>
              <td class="err">${r.error || ''}</td>
            </tr>`)}
          </tbody>
        </table>
      </${TableWrap}>
      ${rows.some((r) => r.usage_estimated) && html`<p class="hint">${t('logs.estimated')}</p>`}
      ${cursor != null && html`<p><button type="button" onClick=${() => fetchPage(applied, cursor)} disabled=${busy}>${t('logs.more')}</button></p>`}`}</div>`;
}
