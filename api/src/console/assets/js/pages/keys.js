// The live key board: every upstream key's window against its configured and
// learned limit, its queue, what is in flight, cooldown and errors, redrawn
// from the server's event stream without a reload.

import { html, useEffect, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, refresh } from '../api.js';
import { t } from '../i18n.js';
import { num, ms } from '../format.js';
import { useTitle, PageHead, Empty } from '../components/ui.js';

/** Subscribe to the key stream; falls back to a refresh when the session cookie expired. */
function useKeyStream() {
  const [keys, setKeys] = useState(null);
  const [state, setState] = useState('connecting');
  const [error, setError] = useState(null);
  useEffect(() => {
    let es = null;
    let closed = false;
    let retry = null;
    const open = () => {
      // Twice a second: a provider answering in under a second would
      // otherwise start and finish between two frames, never seen in flight.
      es = new EventSource('/api/keys/state/stream?interval_ms=500');
      es.addEventListener('keys', (e) => {
        setState('live');
        try {
          setKeys(JSON.parse(e.data));
        } catch {
          // A malformed event is skipped; the next one replaces it.
        }
      });
      es.onopen = () => setState('live');
      es.onerror = () => {
        if (closed) return;
        setState('reconnecting');
        if (es.readyState === EventSource.CLOSED) {
          // The browser gives up on an HTTP error (such as an expired
          // session): renew the cookies, then open the stream again.
          es.close();
          retry = setTimeout(async () => {
            await refresh();
            if (!closed) open();
          }, 2000);
        }
      };
    };
    api('GET', '/api/keys/state')
      .then((k) => {
        if (closed) return;
        setKeys(k);
        open();
      })
      .catch((e) => setError(e.message));
    return () => {
      closed = true;
      clearTimeout(retry);
      if (es) es.close();
    };
  }, []);
  return { keys, state, error };
}

/** A bar of `value` against `limit`, with the learned limit marked when lower. */
function Bar({ label, value, limit, learned, field }) {
  // No limit, no bar: a full bar would read as "exhausted".
  const unlimited = !limit;
  const pct = unlimited ? 0 : Math.min(100, (value / limit) * 100);
  const mark = !unlimited && learned != null && learned < limit ? (learned / limit) * 100 : null;
  const full = !unlimited && value >= (mark != null ? learned : limit);
  return html`
    <div class="bar-row">
      <div class="bar-label"><span>${label}</span>
        <span data-field=${field}>${num(value)}</span><span class="hint"> / ${unlimited ? t('keys.unlimited') : num(limit)}
        ${mark != null && html` · ${t('keys.learned', { n: num(learned) })}`}</span></div>
      ${!unlimited && html`<div class="bar" aria-hidden="true">
        <div class=${`bar-fill ${full ? 'full' : ''}`} style=${{ width: `${pct}%` }}></div>
        ${mark != null && html`<div class="bar-mark" style=${{ left: `${mark}%` }}></div>`}
      </div>`}
    </div>`;
}

function nextFree(k) {
  if (k.disabled || k.health_disabled) return t('keys.never');
  if (k.next_ready_in_ms == null) return t('keys.when_one_ends');
  if (k.next_ready_in_ms === 0) return t('keys.now');
  return t('keys.in', { t: ms(k.next_ready_in_ms) });
}

function KeyCard({ k }) {
  const off = k.disabled || k.health_disabled;
  return html`
    <article class=${`key-card ${off ? 'off' : ''}`} data-key-id=${k.key_id} aria-labelledby=${`key-${k.key_id}`}>
      <header>
        <h2 id=${`key-${k.key_id}`}><code>${k.mask}</code></h2>
        <a href=${`/channels/${k.channel_id}`} class="hint">${k.channel}</a>
        ${off && html`<span class="badge badge-auto_disabled">${t('status.disabled')}</span>`}
      </header>
      ${off && html`<p class="reason">${k.disabled || t('keys.health_disabled')}</p>`}
      <${Bar} label=${t('keys.window')} value=${k.requests_in_window} limit=${k.configured.rpm}
        learned=${k.effective_rpm} field="requests_in_window" />
      <${Bar} label=${t('keys.tokens')} value=${k.tokens_in_window} limit=${k.configured.tpm}
        learned=${k.effective_tpm} field="tokens_in_window" />
      <dl class="key-facts">
        <div><dt>${t('keys.in_flight')}</dt><dd data-field="in_flight">${num(k.in_flight)}${k.configured.max_concurrency ? ` / ${num(k.configured.max_concurrency)}` : ''}</dd></div>
        <div><dt>${t('keys.queue')}</dt><dd data-field="queue_depth">${num(k.queue_depth)}</dd></div>
        <div><dt>${t('keys.cooldown')}</dt><dd data-field="cooldown">${k.cooldown_remaining_ms ? ms(k.cooldown_remaining_ms) : '—'}</dd></div>
        <div><dt>${t('keys.next_free')}</dt><dd data-field="next_free">${nextFree(k)}</dd></div>
        <div><dt>${t('keys.served')}</dt><dd data-field="served">${num(k.served)}</dd></div>
        <div><dt>${t('keys.rate_limited')}</dt><dd data-field="rate_limited">${num(k.rate_limited)}</dd></div>
      </dl>
      ${k.last_error && html`<p class="last-error"><span class="hint">${t('keys.last_error')}:</span> ${k.last_error}</p>`}
    </article>`;
}

export default function Keys() {
  useTitle(t('nav.keys'));
  const { keys, state, error } = useKeyStream();
  const inFlight = keys ? keys.reduce((s, k) => s + k.in_flight, 0) : 0;
  const queued = keys ? keys.reduce((s, k) => Math.max(s, k.queue_depth), 0) : 0;
  return html`<div class="page">
    <${PageHead} title=${t('nav.keys')}>
      <span class=${`live live-${state}`} role="status">${t(`keys.state_${state}`)}</span>
    </${PageHead}>
    ${error && html`<p class="form-error" role="alert">${t('error.load')}: ${error}</p>`}
    ${keys && html`<p class="summary">${t('keys.summary', { keys: num(keys.length), flight: num(inFlight), queued: num(queued) })}</p>`}
    ${keys && !keys.length && html`<${Empty}>${t('keys.empty')} <a href="/channels">${t('keys.add_channel')}</a></${Empty}>`}
    ${keys && html`<div class="key-grid">${keys.map((k) => html`<${KeyCard} key=${k.key_id} k=${k} />`)}</div>`}</div>`;
}
