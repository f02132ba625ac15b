// Pure logic of the Tasks tab (no DOM, no network), so the browser tests can call it directly.
// Rules are CHT's rules-engine and Tasks tab ones: local-day task states, due labels, sort, filters, search.

// ---------------------------------------------------------------------------------------------------
// translations

// The app's own words, in English, used when the program's translations lack a key. Keys that CHT has
// keep CHT's key and wording (task.overdue.days, task.days.left, tasks.group.title, ...).
export const DEFAULT_MESSAGES = {
  'task.overdue': 'Due today',
  'task.overdue.days': '{DAYS, plural, =0{Due today} =1{Due yesterday} other{Due # days ago}}',
  'task.days.left': '{DAYS, plural, one{1 day left} other{# days left}}',
  'task.list.complete': 'No more tasks',
  'task.date': 'Due date',
  'task.priority': 'Priority',
  'tasks.none': 'No tasks.',
  'tasks.disabled': 'Tasks are disabled for your user account.',
  'tasks.group.title': 'Other household tasks',
  'tasks.group.completed': 'All household tasks completed',
  'No tasks found': 'No tasks found',
  'sync.last_success': 'Last sync',
  'sync.now': 'Sync now',
  'validate.required': 'This field is required.',
  'Submit': 'Submit',
  'Cancel': 'Cancel',
  'Search': 'Search',
  'Log Out': 'Log out',
  'yes': 'Yes',
  'app.title': 'Tasks',
  'app.analytics.title': 'Interaction analytics',
  'app.supervision.title': 'Supervision',
  'app.login.title': 'Log in',
  'app.login.username': 'User name',
  'app.login.password': 'Password',
  'app.login.submit': 'Log in',
  'app.login.wrong': 'Wrong user name or password.',
  'app.login.offline': 'You are offline. Connect to the internet to log in on this device.',
  'app.login.expired': 'Your session has ended: log in again. Forms waiting on this device are kept and sent after you log in.',
  'app.empty.none': 'You have no tasks right now.',
  'app.empty.none.detail': 'New tasks appear here when they are due.',
  'app.empty.filtered': 'No tasks match your search or filters.',
  'app.empty.never_synced': 'Your tasks are not on this device yet.',
  'app.empty.never_synced.detail': 'You are offline. Connect to the internet once to get your tasks; after that they are kept on this device.',
  'app.empty.sync_failed': 'Getting them failed ({{message}}). Try again when the connection is better.',
  'app.overdue.count': '{COUNT, plural, one{1 overdue task} other{# overdue tasks}}',
  'app.filters': 'Filters',
  'app.filters.reset': 'Reset filters',
  'app.filter.overdue': 'Overdue',
  'app.filter.overdue.any': 'All tasks',
  'app.filter.overdue.yes': 'Overdue only',
  'app.filter.overdue.no': 'Not overdue',
  'app.filter.type': 'Task type',
  'app.filter.type.any': 'All task types',
  'app.filter.place': 'Place',
  'app.filter.place.any': 'All places',
  'app.search.placeholder': 'Name, place or task',
  'app.high_risk': 'High risk',
  'app.task.contact': 'Contact',
  'app.task.actions': 'Actions',
  'app.back': 'Back',
  'No task selected': 'This task is no longer in your list.',
  'app.form.missing': 'The form "{{form}}" is not available on this device. Sync, then try again.',
  'app.form.fix': 'Please fix the fields marked below.',
  'app.form.number': 'Enter a whole number.',
  'app.form.decimal': 'Enter a number.',
  'app.form.date': 'Enter a date.',
  'app.form.choice': 'Choose one of the answers.',
  'app.form.task_input': 'This task did not give the form its "{{field}}": sync and try again, or tell your supervisor.',
  'app.form.sent': 'Report sent.',
  'app.form.sending': 'Report saved. Sending it now…',
  'app.form.queued': 'Saved on this device. It will be sent when you are online.',
  'app.contact.lineage': 'Place',
  'app.contact.patient_id': 'Patient ID',
  'app.contact.date_of_birth': 'Date of birth',
  'app.contact.sex': 'Sex',
  'app.contact.sex.female': 'Female',
  'app.contact.sex.male': 'Male',
  'app.contact.phone': 'Phone',
  'app.contact.children': 'Members',
  'app.contact.reports': 'Reports',
  'app.contact.tasks': 'Tasks',
  'app.contact.no_reports': 'No reports.',
  'app.contact.offline': 'The contact page needs a connection, and this contact was not opened before on this device.',
  'app.contact.cached': 'Offline: as last seen {{when}}.',
  'app.contact.not_found': 'This contact is not available to you.',
  'app.sync.never': 'Not synced yet',
  'app.sync.syncing': 'Syncing…',
  'app.sync.offline': 'Offline',
  'app.sync.queued': '{COUNT, plural, one{1 form waiting to be sent} other{# forms waiting to be sent}}',
  'app.sync.failed': 'Not accepted by the server',
  'app.sync.dismiss': 'Dismiss',
  'app.sync.error': 'Sync failed: {{message}}',
  'app.logout.confirm': '{COUNT, plural, one{1 form is} other{# forms are}} not sent yet. Log out anyway? They stay on this device and are sent the next time you log in here.',
  'app.menu': 'Menu',
  'app.error': 'Something went wrong: {{message}}',
};

