// Change password. When the server requires it (root's first sign-in) this is
// the only page there is, and it says why.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { navigate } from '../router.js';
import { useSession } from '../context.js';
import { useForm, useIds, TextField, FormError, Notice, Submit, fieldError } from '../components/form.js';
import { useTitle } from '../components/ui.js';

export default function Password() {
  const session = useSession();
  const id = useIds('pw');
  const form = useForm({ current_password: '', new_password: '', confirm: '' });
  const [done, setDone] = useState(false);
  useTitle(t('password.title'));
  const forced = session.forced;

  const onSubmit = async (e) => {
    e.preventDefault();
    setDone(false);
    const body = await form.submit(async (v) => {
      if (v.new_password !== v.confirm) throw fieldError('confirm', t('password.mismatch'));
      return api('POST', '/api/auth/password', { current_password: v.current_password, new_password: v.new_password });
    });
    if (!body) return;
    form.reset();
    await session.signedIn(body);
    if (forced) navigate('/', { replace: true });
    else setDone(true);
  };

  return html`
    <section class="auth-card" aria-labelledby=${`${id}-h`}>
      <h1 id=${`${id}-h`}>${forced ? t('password.forced_title') : t('password.title')}</h1>
      ${forced && html`<p class="notice notice-warn">${t('password.forced_why')}</p>`}
      <${Notice}>${done ? t('password.changed') : null}</${Notice}>
      <form onSubmit=${onSubmit} novalidate>
        <${FormError} error=${form.errors._} />
        <${TextField} id=${`${id}-cur`} label=${t('field.current_password')} type="password" autocomplete="current-password"
          required ...${form.bind('current_password')} />
        <${TextField} id=${`${id}-new`} label=${t('field.new_password')} type="password" autocomplete="new-password"
          required hint=${t('hint.password')} ...${form.bind('new_password')} />
        <${TextField} id=${`${id}-confirm`} label=${t('field.confirm_password')} type="password" autocomplete="new-password"
          required ...${form.bind('confirm')} />
        <${Submit} busy=${form.busy}>${t('password.submit')}</${Submit}>
      </form>
    </section>`;
}
