// Admins (root only): who administers this instance; promote a user, demote
// an admin.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, all } from '../api.js';
import { t } from '../i18n.js';
import { useIds, Select, FormError, Submit } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, TableWrap } from '../components/ui.js';
import { useConfirm } from '../components/dialog.js';

export default function Admins() {
  const id = useIds('adm');
  useTitle(t('nav.admins'));
  const users = useLoad(() => all('/api/users'), []);
  const [pick, setPick] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [confirmEl, ask] = useConfirm();
  const items = users.data || [];
  const admins = items.filter((u) => u.role === 'admin' || u.role === 'root');
  const plain = items.filter((u) => u.role === 'user');

  const setRole = async (userId, role) => {
    setError(null);
    setBusy(true);
    try {
      const u = await api('PATCH', `/api/users/${userId}`, { role });
      users.setData((d) => d.map((x) => (x.id === u.id ? u : x)));
      setPick('');
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const promote = (e) => {
    e.preventDefault();
    if (!pick) {
      setError(t('admins.pick_first'));
      return;
    }
    setRole(Number(pick), 'admin');
  };
  const demote = async (u) => {
    if (!(await ask({ title: t('admins.demote_title'), message: t('admins.demote_q', { name: u.username }), confirm: t('admins.demote') }))) return;
    setRole(u.id, 'user');
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.admins')} />
    <${LoadState} load=${users} />
    <section class="panel" aria-labelledby=${`${id}-p`}>
      <h2 id=${`${id}-p`}>${t('admins.promote_title')}</h2>
      <form onSubmit=${promote} class="inline-form" novalidate>
        <${FormError} error=${error} />
        <${Select} id=${`${id}-user`} label=${t('admins.user')} value=${pick} onChange=${(e) => setPick(e.target.value)}
          options=${[{ value: '', label: t('admins.choose') }, ...plain.map((u) => ({ value: String(u.id), label: u.username }))]} />
        <${Submit} busy=${busy}>${t('admins.promote')}</${Submit}>
      </form>
    </section>
    <h2>${t('admins.list')}</h2>
    ${users.data && !admins.length && html`<${Empty}>${t('admins.empty')}</${Empty}>`}
    ${admins.length > 0 && html`
      <${TableWrap} label=${t('admins.list')}>
        <table>
          <thead><tr><th scope="col">${t('field.username')}</th><th scope="col">${t('field.email')}</th>
            <th scope="col">${t('field.role')}</th><th scope="col"><span class="sr">${t('col.actions')}</span></th></tr></thead>
          <tbody>${admins.map((u) => html`<tr key=${u.id}>
            <th scope="row">${u.username}</th><td>${u.email || '—'}</td><td>${t(`role.${u.role}`)}</td>
            <td class="row-actions">${u.role === 'admin' && html`<button type="button" onClick=${() => demote(u)}
              aria-label=${t('admins.demote_x', { name: u.username })}>${t('admins.demote')}</button>`}</td>
          </tr>`)}</tbody>
        </table>
      </${TableWrap}>`}
    ${confirmEl}</div>`;
}
