// Numbers, times and money as the viewer reads them: their language, their
// time zone (the browser's), quota units next to dollars.

import { lang, t } from './i18n.js';

export function num(n) {
  return new Intl.NumberFormat(lang()).format(n ?? 0);
}

/** A date and time in the viewer's zone. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(lang(), { dateStyle: 'medium', timeStyle: 'medium' }).format(d);
}

/** A short day label for chart axes and tables. */
export function day(d) {
  return new Intl.DateTimeFormat(lang(), { month: 'short', day: 'numeric' }).format(d);
}

/** US dollars for an amount of quota units. */
export function usd(units, unitsPerUsd) {
  const dollars = (units ?? 0) / (unitsPerUsd || 1000000);
  const digits = dollars === 0 ? 2 : dollars < 0.01 ? 6 : dollars < 1 ? 4 : 2;
  return new Intl.NumberFormat(lang(), {
    style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: digits,
  }).format(dollars);
}

/** "1,234 units ($0.001234)". */
export function cost(units, unitsPerUsd) {
  return `${t('units', { n: num(units) })} (${usd(units, unitsPerUsd)})`;
}

/** Milliseconds as "850 ms" or "2.4 s". */
export function ms(v) {
  if (v == null) return '—';
  if (v < 1000) return `${num(v)} ms`;
  return `${new Intl.NumberFormat(lang(), { maximumFractionDigits: 1 }).format(v / 1000)} s`;
}

/** A `datetime-local` input's value (viewer's zone) as RFC 3339, or null. */
export function localToIso(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** An RFC 3339 time as a `datetime-local` value in the viewer's zone. */
export function isoToLocal(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