// `{NAME, plural, =0{..} one{..} other{..}}` (ICU MessageFormat, as CHT's translations use) and
// `{{path.to.value}}` (angular-translate interpolation). Enough of both for CHT's task and app messages.
export function formatMessage(message, vars = {}, locale = 'en') {
  return interpolate(plurals(String(message), vars, locale), vars);
}

function plurals(msg, vars, locale) {
  const re = /\{\s*([A-Za-z_][\w.]*)\s*,\s*plural\s*,/g;
  let m;
  while ((m = re.exec(msg))) {
    const start = m.index;
    let i = re.lastIndex;
    const branches = {};
    while (i < msg.length) {
      while (/\s/.test(msg[i])) i++;
      if (msg[i] === '}') { i++; break; }
      const open = msg.indexOf('{', i);
      if (open < 0) return msg;
      const selector = msg.slice(i, open).trim();
      let depth = 1, j = open + 1;
      for (; j < msg.length && depth; j++) {
        if (msg[j] === '{') depth++;
        else if (msg[j] === '}') depth--;
      }
      branches[selector] = msg.slice(open + 1, j - 1);
      i = j;
    }
    const n = Number(lookup(vars, m[1]));
    let rule = 'other';
    try { rule = new Intl.PluralRules(locale).select(n); } catch { rule = n === 1 ? 'one' : 'other'; }
    const chosen = branches[`=${n}`] ?? branches[rule] ?? branches.other ?? '';
    const text = chosen.replace(/#/g, Number.isFinite(n) ? String(n) : '');
    msg = msg.slice(0, start) + text + msg.slice(i);
    re.lastIndex = start + text.length;
  }
  return msg;
}

function interpolate(msg, vars) {
  return msg.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (all, path) => {
    const v = lookup(vars, path);
    return v === undefined || v === null ? '' : String(v);
  });
}

export function lookup(obj, path) {
  let cur = obj;
  for (const part of String(path).split('.')) {
    if (cur === null || cur === undefined || typeof cur !== 'object') return undefined;
    cur = cur[part];
  }
  return cur;
}

// A translator: the program's messages over the app's defaults; a key missing from both shows the key
// itself (CHT does the same, so a missing translation is visible and gets fixed).
export function makeTranslator(messages = {}, locale = 'en') {
  return (key, vars = {}) => {
    if (key === undefined || key === null || key === '') return '';
    const k = String(key);
    const msg = Object.prototype.hasOwnProperty.call(messages, k) ? messages[k]
      : Object.prototype.hasOwnProperty.call(DEFAULT_MESSAGES, k) ? DEFAULT_MESSAGES[k] : k;
    return formatMessage(msg, vars, locale);
  };
}

// ---------------------------------------------------------------------------------------------------
// days

const pad = (n) => String(n).padStart(2, '0');

// The device's local day, YYYY-MM-DD (CHT's tasks run on the device's clock and zone).
export function localDay(ms = Date.now()) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

// Days since 1970-01-01 of a YYYY-MM-DD calendar date; NaN for anything else (2025-02-30 included).
function dayNumber(day) {
  const m = DAY_RE.exec(String(day ?? ''));
  if (!m) return NaN;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  if (d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3]) return NaN;
  return d.getTime() / 864e5;
}

