// Pure logic of the supervisor report page (no DOM, no network), so the browser tests can call it directly:
// the query string, how values and periods read, who leads and who needs support, and the geometry of the
// charts. The numbers themselves (indicator values, team median and quartiles, ranks) come from the server
// (GET /api/v1/supervision/report): the page never recomputes them, so what it shows is what the CSV says.

// The report's query: only the parameters the user chose (the server's defaults apply to the others).
export function reportQuery({ place = '', start = '', end = '' } = {}) {
  const q = new URLSearchParams();
  if (place) q.set('place', place);
  if (start) q.set('start', start);
  if (end) q.set('end', end);
  return q.toString();
}

// "{{name}}" placeholders filled from vars (for the page's English defaults; the program's translations
// go through the app's translator).
export function fill(text, vars = {}) {
  return String(text).replace(/\{\{\s*(\w+)\s*\}\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

// A value as the tables show it: rates as whole percents, counts as whole numbers (one decimal when a
// count is fractional: a team's average per worker), null as a dash (no denominator, no data).
export function formatValue(value, format = 'number', locale = undefined) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  if (format === 'percent') return `${Math.round(value * 100)}%`;
  const rounded = Math.round(value * 10) / 10;
  return Number.isInteger(rounded) ? rounded.toLocaleString(locale) : rounded.toLocaleString(locale, { maximumFractionDigits: 1 });
}

// "Aug 2025" for the period key "2025-08", in the user's language.
export function periodLabel(period, locale = undefined) {
  const m = /^(\d{4})-(\d{2})$/.exec(period?.key ?? '');
  if (!m) return period?.key ?? '';
  return new Date(+m[1], +m[2] - 1, 1).toLocaleDateString(locale, { month: 'short', year: 'numeric' });
}

// Where a worker stands on an indicator against the team's quartiles (from the server's comparison):
// 'leader' in the best quarter (at or beyond the better quartile, and strictly better than the median, so
// that a team where everyone is equal has no leader), 'support' strictly beyond the worse quartile (below
// q1 when higher is better, above q3 when lower is better), else 'middle'; 'none' without a value.
export function standing(value, comparison, higherIsBetter = true) {
  if (value === null || value === undefined || !comparison) return 'none';
  const { median, q1, q3 } = comparison;
  if (median === null || median === undefined || q1 === null || q1 === undefined || q3 === null || q3 === undefined) return 'none';
  if (higherIsBetter) {
    if (value >= q3 && value > median) return 'leader';
    if (value < q1) return 'support';
  } else {
    if (value <= q1 && value < median) return 'leader';
    if (value > q3) return 'support';
  }
  return 'middle';
}

// The top of a chart's scale: the largest value (a rate: at least 100%), rounded up to a "nice" number
// (1, 2, 2.5 or 5 times a power of ten) so the axis reads well; 1 when everything is zero or missing.
export function niceMax(values, format = 'number') {
  const finite = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  let max = Math.max(0, ...finite);
  if (format === 'percent') return Math.max(1, max);
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= max) { max = step * power; break; }
  }
  return max;
}

// The comparative view of one indicator: the server's ranking (best first, nulls last) with each worker's
// name and standing, and the scale's maximum (the quartiles and median included, so their marks fit).
export function comparisonRows(report, indicator) {
  const cmp = report.comparison?.[indicator.id] ?? { median: null, q1: null, q3: null, ranking: [] };
  const names = Object.fromEntries((report.workers ?? []).map((w) => [w.user, w.name ?? w.user]));
  const rows = (cmp.ranking ?? []).map((r) => ({
    user: r.user, name: names[r.user] ?? r.user, value: r.value, rank: r.rank,
    standing: standing(r.value, cmp, indicator.higher_is_better !== false),
  }));
  const max = niceMax([...rows.map((r) => r.value), cmp.median, cmp.q1, cmp.q3], indicator.format);
  return { rows, median: cmp.median, q1: cmp.q1, q3: cmp.q3, max };
}

// The team line of the monthly chart: a rate is the team's own rate; a count is the team's count per
// worker (the team's total would dwarf every worker's bars on the same axis).
export function teamLine(report, indicator) {
  const values = report.team?.values?.[indicator.id] ?? {};
  const workers = (report.workers ?? []).length;
  return (report.periods ?? []).map((p) => {
    const v = values[p.key];
    if (v === null || v === undefined) return null;
    return indicator.kind === 'rate' ? v : (workers ? v / workers : null);
  });
}

// The monthly chart of one indicator: one series per worker (their value in each period, in the report's
// order) and the team line, with the scale's maximum.
export function monthlySeries(report, indicator) {
  const periods = report.periods ?? [];
  const series = (report.workers ?? []).map((w) => ({
    user: w.user, name: w.name ?? w.user,
    values: periods.map((p) => w.values?.[indicator.id]?.[p.key] ?? null),
  }));
  const team = teamLine(report, indicator);
  const max = niceMax([...series.flatMap((s) => s.values), ...team], indicator.format);
  return { periods, series, team, max };
}

// The places a supervisor can choose: the report's own place, the caller's place (so a supervisor can
// always go back up) and the places of the listed workers, each once, the caller's first.
export function placeChoices(report, own = null) {
  const seen = new Map();
  const add = (p) => { if (p?._id && !seen.has(p._id)) seen.set(p._id, { _id: p._id, name: p.name ?? p._id }); };
  add(own);
  add(report.place);
  for (const w of report.workers ?? []) add(w.place);
  return [...seen.values()];
}

// The overdue and failed tasks of the drill-down, newest first as the server sends them, grouped by state.
export function groupDrillDown(items) {
  const out = { overdue: [], failed: [] };
  for (const x of items ?? []) (x.state === 'Failed' ? out.failed : out.overdue).push(x);
  return out;
}
