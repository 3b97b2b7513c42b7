// Tokens: the `sk-` keys clients use. Create one (its key is shown once),
// turn one off or on, delete one, see what each has spent.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, query, timeZone } from '../api.js';
import { t } from '../i18n.js';
import { useSession, isAdmin } from '../context.js';
import { rememberKey } from '../fresh-keys.js';
import { num, cost, when, localToIso } from '../format.js';
import { useForm, useIds, TextField, TextArea, FormError, Notice, Submit, Checkbox, lines } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge, Badge, TableWrap, Section, settled } from '../components/ui.js';
import { CopyButton } from '../components/copy.js';
import { useConfirm } from '../components/dialog.js';

function CreateToken({ models, onCreated }) {
  const id = useIds('tok');
  const form = useForm({ name: '', models: [], ip_allow: '', expires_at: '', quota: '' });
  const toggle = (m) => form.set('models', form.values.models.includes(m) ? form.values.models.filter((x) => x !== m) : [...form.values.models, m]);

  const onSubmit = async (e) => {
    e.preventDefault();
    const created = await form.submit((v) => {
      const body = { name: v.name.trim() };
      if (v.models.length) body.models = v.models;
      const ips = lines(v.ip_allow, true);
      if (ips.length) body.ip_allow = ips;
      if (v.expires_at) body.expires_at = localToIso(v.expires_at);
      if (String(v.quota).trim() !== '') body.quota = Number(v.quota);
      return api('POST', '/api/tokens', body);
    });
    if (!created) return;
    form.reset();
    onCreated(created);
  };

  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-name`} label=${t('field.token_name')} required ...${form.bind('name')} />
      <fieldset class="field wide" aria-describedby=${form.errors.models ? `${id}-models-error` : undefined}>
        <legend>${t('field.models')}</legend>
        <p class="hint">${t('hint.token_models')}</p>
        <div class="checks">
          ${models.map((m, i) => html`<${Checkbox} id=${`${id}-m${i}`} label=${m} checked=${form.values.models.includes(m)} onChange=${() => toggle(m)} />`)}
          ${!models.length && html`<span class="hint">${t('tokens.no_models')}</span>`}
        </div>
        ${form.errors.models && html`<p class="field-error" id=${`${id}-models-error`}>${form.errors.models}</p>`}
      </fieldset>
      <${TextArea} id=${`${id}-ip`} label=${t('field.ip_allow')} rows="3" hint=${t('hint.ip_allow')} ...${form.bind('ip_allow')} />
      <${TextField} id=${`${id}-exp`} label=${t('field.expires_at')} type="datetime-local" hint=${t('hint.expires_at')}
        ...${form.bind('expires_at')} />
      <${TextField} id=${`${id}-quota`} label=${t('field.token_quota')} type="number" min="0" inputmode="numeric"
        hint=${t('hint.token_quota')} ...${form.bind('quota')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('tokens.create')}</${Submit}></div>
    </form>`;
}

function NewKey({ created, onDismiss }) {
  return html`
    <section class="panel new-key" aria-labelledby="new-key-h">
      <h2 id="new-key-h">${t('tokens.key_title', { name: created.token.name })}</h2>
      <p class="notice notice-warn">${t('tokens.key_once')}</p>
      <div class="key-line">
        <code class="secret" aria-label=${t('tokens.the_key')}>${created.key}</code>
        <${CopyButton} text=${created.key} what=${t('tokens.the_key')} />
      </div>
      <p class="actions">
        <a class="button primary" href=${`/connect/${created.token.id}`}>${t('tokens.connect_now')}</a>
        <button type="button" onClick=${onDismiss}>${t('tokens.key_done')}</button>
      </p>
    </section>`;
}

function quotaText(q, upu) {
  if (q.unlimited) return t('tokens.unlimited_used', { used: cost(q.used, upu) });
  return t('tokens.remaining_used', { left: num(q.remaining), used: cost(q.used, upu) });
}

