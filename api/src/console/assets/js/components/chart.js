// Time-series charts with uPlot, which only the dashboard loads (a same-origin
// <script> and <link>, added when first needed, so other pages stay small).

import { html, useEffect, useRef } from '../../vendor/htm-preact-standalone.module.js';

let loading = null;
/** Load uPlot once; resolves with the global `uPlot`. */
export function loadUplot() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/assets/vendor/uPlot.min.css';
      document.head.appendChild(css);
      const js = document.createElement('script');
      js.src = '/assets/vendor/uPlot.iife.min.js';
      js.onload = () => resolve(window.uPlot);
      js.onerror = () => reject(new Error('uPlot failed to load'));
      document.head.appendChild(js);
    });
  }
  return loading;
}

const PALETTE = ['#2f6fde', '#e0771b', '#1f9d63', '#c2417a', '#7b5cd6', '#b0951a', '#1696a8', '#8a6a4f'];

function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/**
 * A line chart: `xs` in seconds since the epoch, `series` `[{label, values}]`.
 * `fmt` formats y values (axis and legend).
 */
export function Chart({ title, xs, series, fmt, id }) {
  const box = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    let gone = false;
    let observer = null;
    loadUplot().then((UPlot) => {
      if (gone || !box.current) return;
      const fg = cssVar('--muted', '#666');
      const grid = cssVar('--line', '#ddd');
      const panel = cssVar('--panel', '#fff');
      const width = Math.max(200, box.current.clientWidth);
      const opts = {
        width,
        height: 220,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64,
            values: (u, vals) => vals.map((v) => fmt(v)) },
        ],
        series: [{}, ...series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: 2,
          points: { show: xs.length < 40, fill: panel },
          value: (u, v) => (v == null ? '—' : fmt(v)),
        }))],
      };
      plot.current = new UPlot(opts, [xs, ...series.map((s) => s.values)], box.current);
      observer = new ResizeObserver(() => {
        if (plot.current && box.current) plot.current.setSize({ width: Math.max(200, box.current.clientWidth), height: 220 });
      });
      observer.observe(box.current);
    });
    return () => {
      gone = true;
      if (observer) observer.disconnect();
      if (plot.current) plot.current.destroy();
      plot.current = null;
    };
  }, [xs, series]);
  return html`
    <figure class="chart" aria-labelledby=${id}>
      <figcaption id=${id}>${title}</figcaption>
      <div class="chart-box" ref=${box}></div>
    </figure>`;
}
