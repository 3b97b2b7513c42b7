import { html } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';
import { useTitle } from '../components/ui.js';

export default function NotFound() {
  useTitle(t('notfound.title'));
  return html`<section><h1>${t('notfound.title')}</h1><p><a href="/">${t('refused.back')}</a></p></section>`;
}
