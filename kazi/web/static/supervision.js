// The supervisor report page (can_view_supervisor_reports): health workers' task performance by month from
// GET /api/v1/supervision/report, per indicator a table (workers x months, the team and each total), a chart
// (each worker's bars by month and the team's line) and a comparative view (workers ranked, the team's median
// and quartiles marked, leaders and those who need support labelled), a drill-down from a worker to their
// overdue and failed tasks, and the same report as CSV. Loaded only when a supervisor opens it (app.js
// imports it on demand), so the Tasks tab's first load stays small. The charts are inline SVG and HTML
// drawn here: plain bars and one line need no chart library (nothing more to download or keep up to date).
//
// Routes: #/supervision (the report) and #/supervision/<username> (the drill-down), with the chosen place
// and months kept here for the session so that going back shows the same report.

import {
  comparisonRows, fill, formatValue, groupDrillDown, monthlySeries, periodLabel, placeChoices, reportQuery,
} from './supervision-logic.js';

const API_BASE = new URL('../api/v1', document.baseURI).pathname;
const SVG_NS = 'http://www.w3.org/2000/svg';
// one colour per worker (8, then they repeat; the legend and the table name them), all at least 3:1 on white
const PALETTE = ['#1d4e89', '#b5570b', '#2e7d32', '#8e24aa', '#00838f', '#c2185b', '#5d4037', '#546e7a'];
const enc = encodeURIComponent;

// the page's styles, with the page (app.css stays the Tasks tab's)
if (!document.querySelector('link[data-supervision-css]')) {
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = 'supervision.css';
  link.dataset.supervisionCss = '';
  document.head.append(link);
}

// the place and months chosen, for this session (empty: the server's defaults)
const chosen = { place: '', start: '', end: '' };
let ownPlace = null; // the caller's place as the first report named it (always offered in the picker)
let owner = null; // whose choices these are (another user logging in on the device starts afresh)

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Sizes through the CSSOM: the Content-Security-Policy refuses style attributes (style-src 'self').
function styled(el, props) {
  Object.assign(el.style, props);
  return el;
}

function words(t) {
  // the program's translation when it has one, else the page's English default
  return (key, fallback, vars = {}) => { const text = t(key, vars); return text === key ? fill(fallback, vars) : text; };
}

// An indicator's name: the program's translation of supervision.indicator.<id> when it has one, else its label
// (itself looked up as a key, as CHT does with labels).
const indicatorLabel = (ind, w) => w(`supervision.indicator.${ind.id}`, w(ind.label, ind.label));

const STANDING = {
  leader: ['app.supervision.leader', 'Leader'],
  support: ['app.supervision.support', 'Needs support'],
};