// Whole calendar days from `today` to `day` (both YYYY-MM-DD): no DST or time-of-day effects.
export function daysBetween(today, day) {
  return dayNumber(day) - dayNumber(today);
}

// Milliseconds until the next local midnight, when Draft tasks may open and Ready ones close.
export function msToMidnight(now = Date.now()) {
  const d = new Date(now);
  const next = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1, 0, 0, 1);
  return next.getTime() - now;
}

// ---------------------------------------------------------------------------------------------------
// states, labels, order

// The state a stored non-terminal task has on `today` (CHT's calculateState from the stored window,
// as its updateTemporalStates re-applies it each day): Draft before startDate, Failed after endDate, else
// Ready. The server wrote the document, so CHT's "authoredOn in the future" guard is not applied: a device
// clock a minute slow must not hide a task the server just created.
export function stateOn(task, today) {
  const e = task?.emission;
  if (!e) return null;
  if (e.resolved) return 'Completed';
  if (e.deleted) return 'Cancelled';
  const { startDate, endDate } = e;
  if (!DAY_RE.test(startDate ?? '') || !DAY_RE.test(endDate ?? '') || startDate > endDate) return null;
  if (startDate > today) return 'Draft';
  if (endDate < today) return 'Failed';
  return 'Ready';
}

// Due today or earlier counts as overdue (CHT: moment(dueDate).isBefore(now)).
export function isOverdue(task, today) {
  const due = task?.emission?.dueDate;
  return DAY_RE.test(due ?? '') && due <= today;
}

// CHT's due label (format-date.service getTaskDueDate, with task_days_overdue on): due today or before
// "Due today" / "Due yesterday" / "Due N days ago"; 1..dayLimit days ahead "N days left"; else nothing.
export function dueLabel(dueDate, today, { dayLimit = 4, daysOverdue = true } = {}) {
  const diff = daysBetween(today, dueDate);
  if (Number.isNaN(diff)) return null;
  if (diff <= 0) return daysOverdue ? { key: 'task.overdue.days', vars: { DAYS: -diff } } : { key: 'task.overdue', vars: {} };
  if (diff <= dayLimit) return { key: 'task.days.left', vars: { DAYS: diff } };
  return null;
}

const validPriority = (p) => typeof p === 'number' && p >= 0;

// moment(dueDate) as a number: numbers as they are, a YYYY-MM-DD day as its local midnight, else NaN.
function sortDate(due) {
  if (typeof due === 'number') return due;
  const n = dayNumber(due);
  if (Number.isNaN(n)) return NaN;
  const [y, m, d] = due.split('-').map(Number);
  return new Date(y, m - 1, d).getTime();
}

// CHT's orderByDueDateAndPriority (the Tasks tab's order): valid numeric priority first, higher first, then the
// due date, earlier first, invalid dates last. Array.prototype.sort is stable, as CHT's is.
export function compareTasks(a, b) {
  const pa = a?.emission?.priority, pb = b?.emission?.priority;
  const va = validPriority(pa), vb = validPriority(pb);
  if (va !== vb) return va ? -1 : 1;
  if (va && pa !== pb) return pb - pa;
  const da = sortDate(a?.emission?.dueDate), db = sortDate(b?.emission?.dueDate);
  const ia = Number.isNaN(da), ib = Number.isNaN(db);
  if (ia !== ib) return ia ? 1 : -1;
  if (ia) return 0;
  return da - db;
}

