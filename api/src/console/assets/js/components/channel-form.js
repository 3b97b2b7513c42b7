// The channel form, for creating one and for editing one: text the admin
// types (lines, `client=provider`, `model rpm tpm`) turned into the API's shape.

import { html } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';
import { useForm, TextField, TextArea, FormError, Submit, lines, fieldError } from './form.js';

export const CHANNEL_FIELDS = ['name', 'base_url', 'models', 'model_map', 'priority', 'weight', 'groups', 'rpm', 'tpm',
  'max_concurrency', 'model_limits', 'keys'];

/** Form values for a channel (empty for a new one). */
export function channelValues(c) {
  if (!c) {
    return { name: '', base_url: '', models: '', model_map: '', priority: '0', weight: '1', groups: '', rpm: '0', tpm: '0',
      max_concurrency: '0', model_limits: '', keys: '' };
  }
  return {
    name: c.name,
    base_url: c.base_url,
    models: c.models.join('\n'),
    model_map: Object.entries(c.model_map || {}).map(([a, b]) => `${a}=${b}`).join('\n'),
    priority: String(c.priority),
    weight: String(c.weight),
    groups: (c.groups || []).join(', '),
    rpm: String(c.rpm),
    tpm: String(c.tpm),
    max_concurrency: String(c.max_concurrency),
    model_limits: limitsText(c.model_limits),
    keys: '',
  };
}

export function limitsText(limits) {
  return Object.entries(limits || {}).map(([m, l]) => `${m} ${l.rpm ?? 0} ${l.tpm ?? 0}`).join('\n');
}

/** `model rpm tpm` lines as `{model: {rpm, tpm}}`. */
export function parseLimits(text, field = 'model_limits') {
  const out = {};
  for (const line of lines(text)) {
    const parts = line.split(/[\s,]+/);
    const [model, rpm = '0', tpm = '0'] = parts;
    if (parts.length > 3 || !/^\d+$/.test(rpm) || !/^\d+$/.test(tpm)) {
      throw fieldError(field, t('channels.bad_limit', { line }));
    }
    out[model] = { rpm: Number(rpm), tpm: Number(tpm) };
  }
  return out;
}

function parseMap(text) {
  const out = {};
  for (const line of lines(text)) {
    const i = line.indexOf('=');
    if (i < 1 || i === line.length - 1) throw fieldError('model_map', t('channels.bad_map', { line }));
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function int(v, field) {
  const s = String(v).trim();
  if (s === '') return 0;
  if (!/^-?\d+$/.test(s)) throw fieldError(field, t('error.integer'));
  return Number(s);
}

/** The API body from form values; `withKeys` for a new channel. */
export function channelBody(v, withKeys) {
  const body = {
    name: v.name.trim(),
    base_url: v.base_url.trim(),
    models: lines(v.models, true),
    model_map: parseMap(v.model_map),
    priority: int(v.priority, 'priority'),
    weight: int(v.weight, 'weight'),
    groups: lines(v.groups, true),
    rpm: int(v.rpm, 'rpm'),
    tpm: int(v.tpm, 'tpm'),
    max_concurrency: int(v.max_concurrency, 'max_concurrency'),
    model_limits: parseLimits(v.model_limits),
  };
  if (withKeys && v.keys.trim()) body.keys = v.keys;
  return body;
}

/** The fields; `onSave(values)` returns a promise (errors become field errors). */
export function ChannelForm({ id, initial, isNew, onSave, submitLabel }) {
  const form = useForm(channelValues(initial), CHANNEL_FIELDS);
  const onSubmit = async (e) => {
    e.preventDefault();
    const ok = await form.submit((v) => onSave(channelBody(v, isNew)));
    if (ok && isNew) form.reset();
  };
  const f = (name) => ({ id: `${id}-${name}`, ...form.bind(name) });
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} label=${t('field.channel_name')} required ...${f('name')} />
      <${TextField} label=${t('field.base_url')} type="url" required hint=${t('hint.base_url')} ...${f('base_url')} />
      <${TextArea} label=${t('field.models')} rows="3" required hint=${t('hint.channel_models')} ...${f('models')} />
      <${TextArea} label=${t('field.model_map')} rows="3" hint=${t('hint.model_map')} ...${f('model_map')} />
      <${TextField} label=${t('field.priority')} type="number" hint=${t('hint.priority')} ...${f('priority')} />
      <${TextField} label=${t('field.weight')} type="number" min="1" hint=${t('hint.weight')} ...${f('weight')} />
      <${TextField} label=${t('field.groups')} hint=${t('hint.groups')} ...${f('groups')} />
      <${TextField} label=${t('field.rpm')} type="number" min="0" hint=${t('hint.zero_unlimited')} ...${f('rpm')} />
      <${TextField} label=${t('field.tpm')} type="number" min="0" hint=${t('hint.zero_unlimited')} ...${f('tpm')} />
      <${TextField} label=${t('field.max_concurrency')} type="number" min="0" hint=${t('hint.zero_unlimited')} ...${f('max_concurrency')} />
      <${TextArea} label=${t('field.model_limits')} rows="3" hint=${t('hint.model_limits')} ...${f('model_limits')} />
      ${isNew && html`<${TextArea} label=${t('field.keys')} rows="5" class="wide" hint=${t('hint.keys')} spellcheck="false"
        autocomplete="off" ...${f('keys')} />`}
      <div class="actions wide"><${Submit} busy=${form.busy}>${submitLabel}</${Submit}></div>
    </form>`;
}
