// Fallback chains (admins): a model name that stands for an ordered list of
// models, each tried when the one before has no key with room within the
// chain's wait or fails on every key. Chains from the config file are shown,
// not changed: the file owns them (the API answers 409).

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { useForm, useIds, TextField, FormError, Notice, Submit, fieldError } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, Badge, TableWrap, Section, settled } from '../components/ui.js';
import { Dialog, useConfirm } from '../components/dialog.js';

const FIELDS = ['name', 'models', 'wait_secs'];

/** Every model a channel serves, sorted, once each. */
function servedModels(channels) {
  return [...new Set((channels || []).flatMap((c) => c.models))].sort((a, b) => a.localeCompare(b));
}

/** The chosen models in order, each movable and removable, and a picker for more. */
function ModelSteps({ id, models, served, error, onChange }) {
  const [pick, setPick] = useState('');
  const left = served.filter((m) => !models.includes(m));
  const chosen = pick && left.includes(pick) ? pick : left[0] || '';
  const move = (i, by) => {
    const next = [...models];
    [next[i], next[i + by]] = [next[i + by], next[i]];
    onChange(next);
  };
  const add = () => {
    if (chosen) onChange([...models, chosen]);
    setPick('');
  };
  return html`
    <fieldset class="field wide chain-steps" aria-describedby=${`${id}-hint${error ? ` ${id}-error` : ''}`}
      aria-invalid=${error ? 'true' : undefined}>
      <legend>${t('fallbacks.models')}</legend>
      <p class="hint" id=${`${id}-hint`}>${t('fallbacks.models_hint')}</p>
      ${models.length === 0 && html`<p class="empty">${t('fallbacks.no_models')}</p>`}
      <ol aria-label=${t('fallbacks.order')}>
        ${models.map((m, i) => html`<li key=${m}><div class="step">
          <span class="step-model"><code>${m}</code>${!served.includes(m) && html` <${Badge} kind="warn">${t('fallbacks.not_served')}</${Badge}>`}</span>
          <span class="row-actions">
            <button type="button" disabled=${i === 0} onClick=${() => move(i, -1)}
              aria-label=${t('fallbacks.up_x', { model: m })}>↑</button>
            <button type="button" disabled=${i === models.length - 1} onClick=${() => move(i, 1)}
              aria-label=${t('fallbacks.down_x', { model: m })}>↓</button>
            <button type="button" onClick=${() => onChange(models.filter((x) => x !== m))}
              aria-label=${t('fallbacks.remove_x', { model: m })}>×</button>
          </span>
        </div></li>`)}
      </ol>
      <div class="add-step">
        <div class="field">
          <label for=${`${id}-add`}>${t('fallbacks.add_model')}</label>
          <select id=${`${id}-add`} value=${chosen} disabled=${!left.length} onInput=${(e) => setPick(e.target.value)}>
            ${left.length
              ? left.map((m) => html`<option value=${m}>${m}</option>`)
              : html`<option value="">${t(served.length ? 'fallbacks.all_added' : 'fallbacks.none_to_add')}</option>`}
          </select>
        </div>
        <button type="button" onClick=${add} disabled=${!chosen}>${t('fallbacks.add')}</button>
      </div>
      ${!served.length && html`<p class="hint">${t('fallbacks.none_served')}</p>`}
      ${error && html`<p class="field-error" id=${`${id}-error`}>${error}</p>`}
    </fieldset>`;
}

/** Create or edit a chain; `onSave(body)` returns a promise whose errors land beside their field. */
function ChainForm({ initial, served, onSave, submitLabel }) {
  const id = useIds('fb');
  const start = initial
    ? { name: initial.name, models: initial.models, wait_secs: String(initial.wait_secs) }
    : { name: '', models: [], wait_secs: '5' };
  const form = useForm(start, FIELDS);
  const onSubmit = async (e) => {
    e.preventDefault();
    const saved = await form.submit((v) => {
      const wait = String(v.wait_secs).trim();
      if (!/^\d+$/.test(wait)) throw fieldError('wait_secs', t('error.integer'));
      if (!v.models.length) throw fieldError('models', t('fallbacks.pick_one'));
      return onSave({ name: v.name.trim(), models: v.models, wait_secs: Number(wait) });
    });
    if (saved && !initial) form.reset();
  };
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-name`} label=${t('fallbacks.name')} required hint=${t('fallbacks.name_hint')} autocomplete="off"
        ...${form.bind('name')} />
      <${TextField} id=${`${id}-wait`} label=${t('fallbacks.wait')} type="number" min="0" max="3600" required
        hint=${t('fallbacks.wait_hint')} ...${form.bind('wait_secs')} />
      <${ModelSteps} id=${`${id}-models`} models=${form.values.models} served=${served} error=${form.errors.models}
        onChange=${(models) => form.set('models', models)} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${submitLabel}</${Submit}></div>
    </form>`;
}

