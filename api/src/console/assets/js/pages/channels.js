// Channels: the upstream providers and their keys. The list and the create
// form are here; one channel's page is `channel.js`.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { navigate } from '../router.js';
import { num } from '../format.js';
import { useIds, Notice } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, StatusBadge, Badge, TableWrap, Section, settled } from '../components/ui.js';
import { ChannelForm } from '../components/channel-form.js';
import ChannelPage from './channel.js';

function ChannelList() {
  const id = useIds('ch');
  useTitle(t('nav.channels'));
  const channels = useLoad(() => api('GET', '/api/channels'), []);
  const [notice, setNotice] = useState(null);
  const items = channels.data || [];

  const create = async (body) => {
    const created = await api('POST', '/api/channels', body);
    channels.setData((d) => [...(d || []), created.channel]);
    setNotice(t('channels.created', { name: created.channel.name, added: created.keys.added.length, dup: created.keys.duplicates }));
    return created;
  };

  return html`<div class="page">
    <${PageHead} title=${t('nav.channels')} />
    <${Notice}>${notice}</${Notice}>
    ${settled(channels) && html`
      <${Section} title=${t('channels.new')} open=${!items.length ? true : undefined}>
        <${ChannelForm} id=${id} isNew onSave=${create} submitLabel=${t('channels.create')} />
      </${Section}>`}
    <h2>${t('channels.list')}</h2>
    <${LoadState} load=${channels} />
    ${channels.data && !items.length && html`<${Empty}>${t('channels.empty')}</${Empty}>`}
    ${items.length > 0 && html`
      <${TableWrap} label=${t('channels.list')}>
        <table>
          <thead><tr>
            <th scope="col">${t('col.name')}</th><th scope="col">${t('col.status')}</th><th scope="col">${t('field.base_url')}</th>
            <th scope="col">${t('col.models')}</th><th scope="col">${t('col.keys')}</th><th scope="col">${t('field.priority')}</th>
            <th scope="col">${t('field.weight')}</th><th scope="col">${t('col.limits')}</th>
          </tr></thead>
          <tbody>${items.map((c) => html`<tr key=${c.id}>
            <th scope="row"><a href=${`/channels/${c.id}`}>${c.name}</a> ${c.managed_by === 'config' && html`<${Badge}>${t('badge.config')}</${Badge}>`}</th>
            <td><${StatusBadge} status=${c.status} /></td>
            <td><code>${c.base_url}</code></td>
            <td>${c.models.join(', ')}</td>
            <td class="num">${num(c.key_count)}</td>
            <td class="num">${c.priority}</td>
            <td class="num">${c.weight}</td>
            <td>${t('channels.limits', { rpm: c.rpm || '∞', tpm: c.tpm || '∞' })}</td>
          </tr>`)}</tbody>
        </table>
      </${TableWrap}>`}</div>`;
}

export default function Channels({ rest }) {
  if (rest[0] && /^\d+$/.test(rest[0])) return html`<${ChannelPage} channelId=${rest[0]} onGone=${() => navigate('/channels')} />`;
  return html`<${ChannelList} />`;
}
