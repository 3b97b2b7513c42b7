// A copy-to-clipboard button, and a block of text that has one.

import { html, useState } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';

async function writeClipboard(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-HTTP deployments have no async clipboard: fall back to a selection.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  if (!ok) throw new Error('copy failed');
}

/** "Copy" button; `what` names what it copies for screen readers and tests. */
export function CopyButton({ text, what }) {
  const [state, setState] = useState('idle');
  const copy = async () => {
    try {
      await writeClipboard(text);
      setState('done');
    } catch {
      setState('failed');
    }
    setTimeout(() => setState('idle'), 2500);
  };
  const label = what ? t('copy.what', { what }) : t('copy.copy');
  return html`
    <span class="copy">
      <button type="button" onClick=${copy} aria-label=${label}>${t('copy.copy')}</button>
      <span class="copy-state" role="status">${state === 'done' ? t('copy.done') : state === 'failed' ? t('copy.failed') : ''}</span>
    </span>`;
}

/** A titled code block with a copy button. */
export function CodeBlock({ title, code, id }) {
  return html`
    <section class="code-block" aria-labelledby=${id}>
      <div class="code-head">
        <h3 id=${id}>${title}</h3>
        <${CopyButton} text=${code} what=${title} />
      </div>
      <pre tabindex="0"><code>${code}</code></pre>
    </section>`;
}