export default function Fallbacks() {
  useTitle(t('nav.fallbacks'));
  const chains = useLoad(() => api('GET', '/api/fallbacks'), []);
  const channels = useLoad(() => api('GET', '/api/channels'), []);
  const [editing, setEditing] = useState(null);
  const [notice, setNotice] = useState(null);
  const [error, setError] = useState(null);
  const [confirmEl, ask] = useConfirm();
  const items = chains.data || [];
  const served = servedModels(channels.data);
  const replace = (c) => chains.setData((d) => d.map((x) => (x.id === c.id ? c : x)));

  const create = async (body) => {
    const created = await api('POST', '/api/fallbacks', body);
    chains.setData((d) => [...(d || []), created]);
    setNotice(t('fallbacks.created', { name: created.name }));
    return created;
  };
  const update = async (body) => {
    const updated = await api('PATCH', `/api/fallbacks/${editing.id}`, body);
    replace(updated);
    setEditing(null);
    setNotice(t('fallbacks.saved', { name: updated.name }));
    return updated;
  };
  const remove = async (c) => {
    if (!(await ask({ title: t('fallbacks.delete_title'), message: t('fallbacks.delete_q', { name: c.name }), confirm: t('action.delete') }))) return;
    setError(null);
    try {
      await api('DELETE', `/api/fallbacks/${c.id}`);
      chains.setData((d) => d.filter((x) => x.id !== c.id));
      setNotice(t('fallbacks.deleted', { name: c.name }));
    } catch (e) {
      setError(e.message);
    }
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.fallbacks')} />
    <p class="hint page-intro">${t('fallbacks.intro')}</p>
    <${Notice}>${notice}</${Notice}>
    ${settled(chains) && html`
      <${Section} title=${t('fallbacks.new')} open=${!items.length ? true : undefined}>
        <${LoadState} load=${channels} />
        <${ChainForm} served=${served} onSave=${create} submitLabel=${t('fallbacks.create')} />
      </${Section}>`}
    <h2>${t('fallbacks.list')}</h2>
    <${LoadState} load=${chains} />
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    ${chains.data && !items.length && html`<${Empty}>${t('fallbacks.empty')}</${Empty}>`}
    ${items.length > 0 && html`
      <${TableWrap} label=${t('fallbacks.list')}>
        <table class="fallbacks">
          <thead><tr>
            <th scope="col">${t('col.name')}</th><th scope="col">${t('fallbacks.models')}</th>
            <th scope="col">${t('fallbacks.wait_col')}</th><th scope="col">${t('fallbacks.managed_by')}</th>
            <th scope="col"><span class="sr">${t('col.actions')}</span></th>
          </tr></thead>
          <tbody>${items.map((c) => html`<tr key=${c.id} data-chain-id=${c.id}>
            <th scope="row"><code>${c.name}</code></th>
            <td><ol class="chain">${c.models.map((m) => html`<li>${m}</li>`)}</ol></td>
            <td class="num">${t('fallbacks.secs', { n: c.wait_secs })}</td>
            <td>${c.managed_by === 'config'
              ? html`<${Badge}>${t('badge.config')}</${Badge}> <span class="hint">${t('fallbacks.config_reason')}</span>`
              : t('fallbacks.by_api')}</td>
            <td class="row-actions">${c.managed_by !== 'config' && html`
              <button type="button" onClick=${() => setEditing(c)} aria-label=${t('fallbacks.edit_x', { name: c.name })}>${t('fallbacks.edit')}</button>
              <button type="button" class="danger" onClick=${() => remove(c)}
                aria-label=${t('fallbacks.delete_x', { name: c.name })}>${t('action.delete')}</button>`}</td>
          </tr>`)}</tbody>
        </table>
      </${TableWrap}>`}
    <${Dialog} open=${!!editing} title=${editing ? t('fallbacks.edit_x', { name: editing.name }) : ''} onClose=${() => setEditing(null)}>
      ${editing && html`<${ChainForm} key=${editing.id} initial=${editing} served=${served} onSave=${update}
        submitLabel=${t('action.save')} />`}
    </${Dialog}>
    ${confirmEl}</div>`;
}
