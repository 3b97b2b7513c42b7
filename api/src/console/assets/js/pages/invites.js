// Invites (admins): send one by mail, see which are pending, used or
// expired, revoke a pending one.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, all } from '../api.js';
import { t } from '../i18n.js';
import { useSession } from '../context.js';
import { when, num } from '../format.js';
import { useForm, useIds, TextField, Select, FormError, Notice, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge, TableWrap } from '../components/ui.js';
import { useConfirm } from '../components/dialog.js';

function SendInvite({ root, onSent }) {
  const id = useIds('ni');
  const form = useForm({ email: '', role: 'user', group: '', quota: '' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const inv = await form.submit((v) => {
      const body = { email: v.email.trim(), role: v.role };
      if (v.group.trim()) body.group = v.group.trim();
      if (String(v.quota).trim() !== '') body.quota = Number(v.quota);
      return api('POST', '/api/invites', body);
    });
    if (!inv) return;
    form.reset();
    onSent(inv);
  };
  const roles = [{ value: 'user', label: t('role.user') }];
  if (root) roles.push({ value: 'admin', label: t('role.admin') });
  return html`
    <form onSubmit=${onSubmit} novalidate class="grid-form">
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-email`} label=${t('field.email')} type="email" required autocomplete="off" ...${form.bind('email')} />
      <${Select} id=${`${id}-role`} label=${t('field.role')} options=${roles} ...${form.bind('role')} />
      <${TextField} id=${`${id}-group`} label=${t('field.group')} hint=${t('hint.group')} ...${form.bind('group')} />
      <${TextField} id=${`${id}-quota`} label=${t('field.quota')} type="number" min="0" hint=${t('hint.quota_units')} ...${form.bind('quota')} />
      <div class="actions wide"><${Submit} busy=${form.busy}>${t('invites.send')}</${Submit}></div>
    </form>`;
}

export default function Invites() {
  const session = useSession();
  const root = session.user.role === 'root';
  useTitle(t('nav.invites'));
  const invites = useLoad(() => all('/api/invites'), []);
  const [notice, setNotice] = useState(null);
  const [error, setError] = useState(null);
  const [confirmEl, ask] = useConfirm();
  const items = invites.data || [];

  const revoke = async (inv) => {
    if (!(await ask({ title: t('invites.revoke_title'), message: t('invites.revoke_q', { email: inv.email }), confirm: t('invites.revoke') }))) return;
    setError(null);
    try {
      await api('DELETE', `/api/invites/${inv.id}`);
      invites.setData((d) => d.filter((x) => x.id !== inv.id));
    } catch (e) {
      setError(e.message);
    }
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.invites')} />
    ${session.instance && session.instance.mail_enabled === false && html`<p class="notice notice-warn">${t('invites.no_mail')}</p>`}
    <section class="panel" aria-labelledby="send-invite-h">
      <h2 id="send-invite-h">${t('invites.new')}</h2>
      <${Notice}>${notice}</${Notice}>
      <${SendInvite} root=${root} onSent=${(inv) => {
        invites.setData((d) => [inv, ...(d || []).filter((x) => !(x.email === inv.email && x.status === 'pending'))]);
        setNotice(t('invites.sent', { email: inv.email }));
      }} />
    </section>
    <h2>${t('invites.list')}</h2>
    <${LoadState} load=${invites} />
    ${error && html`<p class="form-error" role="alert">${error}</p>`}
    ${invites.data && !items.length && html`<${Empty}>${t('invites.empty')}</${Empty}>`}
    ${items.length > 0 && html`
      <${TableWrap} label=${t('invites.list')}>
        <table>
          <thead><tr>
            <th scope="col">${t('field.email')}</th><th scope="col">${t('field.role')}</th><th scope="col">${t('field.group')}</th>
            <th scope="col">${t('field.quota')}</th><th scope="col">${t('col.status')}</th><th scope="col">${t('col.sent')}</th>
            <th scope="col">${t('col.expires')}</th><th scope="col"><span class="sr">${t('col.actions')}</span></th>
          </tr></thead>
          <tbody>${items.map((inv) => html`<tr key=${inv.id}>
            <th scope="row">${inv.email}</th><td>${t(`role.${inv.role}`)}</td><td>${inv.group}</td><td class="num">${num(inv.quota)}</td>
            <td><${StatusBadge} status=${inv.status} /></td><td>${when(inv.created_at)}</td>
            <td>${inv.status === 'used' ? t('invites.used_at', { at: when(inv.used_at) }) : when(inv.expires_at)}</td>
            <td class="row-actions">${inv.status === 'pending' && html`<button type="button" class="danger" onClick=${() => revoke(inv)}
              aria-label=${t('invites.revoke_x', { email: inv.email })}>${t('invites.revoke')}</button>`}</td>
          </tr>`)}</tbody>
        </table>
      </${TableWrap}>`}
    ${confirmEl}</div>`;
}
