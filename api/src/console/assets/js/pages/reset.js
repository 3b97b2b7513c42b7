// Password reset: without a token, ask for the mail address; with the link's
// token, choose the new password and go to sign-in.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { navigate } from '../router.js';
import { useForm, useIds, TextField, FormError, Notice, Submit, fieldError } from '../components/form.js';
import { useTitle } from '../components/ui.js';

function AskForLink({ id }) {
  const form = useForm({ email: '' });
  const [sent, setSent] = useState(false);
  const onSubmit = async (e) => {
    e.preventDefault();
    setSent(false);
    const ok = await form.submit(async (v) => {
      try {
        await api('POST', '/api/auth/password-reset', { email: v.email.trim() });
      } catch (err) {
        if (err.status === 503) err.message = t('reset.no_mail');
        throw err;
      }
      return true;
    });
    if (ok) setSent(true);
  };
  return html`<div class="page">
    <p>${t('reset.ask_intro')}</p>
    <${Notice}>${sent ? t('reset.sent') : null}</${Notice}>
    <form onSubmit=${onSubmit} novalidate>
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-email`} label=${t('field.email')} type="email" autocomplete="email" required
        ...${form.bind('email')} />
      <${Submit} busy=${form.busy}>${t('reset.send')}</${Submit}>
    </form></div>`;
}

function ChooseNew({ id, token }) {
  const form = useForm({ new_password: '', confirm: '' });
  const onSubmit = async (e) => {
    e.preventDefault();
    const ok = await form.submit(async (v) => {
      if (v.new_password !== v.confirm) throw fieldError('confirm', t('password.mismatch'));
      await api('POST', '/api/auth/password-reset/confirm', { token, new_password: v.new_password });
      return true;
    });
    if (ok) navigate('/login?notice=reset', { replace: true });
  };
  return html`
    <form onSubmit=${onSubmit} novalidate>
      <${FormError} error=${form.errors._} />
      <${TextField} id=${`${id}-new`} label=${t('field.new_password')} type="password" autocomplete="new-password" required
        hint=${t('hint.password')} ...${form.bind('new_password')} />
      <${TextField} id=${`${id}-confirm`} label=${t('field.confirm_password')} type="password" autocomplete="new-password"
        required ...${form.bind('confirm')} />
      <${Submit} busy=${form.busy}>${t('reset.submit')}</${Submit}>
    </form>`;
}

export default function Reset({ query }) {
  const id = useIds('reset');
  const token = query.get('token');
  useTitle(t('reset.title'));
  return html`
    <section class="auth-card" aria-labelledby=${`${id}-h`}>
      <h1 id=${`${id}-h`}>${t('reset.title')}</h1>
      ${token ? html`<${ChooseNew} id=${id} token=${token} />` : html`<${AskForLink} id=${id} />`}
      <p class="aside"><a href="/login">${t('reset.back')}</a></p>
    </section>`;
}
