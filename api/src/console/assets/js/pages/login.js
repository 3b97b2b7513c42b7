// Sign in. After a password reset the page says so; a first sign-in of root
// goes on to the forced password change.

import { html, useEffect } from '../../vendor/htm-preact-standalone.module.js';
import { api } from '../api.js';
import { t } from '../i18n.js';
import { navigate, safeNext } from '../router.js';
import { useSession } from '../context.js';
import { useForm, useIds, TextField, FormError, Notice, Submit } from '../components/form.js';
import { useTitle } from '../components/ui.js';

export default function Login({ query }) {
  const session = useSession();
  const id = useIds('login');
  const form = useForm({ username: '', password: '' });
  useTitle(t('login.title'));
  const next = safeNext(query.get('next'));

  useEffect(() => {
    if (session.user && !session.forced) navigate(next, { replace: true });
  }, []);

  const onSubmit = async (e) => {
    e.preventDefault();
    const body = await form.submit((v) => api('POST', '/api/auth/login', { username: v.username.trim(), password: v.password }));
    if (!body) return;
    await session.signedIn(body);
    navigate(body.must_change_password ? '/password' : next, { replace: true });
  };

  const notice = query.get('notice');
  return html`
    <section class="auth-card" aria-labelledby=${`${id}-h`}>
      <h1 id=${`${id}-h`}>${t('login.title')}</h1>
      <${Notice}>${notice === 'reset' ? t('login.after_reset') : notice === 'signedout' ? t('login.signed_out') : null}</${Notice}>
      <form onSubmit=${onSubmit} novalidate>
        <${FormError} error=${form.errors._} />
        <${TextField} id=${`${id}-user`} label=${t('field.username')} autocomplete="username" required
          ...${form.bind('username')} />
        <${TextField} id=${`${id}-pass`} label=${t('field.password')} type="password" autocomplete="current-password" required
          ...${form.bind('password')} />
        <${Submit} busy=${form.busy}>${t('login.submit')}</${Submit}>
      </form>
      <p class="aside"><a href="/reset">${t('login.forgot')}</a></p>
    </section>`;
}