// The monthly chart: for each month a group of bars (one per worker, in the table's order) and the team's
// line across the months; a rate's axis is 0-100%.
function monthlyChart(report, indicator, w, locale) {
  const { periods, series, team, max } = monthlySeries(report, indicator);
  const bar = Math.max(4, Math.min(18, Math.floor(240 / Math.max(1, series.length * periods.length))));
  const left = 34;
  // a group per month: as wide as its bars, or a share of a phone's width so the month labels fit
  const groupWidth = Math.max(series.length * bar + 14, Math.floor((320 - left - 8) / Math.max(1, periods.length)));
  const inset = (groupWidth - series.length * bar) / 2;
  const height = 150;
  const top = 10;
  const width = Math.max(320, left + periods.length * groupWidth + 8);
  const y = (v) => top + height - (Math.max(0, v ?? 0) / max) * height;
  const title = `${indicatorLabel(indicator, w)}: ${w('app.supervision.chart', 'by month')}`;
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${top + height + 22}`, width, role: 'img', 'aria-label': title,
    'data-indicator': indicator.id });
  chart.append(svg('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    const v = max * f;
    chart.append(svg('line', { class: 'grid', x1: left, x2: width - 4, y1: y(v), y2: y(v) }));
    chart.append(svg('text', { class: 'axis', x: left - 4, y: y(v) + 4, 'text-anchor': 'end' }, formatValue(v, indicator.format, locale)));
  }
  periods.forEach((p, i) => {
    chart.append(svg('text', { class: 'axis', x: left + i * groupWidth + groupWidth / 2, y: top + height + 16, 'text-anchor': 'middle' },
      `${periodLabel(p, locale)}${p.partial ? '*' : ''}`));
  });
  series.forEach((s, k) => {
    const g = svg('g', { class: 'series', 'data-user': s.user, fill: PALETTE[k % PALETTE.length] });
    s.values.forEach((v, i) => {
      const x = left + i * groupWidth + inset + k * bar;
      const rect = svg('rect', { class: 'bar', x, y: y(v), width: bar - 1, height: Math.max(0, top + height - y(v)),
        'data-period': periods[i].key, 'data-value': v ?? '' });
      rect.append(svg('title', {}, `${s.name}, ${periodLabel(periods[i], locale)}: ${formatValue(v, indicator.format, locale)}`));
      g.append(rect);
    });
    chart.append(g);
  });
  const points = team.map((v, i) => (v === null ? null : `${left + i * groupWidth + groupWidth / 2},${y(v)}`)).filter(Boolean);
  if (points.length) {
    const line = svg('g', { class: 'team-line', 'data-series': 'team' });
    line.append(svg('polyline', { points: points.join(' ') }));
    for (const pt of points) { const [cx, cy] = pt.split(','); line.append(svg('circle', { cx, cy, r: 3 })); }
    chart.append(line);
  }
  const teamLabel = indicator.kind === 'rate' ? w('app.supervision.team', 'Team') : w('app.supervision.team_average', 'Team, per worker');
  const legend = document.createElement('ul');
  legend.className = 'legend';
  const item = (color, text, cls = '') => {
    const li = document.createElement('li');
    if (cls) li.className = cls;
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = color;
    li.append(sw, text);
    return li;
  };
  series.forEach((s, k) => legend.append(item(PALETTE[k % PALETTE.length], s.name)));
  legend.append(item('transparent', teamLabel, 'team'));
  const box = document.createElement('div');
  box.className = 'chart-box';
  const scroll = document.createElement('div');
  scroll.className = 'scroll';
  scroll.append(chart);
  box.append(scroll, legend);
  return box;
}

// The comparative view: workers ranked (the server's order, best first) as horizontal bars on one scale,
// with the team's q1, median and q3 as vertical marks across them; leaders and those below the worse quartile
// have their own colour *and* a word, so the difference does not rest on colour alone.
function comparison(report, indicator, h, w, locale) {
  const { rows, median, q1, q3, max } = comparisonRows(report, indicator);
  const pct = (v) => `${Math.min(100, (Math.max(0, v) / max) * 100).toFixed(2)}%`;
  const marks = [['q1', q1, w('app.supervision.q1', 'Q1')], ['median', median, w('app.supervision.median', 'Median')], ['q3', q3, w('app.supervision.q3', 'Q3')]]
    .filter(([, v]) => v !== null && v !== undefined);
  const list = h('ol', { class: 'ranking', 'data-indicator': indicator.id },
    rows.map((r) => h('li', { class: `rank ${r.standing}`, 'data-user': r.user, 'data-standing': r.standing, 'data-rank': r.rank },
      h('div', { class: 'rank-label' },
        h('span', { class: 'rank-no' }, `${r.rank}.`), ' ',
        h('a', { href: `#/supervision/${enc(r.user)}` }, r.name), ' ',
        h('span', { class: 'rank-value' }, formatValue(r.value, indicator.format, locale)),
        STANDING[r.standing] ? h('span', { class: 'tag' }, w(...STANDING[r.standing])) : null),
      h('div', { class: 'track' },
        r.value === null ? null : styled(h('span', { class: 'fill' }), { width: pct(r.value) }),
        marks.map(([kind, v]) => styled(h('span', { class: `mark ${kind}`, 'aria-hidden': 'true' }), { left: pct(v) }))))));
  const key = h('p', { class: 'marks-key' }, marks.map(([kind, v, label]) => h('span', { class: `mark-key ${kind}`, 'data-mark': kind, 'data-value': v },
    h('span', { class: `mark-swatch ${kind}`, 'aria-hidden': 'true' }), `${label}: ${formatValue(v, indicator.format, locale)}`)));
  return h('div', { class: 'comparison' }, h('h4', {}, w('app.supervision.comparison', 'Workers compared (whole range)')), key,
    rows.length ? list : h('p', { class: 'muted' }, w('app.supervision.no_workers', 'No health workers in this place.')));
}