// A delta of GET /tasks?since=SEQ applied to the device's copy: the tasks that changed (in the delta's items,
// or removed) leave their places and the delta's items come last. The server lists tasks in write order
// before sorting them, so keeping changed tasks at the end keeps ties in the order the server gives them.
export function applyTaskDelta(tasks, delta) {
  const changed = new Set([...(delta.removed ?? []), ...delta.items.map((t) => t._id)]);
  return [...tasks.filter((t) => !changed.has(t._id)), ...delta.items];
}

// The Tasks tab from the stored tasks (Ready and Draft as synced): those Ready today, minus those whose
// form was submitted on this device and is not yet reflected by a sync, in CHT's order.
export function readyTasks(tasks, today, hidden = new Set()) {
  return tasks.filter((t) => !hidden.has(t._id) && stateOn(t, today) === 'Ready').sort(compareTasks);
}

// ---------------------------------------------------------------------------------------------------
// filters and search (as CHT's Tasks tab: task type, place, overdue; search by contact, place and title)

// Lower case without diacritics, so "Zoe" finds "Zoë" (CHT's search is diacritic-insensitive).
export function fold(text) {
  return String(text ?? '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

export function taskContactName(task) {
  return task?.contact?.name ?? task?.emission?.contact?.name ?? '';
}

export function lineageIds(task) {
  return [task?.contact?._id ?? task?.owner, ...(task?.lineage ?? []).map((p) => p._id)].filter(Boolean);
}

// filters: {overdue: 'any'|'yes'|'no', type: translated title or '', place: place _id or '', search: text}
export function filterTasks(tasks, filters, today, titleOf) {
  const q = fold(filters.search ?? '').trim();
  return tasks.filter((t) => {
    if (filters.overdue === 'yes' && !isOverdue(t, today)) return false;
    if (filters.overdue === 'no' && isOverdue(t, today)) return false;
    if (filters.type && titleOf(t) !== filters.type) return false;
    if (filters.place && !lineageIds(t).includes(filters.place)) return false;
    if (q) {
      const haystack = [taskContactName(t), ...(t.lineage ?? []).map((p) => p.name), titleOf(t)];
      if (!haystack.some((s) => fold(s).includes(q))) return false;
    }
    return true;
  });
}

// The places the place filter offers: every ancestor of a task's contact, farthest (largest) first.
export function filterPlaces(tasks) {
  const seen = new Map();
  for (const t of tasks) {
    const lineage = t.lineage ?? [];
    lineage.forEach((p, i) => {
      const depth = lineage.length - 1 - i;
      if (p?._id && !seen.has(p._id)) seen.set(p._id, { ...p, depth });
    });
  }
  return [...seen.values()].sort((a, b) => a.depth - b.depth || fold(a.name).localeCompare(fold(b.name)));
}

// ---------------------------------------------------------------------------------------------------
// household group (CHT's /tasks/group after a submission)

// The household of a task: its contact's nearest place when that place is a leaf (holds no other places
// among the user's tasks), else the contact itself (a task about a household). Works offline, from the
// lineages the tasks carry.
export function householdOf(task, tasks) {
  const parent = task?.lineage?.[0];
  if (!parent) return task?.contact?._id ?? task?.owner ?? null;
  const parentTypes = new Set();
  for (const t of tasks) for (const p of (t.lineage ?? []).slice(1)) if (p.contact_type) parentTypes.add(p.contact_type);
  if (parent.contact_type && parentTypes.has(parent.contact_type)) return task?.contact?._id ?? task?.owner ?? null;
  return parent._id;
}

export function householdTasks(householdId, tasks, exceptId) {
  return tasks.filter((t) => t._id !== exceptId && lineageIds(t).includes(householdId));
}

// ---------------------------------------------------------------------------------------------------
// forms (Kazi's form format: docs in /work/notes contract, docs/webapp.md)

// The input a hidden field takes from the task action's content: `from` (a key or dotted path), default
// the field's own name. A contact reference ({_id, ...}: CHT's action content holds the contact itself)
// gives its _id, so "from": "contact" and "from": "contact._id" both name the contact.
export function hiddenValue(field, content) {
  const v = lookup(content ?? {}, field.from || field.name);
  if (v && typeof v === 'object') return typeof v._id === 'string' ? v._id : undefined;
  return v;
}

// The server's rules (kazi/program/forms.py is their reference), so that the app and the server always
// agree on what is asked and what is stored:
// `relevant` names an earlier field: equals / not_equals / in, compared with the stored (normalized)
// answers; for select_multiple "equals" means "contains"; an unanswered or irrelevant field equals nothing
// (so not_equals is then true).
export function isRelevant(field, fieldsByName, stored) {
  const rule = field.relevant;
  if (!rule || !rule.field) return true;
  const op = 'equals' in rule ? 'equals' : 'not_equals' in rule ? 'not_equals' : 'in';
  const wanted = op === 'in' ? (Array.isArray(rule.in) ? rule.in : []) : [rule[op]];
  const answer = stored[rule.field];
  if (answer === undefined || answer === null) return op === 'not_equals';
  const picked = fieldsByName[rule.field]?.type === 'select_multiple' && typeof answer === 'string'
    ? answer.split(/\s+/).filter(Boolean) : [answer];
  const hit = picked.some((p) => wanted.some((v) => p === v));
  return op === 'not_equals' ? !hit : hit;
}

const isEmpty = (v) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '') || (Array.isArray(v) && !v.length);

// One answer checked and normalized as the server stores it: [value, null] or [null, error key].
function checkValue(field, v) {
  switch (field.type) {
    case 'integer':
      return /^\s*[+-]?\d+\s*$/.test(String(v)) ? [parseInt(String(v), 10), null] : [null, 'app.form.number'];
    case 'decimal':
      return /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/.test(String(v)) ? [Number(String(v).trim()), null] : [null, 'app.form.decimal'];
    case 'date':
      return DAY_RE.test(String(v)) && !Number.isNaN(dayNumber(v)) ? [String(v), null] : [null, 'app.form.date'];
    case 'select_one':
      return (field.choices ?? []).some((c) => c.value === v) ? [v, null] : [null, 'app.form.choice'];
    case 'select_multiple': {
      const picked = Array.isArray(v) ? v : String(v).split(/\s+/).filter(Boolean);
      const allowed = new Set((field.choices ?? []).map((c) => c.value));
      return picked.every((x) => allowed.has(x)) ? [[...new Set(picked)].join(' '), null] : [null, 'app.form.choice'];
    }
    case 'hidden':
      return [v, null];
    default:
      return [String(v), null];
  }
}

// The answers to submit from the raw inputs ({name: string | string[]}), in the form's order:
// {fields, errors, relevant}. Unanswered and irrelevant fields and notes are left out, numbers are numbers,
// a multiple choice is its values separated by spaces (as CHT stores it); errors map field names to
// translation keys; `relevant` is the set of fields asked given the answers so far (the screen shows those).
export function collectFields(form, raw, content) {
  const fields = {};
  const errors = {};
  const relevant = new Set();
  const byName = Object.fromEntries((form.fields ?? []).map((f) => [f.name, f]));
  for (const f of form.fields ?? []) {
    if (!isRelevant(f, byName, fields)) continue;
    relevant.add(f.name);
    if (f.type === 'note') continue;
    const v = f.type === 'hidden' ? hiddenValue(f, content) : raw[f.name];
    if (isEmpty(v)) {
      if (f.required) errors[f.name] = 'validate.required';
      continue;
    }
    const [value, error] = checkValue(f, v);
    if (error) errors[f.name] = error;
    else fields[f.name] = value;
  }
  return { fields, errors, relevant };
}

// A client-generated report id: crypto.randomUUID where the page is a secure context, else a v4 UUID from
// crypto.getRandomValues (plain http on a LAN address has no randomUUID).
export function newId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
