// Charts with uPlot (vendored, loaded before this module as the global
// `uPlot`). Times are UTC, like everything else on the page.

import { h, int, usd } from './dom.js';
import { state } from './shell.js';

const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC');

/** A uPlot chart that follows its container's width. */
function chart(container, opts, data) {
  const width = Math.max(300, container.clientWidth || 600);
  const u = new uPlot(Object.assign({ width, height: 240, tzDate: utc }, opts), data, container);
  state.charts.push(u);
  return u;
}

window.addEventListener('resize', () => {
  for (const c of state.charts) {
    const w = c.root.parentElement ? c.root.parentElement.clientWidth : 0;
    if (w > 0) c.setSize({ width: w, height: 240 });
  }
});

const usdAxis = (u, splits) => splits.map((v) => (v == null ? '' : usd(v)));

/** x-axis ticks in UTC: "11-21" for days, "14:00" (with the date at midnight) for hours. */
const timeAxis = {
  space: 60,
  values: (u, splits, axis, space, incr) => splits.map((v) => {
    if (v == null) return '';
    const iso = new Date(v * 1000).toISOString();
    const day = iso.slice(5, 10);
    const hm = iso.slice(11, 16);
    if (incr >= 86400) return day;
    if (incr >= 60) return hm === '00:00' ? hm + '\n' + day : hm;
    return incr >= 1 ? iso.slice(11, 19) : iso.slice(11, 23);
  }),
};

/** An x range that keeps one point (or one bar) in view, padded by `pad` seconds. */
const xRange = (pad) => (u, min, max) => (min == null ? [0, 1] : [min - pad, max + pad]);

/** Bucket key from the summary API ("YYYY-MM-DD" or "YYYY-MM-DDTHH:00Z") → epoch seconds. */
function bucketSeconds(keyText) {
  const t = Date.parse(keyText.length === 10 ? keyText + 'T00:00:00Z' : keyText);
  return Number.isFinite(t) ? t / 1000 : null;
}

/** Time buckets in order with empty ones filled in (up to a sane count). */
function timeSeries(groups, step) {
  const pts = groups.map((g) => [bucketSeconds(g.key), g]).filter((p) => p[0] != null)
    .sort((a, b) => a[0] - b[0]);
  const xs = [];
  const spend = [];
  const unpriced = [];
  if (pts.length === 0) return [xs, spend, unpriced];
  const byT = new Map(pts);
  const first = pts[0][0];
  const last = pts[pts.length - 1][0];
  const fill = (last - first) / step <= 5000;
  const times = fill ? [] : pts.map((p) => p[0]);
  if (fill) for (let t = first; t <= last; t += step) times.push(t);
  for (const t of times) {
    const g = byT.get(t);
    xs.push(t);
    spend.push(g ? g.total_cost_usd : 0);
    unpriced.push(g ? g.unpriced_count : 0);
  }
  return [xs, spend, unpriced];
}

export function spendChart(container, groups, step) {
  const data = timeSeries(groups, step);
  if (data[0].length === 0) {
    container.append(h('div', { class: 'empty', text: 'No usage in this period.' }));
    return null;
  }
  return chart(container, {
    scales: { x: { time: true, range: xRange(step / 2) }, usd: { auto: true, range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] }, n: { auto: true, range: (u, min, max) => [0, Math.max(1, max * 1.2)] } },
    series: [
      { value: (u, v) => (v == null ? '—' : new Date(v * 1000).toISOString().slice(0, step < 86400 ? 16 : 10).replace('T', ' ')) },
      { label: 'spend', scale: 'usd', stroke: '#1d4ed8', fill: 'rgba(59,130,246,0.35)', width: 1,
        paths: uPlot.paths.bars({ size: [0.8, 48] }), points: { show: false }, value: (u, v) => usd(v) },
      { label: 'unpriced records', scale: 'n', stroke: '#d97706', width: 2, points: { show: true, size: 5 },
        value: (u, v) => (v == null ? '—' : int(v)) },
    ],
    axes: [
      timeAxis,
      { scale: 'usd', values: usdAxis, size: 70 },
      { scale: 'n', side: 1, grid: { show: false }, values: (u, s) => s.map((v) => (Number.isInteger(v) ? v : '')) },
    ],
  }, data);
}

/** Cumulative priced cost of a task, request by request. */
export function cumulativeData(requests, end) {
  const sorted = requests.slice().sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
  const xs = [];
  const ys = [];
  let sum = 0;
  for (const r of sorted) {
    sum += r.total_cost_usd || 0;
    const t = Date.parse(r.timestamp) / 1000;
    if (xs.length && xs[xs.length - 1] >= t) {
      ys[ys.length - 1] = sum;
    } else {
      xs.push(t);
      ys.push(sum);
    }
  }
  // Carry the total to the last activity, so the line shows how long it ran.
  const last = end ? Date.parse(end) / 1000 : NaN;
  if (xs.length && Number.isFinite(last) && last > xs[xs.length - 1]) {
    xs.push(last);
    ys.push(sum);
  }
  return [xs, ys];
}

export function cumulativeChart(container, data) {
  return chart(container, {
    scales: { x: { time: true, range: (u, min, max) => (min === max ? [min - 60, max + 60] : [min, max]) }, usd: { auto: true, range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [{}, { label: 'cost so far', scale: 'usd', stroke: '#1d4ed8', fill: 'rgba(59,130,246,0.15)', width: 2,
      paths: uPlot.paths.stepped({ align: 1 }), value: (u, v) => usd(v) }],
    axes: [timeAxis, { scale: 'usd', values: usdAxis, size: 70 }],
  }, data);
}
