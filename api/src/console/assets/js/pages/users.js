// Users (admins): every account, create one, turn one off or on, top up its
// quota, move it to another price group.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, all } from '../api.js';
import { t } from '../i18n.js';
import { useSession } from '../context.js';
import { num, cost } from '../format.js';
import { useForm, useIds, TextField, Select, FormError, Notice, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge, TableWrap, Section } from '../components/ui.js';
import { Dialog } from '../components/dialog.js';

function CreateUser({ root, onCreated }) {
  const id = useIds('nu');
  const form = useForm({ username: '', password: '', email: '', group: '', quota: '', role: 'user' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const user = await form.submit((v) => {
      const body = { username: v.username.trim(), password: v.password, role: v.role };
      if (v.email.trim()) body.email = v.email.trim();
      if (v.group.trim()) body.group = v.group.trim();
      if (String(v.quota).trim() !== '') body.quota = Number(v.quota);
      return api('POST', '/api/users', body);
    });
    if (!user) return;
    form.reset();
    onCreated(user);
  };
  const roles = [{ value: 'user', label: t('role.user') }];
  if (root) roles.push({ value: 'admin', label: t('role.admin') });
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-name`} label=${t('field.username')} required autocomplete="off" hint=${t('hint.username')} ...${form.bind('username')} />
      <${TextField} id=${`${id}-pass`} label=${t('field.password')} type="password" required autocomplete="new-password"
        hint=${t('hint.password')} ...${form.bind('password')} />
      <${TextField} id=${`${id}-email`} label=${t('field.email')} type="email" autocomplete="off" ...${form.bind('email')} />
      <${TextField} id=${`${id}-group`} label=${t('field.group')} hint=${t('hint.group')} ...${form.bind('group')} />
      <${TextField} id=${`${id}-quota`} label=${t('field.quota')} type="number" min="0" hint=${t('hint.quota_units')} ...${form.bind('quota')} />
      <${Select} id=${`${id}-role`} label=${t('field.role')} options=${roles} ...${form.bind('role')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('users.create')}</${Submit}></div>
    </form>`;
}

/** Top up or change group, in a dialog. */
function UserEdit({ user, mode, onSaved, onClose }) {
  const id = useIds('ue');
  const form = useForm({ amount: '', group: user.group });
  const onSubmit = async (e) => {
    e.preventDefault();
    const saved = await form.submit((v) => (mode === 'topup'
      ? api('POST', `/api/users/${user.id}/topup`, { amount: Number(v.amount) })
      : api('PATCH', `/api/users/${user.id}`, { group: v.group.trim() })));
    if (saved) onSaved(saved);
  };
  return html`
    <form onSubmit=${onSubmit} novalidate>
      <${FormError} error=${form.errors._} />
      ${mode === 'topup'
        ? html`<${TextField} id=${`${id}-amount`} label=${t('field.amount')} type="number" min="1" required
            hint=${t('hint.quota_units')} ...${form.bind('amount')} />`
        : html`<${TextField} id=${`${id}-group`} label=${t('field.group')} required ...${form.bind('group')} />`}
      <div class="actions">
        <button type="button" onClick=${onClose}>${t('action.cancel')}</button>
        <${Submit} busy=${form.busy}>${mode === 'topup' ? t('users.topup') : t('action.save')}</${Submit}>
      </div>
    </form>`;
}

export default function Users() {
  const session = useSession();
  const upu = session.instance ? session.instance.units_per_usd : 1000000;
  const root = session.user.role === 'root';
  useTitle(t('nav.users'));
  const users = useLoad(() => all('/api/users'), []);
  const [edit, setEdit] = useState(null);
  const [notice, setNotice] = useState(null);
  const [error, setError] = useState(null);
  const items = users.data || [];
  const replace = (u) => users.setData((d) => d.map((x) => (x.id === u.id ? u : x)));

  const setStatus = async (u, status) => {
    setError(null);
    try {
      replace(await api('PATCH', `/api/users/${u.id}`, { status }));
    } catch (e) {
      setError(e.message);
    }
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.users')} />
    <${Notice}>${notice}</${Notice}>
    <${Section} title=${t('users.new')}>
      <${CreateUser} root=${root} onCreated=${(u) => {
        users.setData((d) => [...(d || []), u]);
        setNotice(t('users.created', { name: u.username }));
      }} />
    </${Section}>
    <h2>${t('users.list')}</h2>
    <${LoadState} load=${users} />
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    ${users.data && !items.length && html`<${Empty}>${t('users.empty')}</${Empty}>`}
    ${items.length > 0 && html`
      <${TableWrap} label=${t('users.list')}>
        <table>
          <thead><tr>
            <th scope="col">${t('field.username')}</th><th scope="col">${t('field.email')}</th><th scope="col">${t('field.role')}</th>
            <th scope="col">${t('field.group')}</th><th scope="col">${t('col.status')}</th><th scope="col">${t('col.quota_left')}</th>
            <th scope="col">${t('col.used')}</th><th scope="col">${t('col.requests')}</th><th scope="col"><span class="sr">${t('col.actions')}</span></th>
          </tr></thead>
          <tbody>${items.map((u) => {
            const self = u.id === session.user.id;
            const mayEdit = !self && u.role !== 'root' && (root || u.role === 'user');
            return html`<tr key=${u.id} data-user-id=${u.id}>
              <th scope="row">${u.username}</th><td>${u.email || '—'}</td><td>${t(`role.${u.role}`)}</td><td>${u.group}</td>
              <td><${StatusBadge} status=${u.status} /></td>
              <td class="num">${cost(u.quota, upu)}</td><td class="num">${cost(u.used_quota, upu)}</td>
              <td class="num">${num(u.request_count)}</td>
              <td class="row-actions">
                <button type="button" onClick=${() => setEdit({ user: u, mode: 'topup' })} aria-label=${t('users.topup_x', { name: u.username })}>${t('users.topup')}</button>
                <button type="button" onClick=${() => setEdit({ user: u, mode: 'group' })} aria-label=${t('users.group_x', { name: u.username })}>${t('users.group')}</button>
                ${mayEdit && html`<button type="button" onClick=${() => setStatus(u, u.status === 'enabled' ? 'disabled' : 'enabled')}
                  aria-label=${t(u.status === 'enabled' ? 'users.disable_x' : 'users.enable_x', { name: u.username })}>
                  ${t(u.status === 'enabled' ? 'action.disable' : 'action.enable')}</button>`}
              </td></tr>`;
          })}</tbody>
        </table>
      </${TableWrap}>`}
    <${Dialog} open=${!!edit} title=${edit ? t(edit.mode === 'topup' ? 'users.topup_x' : 'users.group_x', { name: edit.user.username }) : ''}
      onClose=${() => setEdit(null)}>
      ${edit && html`<${UserEdit} user=${edit.user} mode=${edit.mode} onClose=${() => setEdit(null)}
        onSaved=${(u) => { replace(u); setEdit(null); }} />`}
    </${Dialog}></div>`;
}
