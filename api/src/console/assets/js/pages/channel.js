// One channel: its settings, its keys (status, why a key was disabled, its
// limits), tests of one key or all, more keys pasted one per line. Channels
// from the config file are read-only here except turning keys off and on.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { ms, when } from '../format.js';
import { useForm, useIds, TextField, TextArea, FormError, Notice, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge, Badge, TableWrap, Section } from '../components/ui.js';
import { ChannelForm, limitsText, parseLimits } from '../components/channel-form.js';
import { Dialog, useConfirm } from '../components/dialog.js';

function ProbeLine({ r }) {
  return r.ok
    ? html`<span class="ok">${t('channel.test_ok', { model: r.model, ms: ms(r.latency_ms) })}</span>`
    : html`<span class="bad">${t('channel.test_failed', { model: r.model, status: r.status ?? '—', ms: ms(r.latency_ms) })}${r.error ? `: ${r.error}` : ''}</span>`;
}

function limitsOf(k) {
  if (k.rpm == null && k.tpm == null && k.max_concurrency == null && !k.model_limits) return t('channel.inherited_all');
  const v = (x) => (x == null ? t('channel.inherited') : x === 0 ? '∞' : x);
  return t('channel.key_limits', { rpm: v(k.rpm), tpm: v(k.tpm), conc: v(k.max_concurrency) });
}

function KeyLimits({ keyRow, onSaved, onClose }) {
  const id = useIds('kl');
  const s = (x) => (x == null ? '' : String(x));
  const form = useForm({ rpm: s(keyRow.rpm), tpm: s(keyRow.tpm), max_concurrency: s(keyRow.max_concurrency),
    model_limits: limitsText(keyRow.model_limits) });
  const onSubmit = async (e) => {
    e.preventDefault();
    const saved = await form.submit((v) => {
      const body = {};
      for (const f of ['rpm', 'tpm', 'max_concurrency']) if (v[f].trim() !== '') body[f] = Number(v[f]);
      if (v.model_limits.trim()) body.model_limits = parseLimits(v.model_limits);
      return api('PATCH', `/api/keys/${keyRow.id}`, body);
    });
    if (saved) onSaved(saved);
  };
  return html`
    <form onSubmit=${onSubmit} novalidate>
      <${FormError} error=${form.errors._} />
      <p class="hint">${t('channel.limits_hint')}</p>
      <${TextField} id=${`${id}-rpm`} label=${t('field.rpm')} type="number" min="0" ...${form.bind('rpm')} />
      <${TextField} id=${`${id}-tpm`} label=${t('field.tpm')} type="number" min="0" ...${form.bind('tpm')} />
      <${TextField} id=${`${id}-conc`} label=${t('field.max_concurrency')} type="number" min="0" ...${form.bind('max_concurrency')} />
      <${TextArea} id=${`${id}-ml`} label=${t('field.model_limits')} rows="3" hint=${t('hint.model_limits')} ...${form.bind('model_limits')} />
      <div class="actions">
        <button type="button" onClick=${onClose}>${t('action.cancel')}</button>
        <${Submit} busy=${form.busy}>${t('action.save')}</${Submit}>
      </div>
    </form>`;
}

function AddKeys({ channelId, onAdded }) {
  const id = useIds('ak');
  const form = useForm({ keys: '' });
  const [done, setDone] = useState(null);
  const onSubmit = async (e) => {
    e.preventDefault();
    setDone(null);
    const res = await form.submit((v) => api('POST', `/api/channels/${channelId}/keys`, { keys: v.keys }));
    if (!res) return;
    form.reset();
    setDone(t('channel.keys_added', { added: res.added.length, dup: res.duplicates }));
    onAdded(res.added);
  };
  return html`
    <form onSubmit=${onSubmit} novalidate>
      <${FormError} error=${form.errors._} />
      <${Notice}>${done}</${Notice}>
      <${TextArea} id=${`${id}-keys`} label=${t('field.keys')} rows="5" hint=${t('hint.keys')} spellcheck="false"
        autocomplete="off" ...${form.bind('keys')} />
      <${Submit} busy=${form.busy}>${t('channel.add_keys')}</${Submit}>
    </form>`;
}

