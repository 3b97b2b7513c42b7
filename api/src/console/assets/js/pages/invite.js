// Accept an invite: the link's token is checked first, so a dead link says so
// at once; then the invitee picks a name and password and is signed in.

import { html } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { navigate } from '../router.js';
import { useSession } from '../context.js';
import { useForm, useIds, TextField, FormError, Submit, fieldError } from '../components/form.js';
import { useTitle, useLoad, LoadState } from '../components/ui.js';

export default function Invite({ query }) {
  const session = useSession();
  const id = useIds('inv');
  const token = query.get('token') || '';
  useTitle(t('invite.title'));
  const invite = useLoad(() => (token ? api('POST', '/api/invites/inspect', { token }) : Promise.reject(new Error(t('invite.no_token')))), [token]);
  const form = useForm({ username: '', password: '', confirm: '' });

  const onSubmit = async (e) => {
    e.preventDefault();
    const body = await form.submit(async (v) => {
      if (v.password !== v.confirm) throw fieldError('confirm', t('password.mismatch'));
      return api('POST', '/api/invites/accept', { token, username: v.username.trim(), password: v.password });
    });
    if (!body) return;
    await session.signedIn(body);
    navigate('/tokens?welcome=1', { replace: true });
  };

  let content;
  if (invite.error) {
    content = html`
      <p class="form-error" role="alert">${t('invite.dead')} ${invite.error.message}</p>
      <p><a href="/login">${t('invite.to_login')}</a></p>`;
  } else if (!invite.data) {
    content = html`<${LoadState} load=${invite} />`;
  } else {
    const inv = invite.data;
    content = html`
      <p class="greeting">${t('invite.greeting', { email: inv.email, role: t(`role.${inv.role}`) })}</p>
      <form onSubmit=${onSubmit} novalidate>
        <${FormError} error=${form.errors._} />
        <${TextField} id=${`${id}-user`} label=${t('field.username')} autocomplete="username" required
          hint=${t('hint.username')} ...${form.bind('username')} />
        <${TextField} id=${`${id}-pass`} label=${t('field.password')} type="password" autocomplete="new-password" required
          hint=${t('hint.password')} ...${form.bind('password')} />
        <${TextField} id=${`${id}-confirm`} label=${t('field.confirm_password')} type="password" autocomplete="new-password"
          required ...${form.bind('confirm')} />
        <${Submit} busy=${form.busy}>${t('invite.submit')}</${Submit}>
      </form>`;
  }
  return html`
    <section class="auth-card" aria-labelledby=${`${id}-h`}>
      <h1 id=${`${id}-h`}>${t('invite.title')}</h1>
      ${content}
    </section>`;
}