export default function Tokens({ query: qs }) {
  const session = useSession();
  const upu = session.instance ? session.instance.units_per_usd : 1000000;
  useTitle(t('tokens.title'));
  const tokens = useLoad(() => api('GET', '/api/tokens?limit=500'), []);
  const usage = useLoad(() => api('GET', `/api/logs/stats${query({ group_by: 'token', tz: timeZone, user_id: isAdmin(session.user) ? session.user.id : null })}`), []);
  const [created, setCreated] = useState(null);
  const [rowError, setRowError] = useState(null);
  const [confirmEl, ask] = useConfirm();
  const models = session.instance ? session.instance.models : [];

  const byToken = {};
  for (const r of (usage.data && usage.data.rows) || []) byToken[r.key] = r;
  const items = (tokens.data && tokens.data.items) || [];

  const onCreated = (c) => {
    rememberKey(c.token.id, c.key);
    setCreated(c);
    tokens.setData((d) => ({ ...(d || {}), items: [c.token, ...((d && d.items) || [])] }));
  };
  const setStatus = async (tok, status) => {
    setRowError(null);
    try {
      const updated = await api('PATCH', `/api/tokens/${tok.id}`, { status });
      tokens.setData((d) => ({ ...d, items: d.items.map((x) => (x.id === tok.id ? updated : x)) }));
    } catch (e) {
      setRowError(e.message);
    }
  };
  const remove = async (tok) => {
    const yes = await ask({ title: t('tokens.delete_title'), message: t('tokens.delete_q', { name: tok.name }), confirm: t('action.delete') });
    if (!yes) return;
    setRowError(null);
    try {
      await api('DELETE', `/api/tokens/${tok.id}`);
      tokens.setData((d) => ({ ...d, items: d.items.filter((x) => x.id !== tok.id) }));
    } catch (e) {
      setRowError(e.message);
    }
  };

  return html`<div class="page">
    <${PageHead} title=${t('tokens.title')} />
    ${qs.get('welcome') && html`<${Notice}>${t('tokens.welcome')}</${Notice}>`}
    ${created && html`<${NewKey} created=${created} onDismiss=${() => setCreated(null)} />`}
    ${settled(tokens) && html`
      <${Section} title=${t('tokens.new')} open=${!created && !items.length ? true : undefined}>
        <${CreateToken} models=${models} onCreated=${onCreated} />
      </${Section}>`}
    <h2>${t('tokens.list')}</h2>
    <${LoadState} load=${tokens} />
    ${rowError && html`<p class="form-error" role="alert">${rowError}</p>`}
    ${tokens.data && !items.length && html`<${Empty}>${t('tokens.empty')}</${Empty}>`}
    ${items.length > 0 && html`
      <${TableWrap} label=${t('tokens.list')}>
        <table>
          <thead><tr>
            <th scope="col">${t('col.name')}</th><th scope="col">${t('col.key')}</th><th scope="col">${t('col.status')}</th>
            <th scope="col">${t('col.models')}</th><th scope="col">${t('col.expires')}</th><th scope="col">${t('col.quota')}</th>
            <th scope="col">${t('col.requests')}</th><th scope="col">${t('col.cost')}</th><th scope="col">${t('col.last_used')}</th>
            <th scope="col"><span class="sr">${t('col.actions')}</span></th>
          </tr></thead>
          <tbody>
            ${items.map((tok) => {
              const u = byToken[String(tok.id)];
              const ro = tok.managed_by === 'config';
              return html`<tr key=${tok.id} data-token-id=${tok.id}>
                <th scope="row">${tok.name} ${ro && html`<${Badge}>${t('badge.config')}</${Badge}>`}</th>
                <td><code>${tok.key_prefix}</code></td>
                <td><${StatusBadge} status=${tok.status} /></td>
                <td>${tok.models && tok.models.length ? tok.models.join(', ') : t('tokens.all_models')}</td>
                <td>${tok.expires_at ? when(tok.expires_at) : t('tokens.never')}</td>
                <td>${quotaText(tok.quota, upu)}</td>
                <td class="num">${num(u ? u.requests : 0)}</td>
                <td class="num">${cost(u ? u.quota : 0, upu)}</td>
                <td>${when(tok.last_used_at)}</td>
                <td class="row-actions">
                  <a href=${`/connect/${tok.id}`}>${t('tokens.connect')}</a>
                  ${!ro && html`
                    <button type="button" onClick=${() => setStatus(tok, tok.status === 'enabled' ? 'disabled' : 'enabled')}
                      aria-label=${t(tok.status === 'enabled' ? 'tokens.disable_x' : 'tokens.enable_x', { name: tok.name })}>
                      ${t(tok.status === 'enabled' ? 'action.disable' : 'action.enable')}</button>
                    <button type="button" class="danger" onClick=${() => remove(tok)}
                      aria-label=${t('tokens.delete_x', { name: tok.name })}>${t('action.delete')}</button>`}
                </td>
              </tr>`;
            })}
          </tbody>
        </table>
      </${TableWrap}>`}
    ${confirmEl}</div>`;
}