export default function ChannelPage({ channelId, onGone }) {
  const id = useIds('chan');
  const load = useLoad(async () => {
    const [channel, keys] = await Promise.all([api('GET', `/api/channels/${channelId}`), api('GET', `/api/channels/${channelId}/keys`)]);
    return { channel, keys };
  }, [channelId]);
  const [probes, setProbes] = useState({});
  const [testing, setTesting] = useState(false);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null);
  const [saved, setSaved] = useState(null);
  const [confirmEl, ask] = useConfirm();
  useTitle(load.data ? load.data.channel.name : t('nav.channels'));
  if (!load.data) return html`<${LoadState} load=${load} />`;
  const { channel, keys } = load.data;
  const ro = channel.managed_by === 'config';

  const act = async (fn) => {
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e.message);
      return undefined;
    }
  };
  const setKey = (k) => load.setData((d) => ({ ...d, keys: d.keys.map((x) => (x.id === k.id ? k : x)) }));
  const keyStatus = (k, status) => act(async () => setKey(await api('PATCH', `/api/keys/${k.id}`, { status })));
  const testKey = (k) => act(async () => {
    setProbes((p) => ({ ...p, [k.id]: 'busy' }));
    try {
      const r = await api('POST', `/api/keys/${k.id}/test`, {});
      setProbes((p) => ({ ...p, [k.id]: r }));
    } catch (e) {
      setProbes((p) => ({ ...p, [k.id]: null }));
      throw e;
    }
  });
  const testAll = () => act(async () => {
    setTesting(true);
    try {
      const results = await api('POST', `/api/channels/${channel.id}/test`, {});
      const next = {};
      for (const r of results) next[r.key_id] = r;
      setProbes(next);
    } finally {
      setTesting(false);
    }
  });
  const deleteKey = async (k) => {
    if (!(await ask({ title: t('channel.delete_key_title'), message: t('channel.delete_key_q', { mask: k.mask }), confirm: t('action.delete') }))) return;
    await act(async () => {
      await api('DELETE', `/api/keys/${k.id}`);
      load.setData((d) => ({ ...d, keys: d.keys.filter((x) => x.id !== k.id) }));
    });
  };
  const setChannel = (status) => act(async () => {
    const c = await api('PATCH', `/api/channels/${channel.id}`, { status });
    load.setData((d) => ({ ...d, channel: c }));
  });
  const deleteChannel = async () => {
    if (!(await ask({ title: t('channel.delete_title'), message: t('channel.delete_q', { name: channel.name }), confirm: t('action.delete') }))) return;
    await act(async () => {
      await api('DELETE', `/api/channels/${channel.id}`);
      onGone();
    });
  };
  const save = async (body) => {
    const c = await api('PATCH', `/api/channels/${channel.id}`, body);
    load.setData((d) => ({ ...d, channel: c }));
    setSaved(t('channel.saved'));
    return c;
  };

  return html`<div class="page">
    <p class="crumbs"><a href="/channels">${t('nav.channels')}</a> /</p>
    <${PageHead} title=${channel.name}>
      <${StatusBadge} status=${channel.status} />
      ${ro && html`<${Badge}>${t('badge.config')}</${Badge}>`}
      <button type="button" onClick=${testAll} disabled=${testing || !keys.length} aria-busy=${testing ? 'true' : undefined}>${t('channel.test_all')}</button>
      ${!ro && html`
        <button type="button" onClick=${() => setChannel(channel.status === 'enabled' ? 'disabled' : 'enabled')}>
          ${t(channel.status === 'enabled' ? 'channel.disable' : 'channel.enable')}</button>
        <button type="button" class="danger" onClick=${deleteChannel}>${t('channel.delete')}</button>`}
    </${PageHead}>
    ${ro && html`<p class="notice">${t('channel.read_only')}</p>`}
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    <dl class="facts">
      <dt>${t('field.base_url')}</dt><dd><code>${channel.base_url}</code></dd>
      <dt>${t('col.models')}</dt><dd>${channel.models.join(', ')}</dd>
      <dt>${t('col.limits')}</dt><dd>${t('channels.limits', { rpm: channel.rpm || '∞', tpm: channel.tpm || '∞' })}</dd>
      <dt>${t('field.groups')}</dt><dd>${channel.groups.length ? channel.groups.join(', ') : t('channel.all_groups')}</dd>
    </dl>
    <h2>${t('channel.keys')}</h2>
    ${!keys.length && html`<${Empty}>${t('channel.no_keys')}</${Empty}>`}
    ${keys.length > 0 && html`
      <${TableWrap} label=${t('channel.keys')}>
        <table>
          <thead><tr>
            <th scope="col">${t('col.key')}</th><th scope="col">${t('col.status')}</th><th scope="col">${t('col.limits')}</th>
            <th scope="col">${t('col.added')}</th><th scope="col">${t('col.test')}</th><th scope="col"><span class="sr">${t('col.actions')}</span></th>
          </tr></thead>
          <tbody>${keys.map((k) => html`<tr key=${k.id} data-key-id=${k.id}>
            <th scope="row"><code>${k.mask}</code></th>
            <td><${StatusBadge} status=${k.status} />${k.disabled_reason && html`<div class="reason">${k.disabled_reason}</div>`}</td>
            <td>${limitsOf(k)}</td>
            <td>${when(k.created_at)}</td>
            <td role="status">${probes[k.id] === 'busy' ? t('channel.testing') : probes[k.id] ? html`<${ProbeLine} r=${probes[k.id]} />` : ''}</td>
            <td class="row-actions">
              <button type="button" onClick=${() => testKey(k)} aria-label=${t('channel.test_key', { mask: k.mask })}>${t('channel.test')}</button>
              <button type="button" onClick=${() => keyStatus(k, k.status === 'enabled' ? 'disabled' : 'enabled')}
                aria-label=${t(k.status === 'enabled' ? 'channel.disable_key' : 'channel.enable_key', { mask: k.mask })}>
                ${t(k.status === 'enabled' ? 'action.disable' : 'action.enable')}</button>
              ${!ro && html`
                <button type="button" onClick=${() => setEditing(k)} aria-label=${t('channel.edit_key', { mask: k.mask })}>${t('channel.limits_btn')}</button>
                <button type="button" class="danger" onClick=${() => deleteKey(k)} aria-label=${t('channel.delete_key', { mask: k.mask })}>${t('action.delete')}</button>`}
            </td>
          </tr>`)}</tbody>
        </table>
      </${TableWrap}>`}
    ${!ro && html`
      <${Section} title=${t('channel.add_keys')}>
        <${AddKeys} channelId=${channel.id} onAdded=${(added) => load.setData((d) => ({ ...d, keys: [...d.keys, ...added] }))} />
      </${Section}>
      <${Section} title=${t('channel.settings')}>
        <${Notice}>${saved}</${Notice}>
        <${ChannelForm} id=${`${id}-edit`} initial=${channel} onSave=${save} submitLabel=${t('action.save')} />
      </${Section}>`}
    <${Dialog} open=${!!editing} title=${editing ? t('channel.edit_key', { mask: editing.mask }) : ''} onClose=${() => setEditing(null)}>
      ${editing && html`<${KeyLimits} keyRow=${editing} onClose=${() => setEditing(null)} onSaved=${(k) => { setKey(k); setEditing(null); }} />`}
    </${Dialog}>
    ${confirmEl}</div>`;
}
