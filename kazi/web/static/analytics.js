// The analysts' page (can_view_interaction_analytics): task interaction metrics from
// GET /api/v1/interactions/metrics as a table (column headers are the API's column descriptions), a bar
// chart of one number (inline SVG, nothing to download), and the same table as CSV or Parquet. Loaded only
// when an analyst opens it (app.js imports it on demand), so the Tasks tab's first load stays small.

import { localDay } from './logic.js';

const GROUPS = { day: 'Day', user: 'User', device: 'Device', task_type: 'Task type' };
const API_BASE = new URL('../api/v1', document.baseURI).pathname;
const SVG_NS = 'http://www.w3.org/2000/svg';

function daysBefore(day, n) {
  const [y, m, d] = day.split('-').map(Number);
  return localDay(new Date(y, m - 1, d - n, 12).getTime());
}

const show = (v) => (v === null || v === undefined ? '–' : typeof v === 'number' && !Number.isInteger(v) ? String(Math.round(v * 100) / 100) : String(v));

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Horizontal bars, one per row (at most 40), the label and value above each bar.
function barChart(rows, keys, column) {
  const data = rows.slice(0, 40).map((r) => [keys.map((k) => show(r[k])).join(' · '), Number(r[column.name] ?? 0)]);
  const max = Math.max(1e-9, ...data.map(([, v]) => v));
  const width = 320;
  const step = 34;
  const chart = svg('svg', { viewBox: `0 0 ${width} ${Math.max(1, data.length) * step}`, role: 'img', 'aria-label': column.description, 'data-metric': column.name });
  data.forEach(([label, value], i) => {
    chart.append(svg('text', { x: 0, y: i * step + 12 }, `${label}: ${show(value)}`));
    chart.append(svg('rect', { x: 0, y: i * step + 16, height: 12, width: Math.max(1, (value / max) * width).toFixed(1) }));
  });
  return chart;
}

export function analyticsPage({ h, t, api, places = [] }) {
  const w = (key, fallback) => { const text = t(key); return text === key ? fallback : text; };
  const today = localDay();
  const from = h('input', { id: 'a-from', name: 'from', type: 'date', value: daysBefore(today, 29), required: true });
  const to = h('input', { id: 'a-to', name: 'to', type: 'date', value: today, required: true });
  const users = h('input', { id: 'a-user', name: 'user', type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const place = h('select', { id: 'a-place', name: 'place' }, h('option', { value: '' }, w('app.analytics.place.any', 'All places')),
    places.map((p) => h('option', { value: p._id }, p.name ?? p._id)));
  const groups = Object.entries(GROUPS).map(([g, label]) => h('label', { class: 'choice' },
    h('input', { type: 'checkbox', name: 'group_by', value: g, checked: g === 'day' }), ` ${w(`app.analytics.group.${g}`, label)}`));
  const metric = h('select', { id: 'a-metric' });
  const out = h('div', { class: 'results', 'aria-live': 'polite' });
  const form = h('form', { class: 'analytics-filters', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'a-from' }, w('app.analytics.from', 'From')), from),
    h('div', { class: 'field' }, h('label', { for: 'a-to' }, w('app.analytics.to', 'To')), to),
    h('div', { class: 'field' }, h('label', { for: 'a-user' }, w('app.analytics.users', 'Users (comma separated)')), users),
    places.length ? h('div', { class: 'field' }, h('label', { for: 'a-place' }, w('app.analytics.place', 'Place')), place) : null,
    h('fieldset', {}, h('legend', {}, w('app.analytics.group_by', 'Group by')), groups),
    h('button', { type: 'submit', class: 'btn primary' }, w('app.analytics.show', 'Show')));

  let answer = null;
  let asked = null; // the query the shown answer is for
  const query = () => {
    const q = new URLSearchParams({ from: from.value, to: to.value });
    for (const box of form.querySelectorAll('input[name=group_by]:checked')) q.append('group_by', box.value);
    for (const u of users.value.split(/[\s,]+/).filter(Boolean)) q.append('user', u);
    if (place.value) q.append('place', place.value);
    return q;
  };

  function render(q) {
    const keys = answer.group_by;
    const numeric = answer.columns.filter((c) => !keys.includes(c.name) && (c.type === 'int' || c.type === 'float'));
    const chosen = numeric.find((c) => c.name === metric.value) ?? numeric.find((c) => c.name === 'tasks_opened') ?? numeric[0];
    metric.replaceChildren(...numeric.map((c) => h('option', { value: c.name, selected: c === chosen }, c.description)));
    if (chosen) metric.value = chosen.name;
    const file = (fmt, what = 'metrics') => `${API_BASE}/interactions/${what}?${q}&format=${fmt}`;
    const head = h('tr', {}, answer.columns.map((c) => h('th', { scope: 'col', 'data-col': c.name, title: c.name, class: keys.includes(c.name) ? 'key' : null }, c.description)));
    const row = (r, total = false) => h('tr', total ? { class: 'total' } : {}, answer.columns.map((c, i) => h(i === 0 && total ? 'th' : 'td',
      { 'data-col': c.name, class: keys.includes(c.name) ? 'key' : null },
      total && keys.includes(c.name) ? (i === 0 ? w('app.analytics.total', 'Total') : '') : show(r[c.name]))));
    const rows = answer.rows;
    out.replaceChildren(
      h('p', { class: 'muted' }, `${answer.window.from} – ${answer.window.to} · ${answer.summaries} ${w('app.analytics.summaries', 'summaries')}`,
        answer.conflicts ? ` (${answer.conflicts} ${w('app.analytics.conflicts', 'conflicts')})` : ''),
      h('div', { class: 'downloads' },
        h('a', { href: file('csv'), download: '', 'data-format': 'csv' }, w('app.analytics.csv', 'Table as CSV')),
        h('a', { href: file('parquet'), download: '', 'data-format': 'parquet' }, w('app.analytics.parquet', 'Table as Parquet')),
        h('a', { href: file('csv', 'events'), download: '', 'data-format': 'events-csv' }, w('app.analytics.events', 'Every event (CSV)'))),
      chosen ? h('div', { class: 'field' }, h('label', { for: 'a-metric' }, w('app.analytics.chart', 'Chart')), metric) : null,
      chosen ? barChart(keys.length ? rows : [answer.totals], keys, chosen) : null,
      h('div', { class: 'scroll' }, h('table', { class: 'metrics' },
        h('thead', {}, head),
        h('tbody', {}, rows.map((r) => row(r))),
        keys.length ? h('tfoot', {}, row(answer.totals, true)) : null)));
  }

  async function load() {
    const q = query();
    out.replaceChildren(h('p', { class: 'loading' }, t('app.sync.syncing')));
    try {
      answer = await api(`/interactions/metrics?${q}`);
      asked = q;
      render(q);
    } catch (err) {
      answer = null;
      out.replaceChildren(h('p', { class: 'alert', role: 'alert' }, t('app.error', { message: err.message })));
    }
  }

  form.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  metric.addEventListener('change', () => { if (answer) render(asked); });
  load();
  return h('section', { class: 'analytics' }, form, out);
}
