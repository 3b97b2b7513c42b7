// Prices (admins): what a million tokens of each model cost in quota units,
// and each group's multiplier.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { useSession } from '../context.js';
import { num, usd } from '../format.js';
import { useForm, useIds, TextField, FormError, Notice, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, TableWrap } from '../components/ui.js';
import { useConfirm } from '../components/dialog.js';

function SetPrice({ models, onSaved }) {
  const id = useIds('sp');
  const form = useForm({ model: '', input: '', output: '' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const model = form.values.model.trim();
    const saved = await form.submit((v) => {
      if (!model) {
        const err = new Error(t('prices.model_required'));
        err.field = 'model';
        throw err;
      }
      return api('PUT', `/api/prices/${encodeURIComponent(model)}`, { input: Number(v.input || 0), output: Number(v.output || 0) });
    });
    if (!saved) return;
    form.reset();
    onSaved({ model, input: saved.input, output: saved.output });
  };
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-model`} label=${t('field.model')} required list=${`${id}-models`} autocomplete="off" ...${form.bind('model')} />
      <datalist id=${`${id}-models`}>${models.map((m) => html`<option value=${m} />`)}</datalist>
      <${TextField} id=${`${id}-in`} label=${t('field.price_input')} type="number" min="0" required hint=${t('hint.price')} ...${form.bind('input')} />
      <${TextField} id=${`${id}-out`} label=${t('field.price_output')} type="number" min="0" required hint=${t('hint.price')} ...${form.bind('output')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('prices.set')}</${Submit}></div>
    </form>`;
}

function SetGroup({ onSaved }) {
  const id = useIds('sg');
  const form = useForm({ group: '', multiplier_permille: '1000' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const saved = await form.submit((v) => {
      if (!v.group.trim()) {
        const err = new Error(t('prices.group_required'));
        err.field = 'group';
        throw err;
      }
      return api('PUT', `/api/groups/${encodeURIComponent(v.group.trim())}`, { multiplier_permille: Number(v.multiplier_permille) });
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
  const groupList = Object.entries((groups.data && groups.data.groups) || {});
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
  const removeGroup = async (g) => {
    if (!(await ask({ title: t('prices.delete_group_title'), message: t('prices.delete_group_q', { group: g }), confirm: t('action.delete') }))) return;
    setError(null);
    try {
      await api('DELETE', `/api/groups/${encodeURIComponent(g)}`);
      groups.setData((d) => {
        const next = { ...d.groups };
        delete next[g];
        return { groups: next };
      });
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
              <th scope="col">${t('field.price_output')}</th><th scope="col"><span class="sr">${t('col.actions')}</span></th></tr></thead>
            <tbody>${list.map((p) => html`<tr key=${p.model}>
              <th scope="row">${p.model}</th>
              <td class="num">${num(p.input)} <span class="hint">(${usd(p.input, upu)})</span></td>
              <td class="num">${num(p.output)} <span class="hint">(${usd(p.output, upu)})</span></td>
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
              <th scope="col"><span class="sr">${t('col.actions')}</span></th></tr></thead>
            <tbody>${groupList.map(([g, m]) => html`<tr key=${g}>
              <th scope="row">${g}</th><td class="num">${num(m)}‰ (×${m / 1000})</td>
              <td class="row-actions"><button type="button" class="danger" onClick=${() => removeGroup(g)}
                aria-label=${t('prices.delete_group_x', { group: g })}>${t('action.delete')}</button></td>
            </tr>`)}</tbody>
          </table>
        </${TableWrap}>`}
    </section>
    ${confirmEl}</div>`;
}