function table(report, indicator, h, w, locale) {
  const periods = report.periods ?? [];
  const cell = (values, p) => h('td', { 'data-period': p }, formatValue(values?.[p] ?? null, indicator.format, locale));
  return h('div', { class: 'scroll' }, h('table', { class: 'report-table', 'data-indicator': indicator.id },
    h('caption', { class: 'sr' }, indicatorLabel(indicator, w)),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, w('app.supervision.worker', 'Health worker')),
      periods.map((p) => h('th', { scope: 'col', 'data-period': p.key }, periodLabel(p, locale), p.partial ? '*' : '')),
      h('th', { scope: 'col', 'data-period': 'total' }, w('app.supervision.total', 'Total')))),
    h('tbody', {}, (report.workers ?? []).map((x) => h('tr', { 'data-user': x.user },
      h('th', { scope: 'row' }, h('a', { href: `#/supervision/${enc(x.user)}` }, x.name ?? x.user)),
      periods.map((p) => cell(x.values?.[indicator.id], p.key)), cell(x.values?.[indicator.id], 'total')))),
    h('tfoot', {}, h('tr', { class: 'team', 'data-user': '' }, h('th', { scope: 'row' }, w('app.supervision.team', 'Team')),
      periods.map((p) => cell(report.team?.values?.[indicator.id], p.key)), cell(report.team?.values?.[indicator.id], 'total')))));
}

