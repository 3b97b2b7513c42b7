// Prices (admins): what a million tokens of each model cost in quota units and
// the output a request without max_tokens may run to; each group's multiplier,
// share of a busy pool and what its requests do when quota runs short.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { useSession } from '../context.js';
import { num, usd } from '../format.js';
import { useForm, useIds, TextField, Select, FormError, Notice, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, TableWrap } from '../components/ui.js';
import { useConfirm } from '../components/dialog.js';

function SetPrice({ models, onSaved }) {
  const id = useIds('sp');
  const form = useForm({ model: '', input: '', output: '', max_output_tokens: '' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const model = form.values.model.trim();
    const saved = await form.submit((v) => {
      if (!model) {
        const err = new Error(t('prices.model_required'));
        err.field = 'model';
        throw err;
      }
      const body = { input: Number(v.input || 0), output: Number(v.output || 0) };
      if (String(v.max_output_tokens).trim()) body.max_output_tokens = Number(v.max_output_tokens);
      return api('PUT', `/api/prices/${encodeURIComponent(model)}`, body);
    });
    if (!saved) return;
    form.reset();
    onSaved({ model, input: saved.input, output: saved.output, max_output_tokens: saved.max_output_tokens });
  };
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-model`} label=${t('field.model')} required list=${`${id}-models`} autocomplete="off" ...${form.bind('model')} />
      <datalist id=${`${id}-models`}>${models.map((m) => html`<option value=${m} />`)}</datalist>
      <${TextField} id=${`${id}-in`} label=${t('field.price_input')} type="number" min="0" required hint=${t('hint.price')} ...${form.bind('input')} />
      <${TextField} id=${`${id}-out`} label=${t('field.price_output')} type="number" min="0" required hint=${t('hint.price')} ...${form.bind('output')} />
      <${TextField} id=${`${id}-max`} label=${t('field.max_output_tokens')} type="number" min="1" placeholder="4096"
        hint=${t('hint.max_output_tokens')} ...${form.bind('max_output_tokens')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('prices.set')}</${Submit}></div>
    </form>`;
}

function SetGroup({ onSaved }) {
  const id = useIds('sg');
  const form = useForm({ group: '', multiplier_permille: '1000', weight: '1', policy: 'clamp' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const saved = await form.submit(async (v) => {
      const group = v.group.trim();
      if (!group) {
        const err = new Error(t('prices.group_required'));
        err.field = 'group';
        throw err;
      }
      const path = `/api/groups/${encodeURIComponent(group)}`;
      await api('PUT', path, { multiplier_permille: Number(v.multiplier_permille) });
      await api('PUT', `${path}/weight`, { weight: Number(v.weight) });
      return api('PUT', `${path}/quota-policy`, { policy: v.policy });
    });
    if (!saved) return;
    form.reset();
    onSaved(saved);
  };
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-group`} label=${t('field.group')} required ...${form.bind('group')} />
      <${TextField} id=${`${id}-mult`} label=${t('field.multiplier')} type="number" min="1" required hint=${t('hint.multiplier')}
        ...${form.bind('multiplier_permille')} />
      <${TextField} id=${`${id}-weight`} label=${t('field.group_weight')} type="number" min="1" max="100" required
        hint=${t('hint.group_weight')} ...${form.bind('weight')} />
      <${Select} id=${`${id}-policy`} label=${t('field.quota_policy')} hint=${t('hint.quota_policy')}
        options=${[{ value: 'clamp', label: t('policy.clamp') }, { value: 'refuse', label: t('policy.refuse') }]}
        ...${form.bind('policy')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('prices.set_group')}</${Submit}></div>
    </form>`;
}

export default function Prices() {
  const session = useSession();
  useTitle(t('nav.prices'));
  const prices = useLoad(() => api('GET', '/api/prices'), []);
  const groups = useLoad(() => api('GET', '/api/groups'), []);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [confirmEl, ask] = useConfirm();
  const upu = (prices.data && prices.data.units_per_usd) || (session.instance && session.instance.units_per_usd) || 1000000;
  const list = (prices.data && prices.data.prices) || [];
  const g = groups.data || {};
  const groupNames = [...new Set([...Object.keys(g.groups || {}), ...Object.keys(g.weights || {}), ...Object.keys(g.quota_policies || {})])].sort();
  const groupList = groupNames.map((name) => ({
    name,
    multiplier: (g.groups || {})[name] || 1000,
    weight: (g.weights || {})[name] || 1,
    policy: (g.quota_policies || {})[name] || 'clamp',
  }));
  const models = session.instance ? session.instance.models : [];

  const removePrice = async (p) => {
    if (!(await ask({ title: t('prices.delete_title'), message: t('prices.delete_q', { model: p.model }), confirm: t('action.delete') }))) return;
    setError(null);
    try {
      await api('DELETE', `/api/prices/${encodeURIComponent(p.model)}`);
      prices.setData((d) => ({ ...d, prices: d.prices.filter((x) => x.model !== p.model) }));
    } catch (e) {
      setError(e.message);
    }
  };
  const resetGroup = async (group) => {
    if (!(await ask({ title: t('prices.delete_group_title'), message: t('prices.delete_group_q', { group }), confirm: t('action.reset') }))) return;
    setError(null);
    try {
      const path = `/api/groups/${encodeURIComponent(group)}`;
      await api('DELETE', path);
      await api('PUT', `${path}/weight`, { weight: 1 });
      groups.setData(await api('PUT', `${path}/quota-policy`, { policy: 'clamp' }));
    } catch (e) {
      setError(e.message);
    }
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.prices')} />
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    <${Notice}>${notice}</${Notice}>
    <section class="panel" aria-labelledby="prices-h">
      <h2 id="prices-h">${t('prices.models')}</h2>
      <p class="hint">${t('prices.intro', { upu: num(upu) })}</p>
      <${SetPrice} models=${models} onSaved=${(p) => {
        prices.setData((d) => ({ ...d, prices: [...d.prices.filter((x) => x.model !== p.model), p].sort((a, b) => a.model.localeCompare(b.model)) }));
        setNotice(t('prices.saved', { model: p.model }));
      }} />
      <${LoadState} load=${prices} />
      ${prices.data && !list.length && html`<${Empty}>${t('prices.empty')}</${Empty}>`}
      ${list.length > 0 && html`
        <${TableWrap} label=${t('prices.models')}>
          <table>
            <thead><tr><th scope="col">${t('field.model')}</th><th scope="col">${t('field.price_input')}</th>
              <th scope="col">${t('field.price_output')}</th><th scope="col">${t('field.max_output_tokens')}</th>
              <th scope="col"><span class="sr">${t('col.actions')}</span></th></tr></thead>
            <tbody>${list.map((p) => html`<tr key=${p.model}>
              <th scope="row">${p.model}</th>
              <td class="num">${num(p.input)} <span class="hint">(${usd(p.input, upu)})</span></td>
              <td class="num">${num(p.output)} <span class="hint">(${usd(p.output, upu)})</span></td>
              <td class="num">${num(p.max_output_tokens)}</td>
              <td class="row-actions"><button type="button" class="danger" onClick=${() => removePrice(p)}
                aria-label=${t('prices.delete_x', { model: p.model })}>${t('action.delete')}</button></td>
            </tr>`)}</tbody>
          </table>
        </${TableWrap}>`}
    </section>
    <section class="panel" aria-labelledby="groups-h">
      <h2 id="groups-h">${t('prices.groups')}</h2>
      <p class="hint">${t('prices.groups_intro')}</p>
      <${SetGroup} onSaved=${(g) => groups.setData(g)} />
      <${LoadState} load=${groups} />
      ${groups.data && !groupList.length && html`<${Empty}>${t('prices.groups_empty')}</${Empty}>`}
      ${groupList.length > 0 && html`
        <${TableWrap} label=${t('prices.groups')}>
          <table>
            <thead><tr><th scope="col">${t('field.group')}</th><th scope="col">${t('field.multiplier')}</th>
              <th scope="col">${t('field.group_weight')}</th><th scope="col">${t('field.quota_policy')}</th>
              <th scope="col"><span class="sr">${t('col.actions')}</span></th></tr></thead>
            <tbody>${groupList.map((row) => html`<tr key=${row.name}>
              <th scope="row">${row.name}</th><td class="num">${num(row.multiplier)}‰ (×${row.multiplier / 1000})</td>
              <td class="num">${num(row.weight)}</td><td>${t(`policy.${row.policy}`)}</td>
              <td class="row-actions"><button type="button" class="danger" onClick=${() => resetGroup(row.name)}
                aria-label=${t('prices.delete_group_x', { group: row.name })}>${t('action.reset')}</button></td>
            </tr>`)}</tbody>
          </table>
        </${TableWrap}>`}
    </section>
    ${confirmEl}</div>`;
}
