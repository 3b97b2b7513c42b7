// Modal dialogs on the native <dialog>: showModal() keeps focus inside and
// Escape closes it; focus goes back to what opened it.

import { html, useEffect, useRef, useState } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';
import { useIds } from './form.js';

/** A modal shown while `open`; `onClose` is called on Escape or a close button. */
export function Dialog({ open, title, onClose, children }) {
  const ref = useRef(null);
  const opener = useRef(null);
  const id = useIds('dlg');
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
      const first = d.querySelector('input, select, textarea, button.primary, button');
      if (first) first.focus();
    } else if (!open && d.open) {
      d.close();
    }
    if (!open && opener.current && opener.current.isConnected) {
      opener.current.focus();
      opener.current = null;
    }
  }, [open]);
  const cancel = (e) => {
    e.preventDefault();
    onClose();
  };
  return html`
    <dialog ref=${ref} aria-labelledby=${`${id}-title`} onCancel=${cancel}>
      ${open && html`
        <div class="dialog-head">
          <h2 id=${`${id}-title`}>${title}</h2>
          <button type="button" class="icon" aria-label=${t('action.close')} onClick=${onClose}>×</button>
        </div>
        ${children}`}
    </dialog>`;
}

/**
 * A yes/no question: `const [confirmEl, ask] = useConfirm();` then
 * `if (await ask({title, message, confirm})) …`, rendering `confirmEl`.
 */
export function useConfirm() {
  const [q, setQ] = useState(null);
  const ask = (question) => new Promise((resolve) => setQ({ ...question, resolve }));
  const answer = (yes) => {
    q.resolve(yes);
    setQ(null);
  };
  const el = html`
    <${Dialog} open=${!!q} title=${q ? q.title : ''} onClose=${() => answer(false)}>
      ${q && html`
        <p>${q.message}</p>
        <div class="actions">
          <button type="button" onClick=${() => answer(false)}>${t('action.cancel')}</button>
          <button type="button" class=${q.danger === false ? 'primary' : 'danger'} onClick=${() => answer(true)}>
            ${q.confirm || t('action.confirm')}</button>
        </div>`}
    </${Dialog}>`;
  return [el, ask];
}
