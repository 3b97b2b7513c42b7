// Form fields with visible labels, and errors from the API shown next to the
// field they name (`param`) or at the top of the form.

import { html, useState, useCallback } from '../../vendor/htm-preact-standalone.module.js';
import { t } from '../i18n.js';

let seq = 0;
/** A page-unique prefix for field ids, stable for a component's life. */
export function useIds(prefix) {
  const [id] = useState(() => `${prefix}-${++seq}`);
  return id;
}

/**
 * Form state: values, per-field errors (`errors[param]`), a form-level error
 * (`errors._`) and a busy flag. `fields` names the params shown beside a field;
 * an error about anything else goes to the top.
 */
export function useForm(initial, fields) {
  const [values, setValues] = useState(initial);
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const known = fields || Object.keys(initial);

  const set = useCallback((name, value) => setValues((v) => ({ ...v, [name]: value })), []);
  const bind = (name) => ({
    name,
    value: values[name],
    error: errors[name],
    onInput: (e) => set(name, e.target.type === 'checkbox' ? e.target.checked : e.target.value),
  });

  /** Run `fn`; an ApiError becomes field or form errors. Resolves with fn's result or undefined. */
  async function submit(fn) {
    setBusy(true);
    setErrors({});
    try {
      return await fn(values);
    } catch (err) {
      setErrors(errorsFrom(err, known));
      return undefined;
    } finally {
      setBusy(false);
    }
  }

  return { values, setValues, set, bind, errors, setErrors, busy, submit, reset: () => setValues(initial) };
}

/** An error as `{field: message}` when it names a known field, else `{_: message}`. */
export function errorsFrom(err, known = []) {
  if (err && err.field) return { [err.field]: err.message };
  const message = err && err.message ? err.message : String(err);
  if (err && err.param && known.includes(err.param)) return { [err.param]: message };
  if (err && err.status === 429) {
    return { _: err.retryAfter ? t('error.throttled_for', { s: err.retryAfter }) : t('error.throttled') };
  }
  if (err && err.status === 0) return { _: t('error.network') };
  return { _: message };
}

/** A client-side check failing on one field. */
export function fieldError(field, message) {
  const e = new Error(message);
  e.field = field;
  return e;
}

function describedBy(id, error, hint) {
  const ids = [];
  if (hint) ids.push(`${id}-hint`);
  if (error) ids.push(`${id}-error`);
  return ids.length ? ids.join(' ') : undefined;
}

// A plain function, not a component: a component whose root is a fragment
// can have its new children placed out of order by Preact.
function help(id, error, hint) {
  return [
    hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`,
    error && html`<p class="field-error" id=${`${id}-error`}>${error}</p>`,
  ];
}

/** `<input>` with its label, hint and error. */
export function TextField({ id, label, error, hint, type = 'text', class: cls, ...rest }) {
  return html`
    <div class=${`field ${cls || ''}`}>
      <label for=${id}>${label}</label>
      <input id=${id} type=${type} aria-invalid=${error ? 'true' : undefined}
        aria-describedby=${describedBy(id, error, hint)} ...${rest} />
      ${help(id, error, hint)}
    </div>`;
}

/** `<textarea>` with its label, hint and error. */
export function TextArea({ id, label, error, hint, rows = 4, class: cls, ...rest }) {
  return html`
    <div class=${`field ${cls || ''}`}>
      <label for=${id}>${label}</label>
      <textarea id=${id} rows=${rows} aria-invalid=${error ? 'true' : undefined}
        aria-describedby=${describedBy(id, error, hint)} ...${rest}></textarea>
      ${help(id, error, hint)}
    </div>`;
}

/** `<select>` from `options` (`[{value, label}]`). */
export function Select({ id, label, error, hint, options, class: cls, ...rest }) {
  return html`
    <div class=${`field ${cls || ''}`}>
      <label for=${id}>${label}</label>
      <select id=${id} aria-invalid=${error ? 'true' : undefined}
        aria-describedby=${describedBy(id, error, hint)} ...${rest}>
        ${options.map((o) => html`<option value=${o.value}>${o.label}</option>`)}
      </select>
      ${help(id, error, hint)}
    </div>`;
}

/** A checkbox with its label after it. */
export function Checkbox({ id, label, checked, onChange, ...rest }) {
  return html`
    <div class="check">
      <input id=${id} type="checkbox" checked=${checked} onChange=${onChange} ...${rest} />
      <label for=${id}>${label}</label>
    </div>`;
}

/** The form-level error, announced when it appears. */
export function FormError({ error }) {
  return error ? html`<p class="form-error" role="alert">${error}</p>` : null;
}

/** A success or information line, announced politely. */
export function Notice({ children, kind = 'ok' }) {
  return children ? html`<p class=${`notice notice-${kind}`} role="status">${children}</p>` : null;
}

/** The submit button; shows that the form is working. */
export function Submit({ busy, children, class: cls }) {
  return html`<button type="submit" class=${`primary ${cls || ''}`} disabled=${busy} aria-busy=${busy ? 'true' : undefined}>
    ${children}</button>`;
}

/** Lines of a textarea, trimmed, blanks dropped; commas split too when `commas`. */
export function lines(text, commas = false) {
  return (text || '')
    .split(commas ? /[\n,]/ : /\n/)
    .map((s) => s.trim())
    .filter(Boolean);
}
