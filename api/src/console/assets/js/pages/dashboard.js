// Dashboard: requests, tokens and cost over time per model (admins: per user
// or channel too, and everyone's), with totals, errors and 429s. Days are cut
// at the viewer's midnight: the time zone goes with every query.

import { html, useMemo, useState } from '../../vendor/htm-preact-standalone.module.js';
import { api, query, timeZone } from '../api.js';
import { t } from '../i18n.js';
import { useSession, isAdmin } from '../context.js';
import { num, usd, cost } from '../format.js';
import { useIds, Select } from '../components/form.js';
import { useTitle, useLoad, PageHead, LoadState, Empty, TableWrap } from '../components/ui.js';
import { Chart } from '../components/chart.js';

const RANGES = { day: { days: 1, interval: 'hour' }, week: { days: 7, interval: 'day' }, month: { days: 30, interval: 'day' } };

/** Bucket starts (seconds) from `from` to now, in the viewer's zone. */
function buckets(range) {
  const now = new Date();
  const out = [];
  if (range.interval === 'hour') {
    const start = new Date(now);
    start.setMinutes(0, 0, 0);
    for (let i = 23; i >= 0; i--) out.push(Math.floor((start.getTime() - i * 3600000) / 1000));
  } else {
    for (let i = range.days - 1; i >= 0; i--) {
      out.push(Math.floor(new Date(now.getFullYear(), now.getMonth(), now.getDate() - i).getTime() / 1000));
    }
  }
  return out;
}

function rangeFrom(range) {
  return new Date(buckets(range)[0] * 1000).toISOString();
}

/** Rows of `/api/logs/series` as chart data, with zeros where a bucket had no requests. */
function toSeries(rows, xs0) {
  const xsSet = new Set(xs0);
  for (const r of rows) xsSet.add(Math.floor(Date.parse(r.start) / 1000));
  const xs = [...xsSet].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const keys = new Map();
  for (const r of rows) if (!keys.has(r.key)) keys.set(r.key, r.label || r.key);
  const make = (field) => [...keys].map(([key, label]) => {
    const values = xs.map(() => 0);
    for (const r of rows) if (r.key === key) values[index.get(Math.floor(Date.parse(r.start) / 1000))] += field(r);
    return { label, values };
  });
  return {
    xs,
    requests: make((r) => r.requests),
    tokens: make((r) => r.prompt_tokens + r.completion_tokens),
    cost: make((r) => r.quota),
    count: keys.size,
  };
}

function Totals({ total, upu }) {
  const cards = [
    ['dash.requests', num(total.requests)],
    ['dash.tokens_in', num(total.prompt_tokens)],
    ['dash.tokens_out', num(total.completion_tokens)],
    ['dash.cost', usd(total.quota, upu), t('units', { n: num(total.quota) })],
    ['dash.errors', num(total.errors)],
    ['dash.rate_limited', num(total.rate_limited ?? 0)],
  ];
  return html`<dl class="cards">
    ${cards.map(([k, v, sub]) => html`<div class="card"><dt>${t(k)}</dt><dd>${v}${sub && html`<span class="sub">${sub}</span>`}</dd></div>`)}
  </dl>`;
}

export default function Dashboard() {
  const session = useSession();
  const admin = isAdmin(session.user);
  const upu = session.instance ? session.instance.units_per_usd : 1000000;
  const id = useIds('dash');
  useTitle(t('nav.dashboard'));
  const [range, setRange] = useState('week');
  const [scope, setScope] = useState('mine');
  const [by, setBy] = useState('model');
  const r = RANGES[range];
  const userId = admin && scope === 'mine' ? session.user.id : null;

  const data = useLoad(async () => {
    const from = rangeFrom(r);
    const filters = { from, tz: timeZone, user_id: userId };
    const [series, stats] = await Promise.all([
      api('GET', `/api/logs/series${query({ ...filters, interval: r.interval, by })}`),
      api('GET', `/api/logs/stats${query({ ...filters, group_by: by })}`),
    ]);
    return { series, stats };
  }, [range, scope, by]);

  const charts = useMemo(() => (data.data ? toSeries(data.data.series.rows || [], buckets(r)) : null), [data.data]);

  return html`<div class="page">
    <${PageHead} title=${t('nav.dashboard')} />
    <div class="filters" role="group" aria-label=${t('dash.view')}>
      <${Select} id=${`${id}-range`} label=${t('dash.range')} value=${range} onChange=${(e) => setRange(e.target.value)}
        options=${[{ value: 'day', label: t('dash.range_day') }, { value: 'week', label: t('dash.range_week') }, { value: 'month', label: t('dash.range_month') }]} />
      ${admin && html`
        <${Select} id=${`${id}-scope`} label=${t('dash.scope')} value=${scope} onChange=${(e) => setScope(e.target.value)}
          options=${[{ value: 'mine', label: t('dash.scope_mine') }, { value: 'all', label: t('dash.scope_all') }]} />
        <${Select} id=${`${id}-by`} label=${t('dash.by')} value=${by} onChange=${(e) => setBy(e.target.value)}
          options=${[{ value: 'model', label: t('dash.by_model') }, { value: 'user', label: t('dash.by_user') }, { value: 'channel', label: t('dash.by_channel') }]} />`}
    </div>
    <${LoadState} load=${data} />
    ${data.data && html`
      <h2 class="sr">${t('dash.totals')}</h2>
      <${Totals} total=${data.data.stats.total} upu=${upu} />
      ${charts.count === 0
        ? html`<${Empty}>${t('dash.no_usage')} <a href="/tokens">${t('dash.create_token')}</a></${Empty}>`
        : html`
          <div class="charts">
            <${Chart} id=${`${id}-c1`} title=${t('dash.chart_requests')} xs=${charts.xs} series=${charts.requests} fmt=${num} />
            <${Chart} id=${`${id}-c2`} title=${t('dash.chart_tokens')} xs=${charts.xs} series=${charts.tokens} fmt=${num} />
            <${Chart} id=${`${id}-c3`} title=${t('dash.chart_cost')} xs=${charts.xs} series=${charts.cost} fmt=${num} />
          </div>`}
      ${data.data.stats.rows.length > 0 && html`
        <h2>${t(`dash.table_${by}`)}</h2>
        <${TableWrap} label=${t(`dash.table_${by}`)}>
          <table>
            <thead><tr>
              <th scope="col">${t(`dash.by_${by}`)}</th><th scope="col">${t('col.requests')}</th>
              <th scope="col">${t('col.tokens_in')}</th><th scope="col">${t('col.tokens_out')}</th>
              <th scope="col">${t('col.cost')}</th><th scope="col">${t('col.errors')}</th><th scope="col">${t('col.rate_limited')}</th>
            </tr></thead>
            <tbody>${data.data.stats.rows.map((row) => html`<tr key=${row.key}>
              <th scope="row">${row.label || row.key}</th><td class="num">${num(row.requests)}</td>
              <td class="num">${num(row.prompt_tokens)}</td><td class="num">${num(row.completion_tokens)}</td>
              <td class="num">${cost(row.quota, upu)}</td><td class="num">${num(row.errors)}</td>
              <td class="num">${num(row.rate_limited ?? 0)}</td></tr>`)}</tbody>
          </table>
        </${TableWrap}>`}`}</div>`;
}