export function supervisionPage({ h, t, api, state }) {
  if (owner !== (state?.me?.username ?? null)) {
    owner = state?.me?.username ?? null;
    ownPlace = null;
    Object.assign(chosen, { place: '', start: '', end: '' });
  }
  const w = words(t);
  const locale = state?.locale || undefined;
  const start = h('input', { id: 's-start', name: 'start', type: 'month', value: chosen.start, pattern: '\\d{4}-\\d{2}' });
  const end = h('input', { id: 's-end', name: 'end', type: 'month', value: chosen.end, pattern: '\\d{4}-\\d{2}' });
  const place = h('select', { id: 's-place', name: 'place' });
  const out = h('div', { class: 'results', 'aria-live': 'polite' });
  const form = h('form', { class: 'supervision-filters', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 's-place' }, w('app.supervision.place', 'Place')), place),
    h('div', { class: 'field' }, h('label', { for: 's-start' }, w('app.supervision.from', 'From month')), start),
    h('div', { class: 'field' }, h('label', { for: 's-end' }, w('app.supervision.to', 'To month')), end),
    h('button', { type: 'submit', class: 'btn primary' }, w('app.supervision.show', 'Show')));

  function render(report) {
    const places = placeChoices(report, ownPlace);
    place.replaceChildren(...places.map((p) => h('option', { value: p._id, selected: p._id === report.place?._id }, p.name)));
    place.value = report.place?._id ?? '';
    const periods = report.periods ?? [];
    if (periods.length) { start.value = periods[0].key; end.value = periods[periods.length - 1].key; }
    const q = reportQuery({ place: report.place?._id, start: start.value, end: end.value });
    const partial = periods.some((p) => p.partial);
    out.replaceChildren(
      h('p', { class: 'muted report-head' }, h('strong', {}, report.place?.name ?? ''), ' · ',
        periods.length ? `${periodLabel(periods[0], locale)} – ${periodLabel(periods[periods.length - 1], locale)}` : '',
        ' · ', w('app.supervision.workers', '{{count}} health workers', { count: (report.workers ?? []).length }),
        partial ? h('span', { class: 'partial-note' }, ` (* ${w('app.supervision.partial', 'month not over yet')})`) : null),
      h('div', { class: 'downloads' },
        h('a', { href: `${API_BASE}/supervision/report.csv?${q}`, download: '', 'data-format': 'csv', id: 'report-csv' },
          w('app.supervision.csv', 'Download CSV'))),
      h('nav', { class: 'indicator-nav', 'aria-label': w('app.supervision.indicators', 'Indicators') },
        (report.indicators ?? []).map((ind) => h('a', { href: `#ind-${ind.id}`, onclick: (ev) => {
          ev.preventDefault();
          out.querySelector(`#ind-${CSS.escape(ind.id)}`)?.scrollIntoView();
        } }, indicatorLabel(ind, w)))),
      ...(report.indicators ?? []).map((ind) => h('section', { class: 'indicator', id: `ind-${ind.id}`, 'data-indicator': ind.id },
        h('h3', {}, indicatorLabel(ind, w),
          ind.kind === 'rate' ? h('span', { class: 'muted' }, ` (${w('app.supervision.rate', 'rate')})`) : null),
        table(report, ind, h, w, locale),
        monthlyChart(report, ind, w, locale),
        comparison(report, ind, h, w, locale))));
  }

  async function load() {
    out.replaceChildren(h('p', { class: 'loading' }, t('app.sync.syncing')));
    try {
      const report = await api(`/supervision/report?${reportQuery(chosen)}`);
      if (!ownPlace && !chosen.place) ownPlace = report.place;
      render(report);
    } catch (err) {
      out.replaceChildren(h('p', { class: 'alert', role: 'alert' }, t('app.error', { message: err.message })));
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.assign(chosen, { place: place.value, start: start.value, end: end.value });
    load();
  });
  load();
  return h('section', { class: 'supervision' }, form, out);
}

// The drill-down: a worker's overdue tasks (Ready, due before today) and failed ones (in the chosen months).
export function workerPage({ h, t, api, state, username }) {
  const w = words(t);
  const locale = state?.locale || undefined;
  const out = h('div', { class: 'results', 'aria-live': 'polite' }, h('p', { class: 'loading' }, t('app.sync.syncing')));
  const title = (x) => { const text = t(x.title, x); return text || x.name || ''; };
  const list = (items, kind) => (items.length
    ? h('ul', { class: 'plain drill', 'data-state': kind }, items.map((x) => h('li', { 'data-task-id': x._id, 'data-state': x.state },
      h('strong', {}, title(x)), ' · ', x.contact?.name ?? x.contact?._id ?? '',
      h('span', { class: 'muted' }, ` · ${w('app.supervision.due', 'due {{date}}', { date: x.due_date ?? '–' })}`))))
    : h('p', { class: 'muted', 'data-state': kind }, w('app.supervision.none', 'None.')));
  (async () => {
    try {
      const q = reportQuery({ start: chosen.start, end: chosen.end });
      const answer = await api(`/supervision/workers/${enc(username)}/tasks${q ? `?${q}` : ''}`);
      const items = Array.isArray(answer) ? answer : (answer.items ?? []);
      const { overdue, failed } = groupDrillDown(items);
      out.replaceChildren(
        h('section', { class: 'drill-section' }, h('h3', {}, w('app.supervision.overdue', 'Overdue tasks'), ` (${overdue.length})`), list(overdue, 'overdue')),
        h('section', { class: 'drill-section' }, h('h3', {}, w('app.supervision.failed', 'Failed tasks'), ` (${failed.length})`), list(failed, 'failed')));
    } catch (err) {
      out.replaceChildren(h('p', { class: 'alert', role: 'alert' }, t('app.error', { message: err.message })));
    }
  })();
  return h('section', { class: 'supervision worker' }, h('h2', {}, username), out);
}
