// Kazi's Tasks tab: views, routing and the glue between the device copy (data.js) and the screen.
// Routes (hash based, so the service worker only ever serves one page):
//   #/tasks                      the list          #/tasks/<emission id>      one task and its actions
//   #/form/<emission id>/<n>     the nth action's form                        #/contact/<id>   a contact
//   #/group/<household>/<task>   the household's other tasks after a submission (can_view_tasks_group)
//   #/analytics                  task interaction analytics (can_view_interaction_analytics; analytics.js)
//   #/supervision[/<username>]   supervisor reports and a worker's drill-down (can_view_supervisor_reports; supervision.js)

import {
  collectFields, dueLabel, filterPlaces, filterTasks, fold, householdOf, householdTasks, isOverdue, localDay,
  makeTranslator, msToMidnight, readyTasks,
} from './logic.js';
import {
  ApiError, NetworkError, api, changed, dismissFailure, hiddenTaskIds, kv, loadLocal, login, logout, state,
  startAutoSync, submitReport, sync, whoAmI,
} from './data.js';
import { iconKey, iconSvg, ICONS } from './icons.js';
import * as tracker from './tracker.js';

let t = makeTranslator();
const $ = (id) => document.getElementById(id);
const main = $('main');
const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------------
// DOM helpers: elements are built with text nodes, never from HTML strings of data (names, labels and
// translations come from users and programs). Only the app's own SVG icons are set as markup.

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'svg') el.innerHTML = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function icon(name, cls = '') {
  return h('span', { class: `icon icon-${iconKey(name)} ${cls}`, svg: iconSvg(name) });
}

function formatDay(day) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day ?? '');
  if (!m) return day ?? '';
  return new Date(+m[1], +m[2] - 1, +m[3]).toLocaleDateString(state.locale || undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}

// A moment: the time alone today, else the date (with the year when it is not this year) and time.
function formatTime(ms) {
  const d = new Date(ms);
  const loc = state.locale || undefined;
  if (localDay(ms) === localDay()) return d.toLocaleTimeString(loc, { hour: '2-digit', minute: '2-digit' });
  const year = d.getFullYear() !== new Date().getFullYear() ? { year: 'numeric' } : {};
  return d.toLocaleString(loc, { day: 'numeric', month: 'short', ...year, hour: '2-digit', minute: '2-digit' });
}

let toastTimer = null;
function toast(message) {
  const el = $('toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

// A translation when there is one, else the raw value (for data values, where a key would be noise).
const known = (key, fallback) => { const text = t(key); return text === key ? String(fallback) : text; };

const can = (permission) => Array.isArray(state.me?.permissions) && state.me.permissions.includes(permission);

// The title the user reads for a task, translated with the emission as context (as CHT does).
const titleOf = (task) => t(task?.emission?.title, task?.emission);

// The lineage shown under a name: the contact's places without the user's own place (CHT drops it too:
// every task of a CHW is in their own area).
function shownLineage(task) {
  const own = state.me?.facility_id;
  return (task?.lineage ?? []).filter((p) => p && p._id !== own && p.name);
}

function findTask(emissionId) {
  return state.tasks.find((x) => x.emission_id === emissionId || x.emission?._id === emissionId);
}

// ---------------------------------------------------------------------------------------------------
// header, menu, sync status

function setHeader({ title, back = null, overdue = null }) {
  $('title').textContent = title;
  document.title = `${title} · Kazi`;
  const backBtn = $('back');
  backBtn.hidden = !back;
  backBtn.setAttribute('aria-label', t('app.back'));
  backBtn.onclick = back ? () => goBack(back) : null;
  const bubble = $('overdue');
  if (overdue === null || overdue === 0) {
    bubble.hidden = true;
  } else {
    bubble.hidden = false;
    bubble.textContent = String(overdue);
    const words = t('app.overdue.count', { COUNT: overdue });
    bubble.title = words;
    bubble.setAttribute('aria-label', words);
  }
  $('menu-btn').hidden = !state.me;
}

// Back goes back in history when the previous page was the app's, else to `fallback`.
let inAppNavigations = 0;
function goBack(fallback) {
  if (inAppNavigations > 0) history.back();
  else location.hash = fallback;
}

function renderMenu() {
  const menu = $('menu');
  const btn = $('menu-btn');
  btn.querySelector('.sr').textContent = t('app.menu');
  const close = () => { menu.hidden = true; btn.setAttribute('aria-expanded', 'false'); };
  btn.onclick = () => {
    const open = menu.hidden;
    menu.hidden = !open;
    btn.setAttribute('aria-expanded', String(open));
    if (open) menu.querySelector('button')?.focus();
  };
  menu.onkeydown = (e) => { if (e.key === 'Escape') { close(); btn.focus(); } };
  if (!state.me) { close(); menu.replaceChildren(); return; }
  menu.replaceChildren(
    h('p', { class: 'who' }, h('strong', {}, state.me.username), ' ', (state.me.roles ?? []).join(', ')),
    h('button', { type: 'button', onclick: () => { close(); sync(); } }, t('sync.now')),
    can('can_view_interaction_analytics')
      ? h('a', { href: '#/analytics', id: 'analytics-link', onclick: close }, t('app.analytics.title')) : null,
    can('can_view_supervisor_reports')
      ? h('a', { href: '#/supervision', id: 'supervision-link', onclick: close }, t('app.supervision.title')) : null,
    h('button', {
      type: 'button', id: 'logout',
      onclick: async () => {
        const waiting = state.queue.length;
        if (waiting && !confirm(t('app.logout.confirm', { COUNT: waiting }))) return;
        close();
        tracker.track('task_list:leave');
        await logout();
        tracker.configure(null);
        location.hash = '#/tasks';
        route();
      },
    }, t('Log Out')),
  );
}

function renderSync() {
  const bar = $('sync');
  if (!state.me) { bar.replaceChildren(); bar.hidden = true; return; }
  bar.hidden = false;
  const parts = [];
  parts.push(h('span', { class: 'last-sync', 'data-last-sync': state.lastSync ?? '' },
    state.lastSync ? `${t('sync.last_success')}: ${formatTime(state.lastSync)}` : t('app.sync.never')));
  if (state.syncing) parts.push(h('span', { class: 'syncing' }, t('app.sync.syncing')));
  if (!state.online) parts.push(h('span', { class: 'offline' }, t('app.sync.offline')));
  const line = h('div', { class: 'sync-line' }, parts,
    h('button', { type: 'button', class: 'link', onclick: () => sync(), disabled: state.syncing || !state.online }, t('sync.now')));
  const extra = [];
  if (state.queue.length) {
    extra.push(h('details', { class: 'queued', 'data-count': state.queue.length },
      h('summary', {}, t('app.sync.queued', { COUNT: state.queue.length })),
      h('ul', {}, state.queue.map((e) => h('li', {},
        `${t(e.title)} · ${e.contactName || ''} · ${formatTime(e.queuedAt)}`,
        e.lastError ? h('span', { class: 'err' }, ` (${e.lastError})`) : null)))));
  }
  for (const f of state.failed) {
    extra.push(h('div', { class: 'failed', role: 'alert' },
      h('strong', {}, t('app.sync.failed')), ': ', `${t(f.title)} · ${f.contactName || ''}: ${f.error}`,
      (f.problems ?? []).length ? h('ul', {}, f.problems.map((p) => h('li', {}, `${p.field ?? ''} ${p.message ?? ''}`))) : null,
      h('button', { type: 'button', class: 'link', onclick: () => dismissFailure(f._id) }, t('app.sync.dismiss'))));
  }
  if (state.error && state.online) extra.push(h('div', { class: 'sync-error' }, t('app.sync.error', { message: state.error })));
  if (state.sessionEnded && !state.online) extra.push(h('div', { class: 'sync-error' }, t('app.login.expired')));
  bar.replaceChildren(line, ...extra);
}

// ---------------------------------------------------------------------------------------------------
// views

let current = null; // {name, update?}

// Task interaction tracking (tracker.js) follows the views shown: the Tasks tab is the list, a task, its
// form and the household group; any other page (a contact, the analytics, the login) leaves it.
const TASKS_TAB = new Set(['list', 'task', 'form', 'group', 'gone']);
let formSaved = false;
let listLoaded = false; // task_list:loaded sent since the list was last opened
function trackView(prev, name) {
  if (prev === name) return; // the same page drawn again
  if (prev === 'form' && !formSaved) tracker.track('task:cancel');
  if (prev === 'task' && name === 'list') tracker.track('task:back');
  if (prev === 'group' && name !== 'group') tracker.track('task_group:leave');
  formSaved = false;
  if (!TASKS_TAB.has(name)) tracker.track('task_list:leave');
  else if (name === 'list') { listLoaded = false; tracker.track('task_list:open'); }
}

function show(name, nodes, update = null) {
  trackView(current?.name, name);
  current = { name, update };
  main.replaceChildren(...[nodes].flat());
  if (update) update();
}

function loginView(message = '') {
  setHeader({ title: t('app.login.title') });
  const error = h('p', { class: 'alert', role: 'alert', hidden: !message }, message);
  const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', required: true });
  const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, t('app.login.submit'));
  const form = h('form', { class: 'login', novalidate: true },
    h('h2', {}, 'Kazi'),
    error,
    h('label', { for: 'username' }, t('app.login.username')), user,
    h('label', { for: 'password' }, t('app.login.password')), pass,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      await login(user.value.trim(), pass.value);
      location.hash = '#/tasks';
      route();
    } catch (err) {
      error.textContent = err instanceof NetworkError ? t('app.login.offline')
        : err instanceof ApiError && (err.status === 401 || err.status === 422) ? t('app.login.wrong') : t('app.error', { message: err.message });
      error.hidden = false;
      pass.focus();
    } finally {
      submit.disabled = false;
    }
  });
  show('login', form);
  user.focus();
}

// Filters live as long as the page: leaving a task and coming back keeps them, as in CHT.
const filters = { overdue: 'any', type: '', place: '', search: '' };
let filtersOpen = false;

function taskRow(task, today, onOpen = null) {
  const e = task.emission ?? {};
  const label = dueLabel(e.dueDate, today);
  const overdue = isOverdue(task, today);
  const lineage = shownLineage(task);
  const risky = e.priority !== undefined && e.priority !== null && e.priority !== false && e.priority !== 0 && e.priority !== '';
  return h('li', {},
    h('a', { class: `task${overdue ? ' overdue' : ''}`, href: `#/tasks/${enc(task.emission_id ?? e._id)}`, 'data-task-id': task._id, onclick: onOpen },
      icon(e.icon),
      h('span', { class: 'body' },
        h('span', { class: 'row1' },
          h('span', { class: 'name' }, task.contact?.name ?? e.contact?.name ?? ''),
          label ? h('span', { class: `due${overdue ? ' overdue' : ''}` }, t(label.key, label.vars)) : null),
        h('span', { class: 'title' }, titleOf(task)),
        lineage.length ? h('span', { class: 'lineage' }, lineage.map((p) => p.name).join(' · ')) : null,
        risky || e.priorityLabel ? h('span', { class: 'risk' },
          risky ? h('span', { class: 'risk-icon', svg: ICONS.risk, title: t('app.high_risk') }) : null,
          risky ? h('span', { class: 'sr' }, `${t('app.high_risk')}. `) : null,
          e.priorityLabel ? h('span', { class: 'priority-label' }, t(e.priorityLabel, e)) : null) : null)));
}

function selectField(id, label, options, value, onchange) {
  const select = h('select', { id, onchange: (ev) => onchange(ev.target.value) },
    options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  select.value = value;
  return h('div', { class: 'field' }, h('label', { for: id }, label), select);
}

function listView() {
  const search = h('input', {
    id: 'search', type: 'search', value: filters.search, placeholder: t('app.search.placeholder'), autocomplete: 'off',
    oninput: (ev) => {
      const was = filters.search.trim() !== '';
      filters.search = ev.target.value;
      const now = filters.search.trim() !== '';
      if (now !== was) tracker.track(now ? 'task_filter:select' : 'task_filter:clear', 'search', now ? 1 : undefined);
      update();
    },
  });
  const filterBtn = h('button', {
    type: 'button', id: 'filter-btn', class: 'btn', 'aria-expanded': String(filtersOpen), 'aria-controls': 'filters',
    onclick: () => {
      filtersOpen = !filtersOpen;
      panel.hidden = !filtersOpen;
      filterBtn.setAttribute('aria-expanded', String(filtersOpen));
      tracker.track(filtersOpen ? 'task_filter:open' : 'task_filter:close');
      if (filtersOpen) panel.querySelector('select')?.focus();
    },
  }, t('app.filters'), h('span', { class: 'count' }));
  const panel = h('div', { id: 'filters', class: 'filters', hidden: !filtersOpen });
  const host = h('div', { id: 'task-list' });
  const reset = () => {
    tracker.track('task_filter:reset');
    Object.assign(filters, { overdue: 'any', type: '', place: '', search: '' });
    search.value = '';
    update();
  };
  // which filter (its field id for the tracker), never its value
  const choose = (key, field, none, v) => {
    filters[key] = v;
    tracker.track(v === none ? 'task_filter:clear' : 'task_filter:select', field, v === none ? undefined : 1);
    update();
  };

  function update() {
    const today = localDay();
    const all = readyTasks(state.tasks, today, hiddenTaskIds());
    const overdueCount = all.filter((x) => isOverdue(x, today)).length;
    setHeader({ title: t('app.title'), overdue: overdueCount });

    const types = [...new Set(all.map(titleOf))].sort((a, b) => fold(a).localeCompare(fold(b)));
    if (filters.type && !types.includes(filters.type)) types.push(filters.type);
    const own = state.me?.facility_id;
    const places = filterPlaces(all).filter((p) => p._id !== own);
    if (filters.place && !places.some((p) => p._id === filters.place)) filters.place = '';
    const active = ['overdue', 'type', 'place'].filter((k) => filters[k] && filters[k] !== 'any').length;
    filterBtn.querySelector('.count').textContent = active ? ` (${active})` : '';
    const hadFocus = panel.contains(document.activeElement) ? document.activeElement.id : null;
    panel.replaceChildren(
      selectField('f-overdue', t('app.filter.overdue'),
        [['any', t('app.filter.overdue.any')], ['yes', t('app.filter.overdue.yes')], ['no', t('app.filter.overdue.no')]],
        filters.overdue, (v) => choose('overdue', 'overdue', 'any', v)),
      selectField('f-type', t('app.filter.type'), [['', t('app.filter.type.any')], ...types.map((x) => [x, x])],
        filters.type, (v) => choose('type', 'task_type', '', v)),
      selectField('f-place', t('app.filter.place'),
        [['', t('app.filter.place.any')], ...places.map((p) => [p._id, `${'\u00a0\u00a0'.repeat(Math.max(0, p.depth - (own ? 1 : 0)))}${p.name}`])],
        filters.place, (v) => choose('place', 'place', '', v)),
      h('button', { type: 'button', class: 'btn', onclick: reset }, t('app.filters.reset')));
    if (hadFocus) $(hadFocus)?.focus();

    const shown = filterTasks(all, filters, today, titleOf);
    let body;
    if (Array.isArray(state.me?.permissions) && !can('can_view_tasks')) {
      body = empty(t('tasks.disabled'));
    } else if (!state.lastSync) {
      body = state.syncing ? h('p', { class: 'loading' }, t('app.sync.syncing'))
        : empty(t('app.empty.never_synced'),
          state.online ? t('app.empty.sync_failed', { message: state.error || t('app.sync.offline') }) : t('app.empty.never_synced.detail'),
          state.online ? 'sync-failed' : 'never-synced',
          state.online ? h('button', { type: 'button', class: 'btn', onclick: () => sync() }, t('sync.now')) : null);
    } else if (!all.length) {
      body = empty(t('No tasks found'), t('app.empty.none'), 'no-tasks');
      if (!listLoaded) { listLoaded = true; tracker.track('task_list:loaded', undefined, 0); }
    } else if (!shown.length) {
      body = empty(t('app.empty.filtered'), null, 'no-match', h('button', { type: 'button', class: 'btn', onclick: reset }, t('app.filters.reset')));
      if (!listLoaded) { listLoaded = true; tracker.track('task_list:loaded', undefined, 0); }
    } else {
      if (!listLoaded) { listLoaded = true; tracker.track('task_list:loaded', undefined, shown.length); }
      // the task's title key and its position in the list: never its displayed title or its contact
      body = [h('ul', { class: 'tasks', 'aria-label': t('app.title') },
        shown.map((x, i) => taskRow(x, today, () => tracker.track('task:open', x.emission?.title, i)))),
        h('p', { class: 'end' }, t('task.list.complete'))];
    }
    host.replaceChildren(...[body].flat());
  }

  show('list', [h('div', { class: 'toolbar' }, h('label', { for: 'search', class: 'sr' }, t('Search')), search, filterBtn), panel, host], update);
}

function empty(title, detail, kind = '', ...more) {
  return h('div', { class: 'empty', 'data-empty': kind }, h('p', { class: 'empty-title' }, title),
    detail ? h('p', {}, detail) : null, ...more);
}

// What a report action's form gets as inputs: the action's content, plus the task's contact as CHT's
// action content has it (minified task documents keep only its id, as `forId`).
function actionContent(task, action) {
  const content = { ...(action?.content ?? {}) };
  if (!content.contact) {
    const id = task.emission?.forId ?? task.contact?._id ?? task.owner;
    if (id) content.contact = { _id: id, name: task.contact?.name ?? task.emission?.contact?.name };
  }
  return content;
}

function actionHref(task, index) {
  const action = task.emission?.actions?.[index];
  if (action?.type === 'contact') {
    const id = action.content?.contact?._id ?? task.emission?.forId ?? task.contact?._id ?? task.owner;
    return `#/contact/${enc(id)}`;
  }
  return `#/form/${enc(task.emission_id ?? task.emission?._id)}/${index}`;
}

function gone() {
  setHeader({ title: t('app.title'), back: '#/tasks' });
  show('gone', empty(t('No task selected'), null, 'gone', h('a', { class: 'btn', href: '#/tasks' }, t('app.title'))));
}

function taskView(emissionId) {
  const task = findTask(emissionId);
  if (!task || hiddenTaskIds().has(task._id)) return gone();
  const e = task.emission ?? {};
  const actions = e.actions ?? [];
  if (actions.length === 1) {
    location.replace(actionHref(task, 0)); // one action and nothing else: straight to it, as CHT does
    return;
  }
  const today = localDay();
  const label = dueLabel(e.dueDate, today);
  const overdue = isOverdue(task, today);
  setHeader({ title: titleOf(task), back: '#/tasks' });
  const contactId = e.forId ?? task.contact?._id ?? task.owner;
  show('task', h('article', { class: 'task-detail' },
    h('div', { class: 'head' }, icon(e.icon, 'big'), h('h2', {}, titleOf(task))),
    h('dl', {},
      h('dt', {}, t('app.task.contact')),
      h('dd', {}, contactId ? h('a', { href: `#/contact/${enc(contactId)}` }, task.contact?.name ?? e.contact?.name ?? contactId) : (e.contact?.name ?? ''),
        shownLineage(task).length ? h('span', { class: 'lineage' }, shownLineage(task).map((p) => p.name).join(' · ')) : null),
      h('dt', {}, t('task.date')),
      h('dd', {}, formatDay(e.dueDate), label ? h('span', { class: `due${overdue ? ' overdue' : ''}` }, ` · ${t(label.key, label.vars)}`) : null),
      e.priorityLabel || e.priority ? [h('dt', {}, t('task.priority')),
        h('dd', { class: 'risk' }, h('span', { class: 'risk-icon', svg: ICONS.risk }), e.priorityLabel ? t(e.priorityLabel, e) : String(e.priority))] : null),
    actions.length ? h('div', { class: 'actions', role: 'group', 'aria-label': t('app.task.actions') },
      actions.map((a, i) => h('a', { class: `btn${i === 0 ? ' primary' : ''}`, href: actionHref(task, i) }, t(a.label, e)))) : null));
}

function fieldView(field, onInput) {
  const id = `f-${field.name}`;
  const label = t(field.label || field.name);
  const req = field.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null;
  const err = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const wrap = (...children) => h('div', { class: `field type-${field.type}`, 'data-field': field.name }, ...children, err);
  const common = { id, name: field.name, 'aria-describedby': `${id}-error`, 'aria-required': field.required ? 'true' : null };
  switch (field.type) {
    case 'note':
      return h('div', { class: 'field type-note', 'data-field': field.name }, h('p', { class: 'note' }, label));
    case 'select_one':
    case 'select_multiple': {
      const multi = field.type === 'select_multiple';
      return wrap(h('fieldset', { 'aria-describedby': `${id}-error`, 'aria-required': field.required ? 'true' : null },
        h('legend', {}, label, req),
        (field.choices ?? []).map((c, i) => h('label', { class: 'choice' },
          h('input', { type: multi ? 'checkbox' : 'radio', name: field.name, value: c.value, id: `${id}-${i}`, oninput: onInput }),
          h('span', {}, t(c.label))))));
    }
    case 'date':
      return wrap(h('label', { for: id }, label, req), h('input', { ...common, type: 'date', oninput: onInput }));
    case 'integer':
      return wrap(h('label', { for: id }, label, req), h('input', { ...common, type: 'text', inputmode: 'numeric', autocomplete: 'off', oninput: onInput }));
    case 'decimal':
      return wrap(h('label', { for: id }, label, req), h('input', { ...common, type: 'text', inputmode: 'decimal', autocomplete: 'off', oninput: onInput }));
    default:
      return wrap(h('label', { for: id }, label, req),
        field.multiline ? h('textarea', { ...common, rows: 3, oninput: onInput }) : h('input', { ...common, type: 'text', oninput: onInput }));
  }
}

function readForm(formEl, form) {
  const raw = {};
  for (const f of form.fields ?? []) {
    if (f.type === 'select_multiple') raw[f.name] = [...formEl.querySelectorAll(`input[name="${CSS.escape(f.name)}"]:checked`)].map((i) => i.value);
    else if (f.type === 'select_one') raw[f.name] = formEl.querySelector(`input[name="${CSS.escape(f.name)}"]:checked`)?.value;
    else if (f.type !== 'note' && f.type !== 'hidden') raw[f.name] = formEl.elements.namedItem(f.name)?.value;
  }
  return raw;
}

function formView(emissionId, index) {
  const task = findTask(emissionId);
  if (!task || hiddenTaskIds().has(task._id)) return gone();
  const action = task.emission?.actions?.[Number(index)];
  const form = action ? state.forms[action.form] : null;
  if (!form) {
    setHeader({ title: titleOf(task), back: '#/tasks' });
    show('form', empty(t('app.form.missing', { form: action?.form ?? '' }), null, 'no-form'));
    return;
  }
  const content = actionContent(task, action);
  const byName = Object.fromEntries((form.fields ?? []).map((f) => [f.name, f]));
  setHeader({ title: t(form.title || form.id), back: '#/tasks' });
  const alert = h('p', { class: 'alert', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, t('Submit'));
  const formEl = h('form', { class: 'report', novalidate: true, 'data-form': form.id });
  const relevance = (ev) => {
    const changedField = ev?.target?.closest?.('[data-field]');
    if (changedField) {
      const p = changedField.querySelector('.field-error');
      if (p) { p.hidden = true; p.textContent = ''; }
      changedField.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
    }
    const { relevant } = collectFields(form, readForm(formEl, form), content);
    for (const f of form.fields ?? []) {
      const el = formEl.querySelector(`[data-field="${CSS.escape(f.name)}"]`);
      if (el) el.hidden = !relevant.has(f.name);
    }
  };
  const fields = (form.fields ?? []).filter((f) => f.type !== 'hidden').map((f) => fieldView(f, relevance));
  formEl.append(
    h('p', { class: 'form-subject' }, icon(task.emission?.icon), h('span', {}, h('strong', {}, task.contact?.name ?? task.emission?.contact?.name ?? ''), ' · ', titleOf(task))),
    alert, ...fields,
    h('div', { class: 'actions' }, submit, h('button', { type: 'button', class: 'btn', onclick: () => goBack('#/tasks') }, t('Cancel'))));
  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    tracker.track('task:form_save');
    const { fields: values, errors } = collectFields(form, readForm(formEl, form), content);
    formEl.querySelectorAll('.field-error').forEach((p) => { p.hidden = true; p.textContent = ''; });
    formEl.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
    const bad = Object.keys(errors);
    const missingInput = bad.find((name) => byName[name]?.type === 'hidden');
    if (missingInput) {
      alert.textContent = t('app.form.task_input', { field: missingInput });
      alert.hidden = false;
      return;
    }
    if (bad.length) {
      alert.textContent = t('app.form.fix');
      alert.hidden = false;
      for (const name of bad) {
        const p = $(`f-${name}-error`);
        if (p) { p.textContent = t(errors[name]); p.hidden = false; }
        formEl.querySelector(`[data-field="${CSS.escape(name)}"] input, [data-field="${CSS.escape(name)}"] textarea`)?.setAttribute('aria-invalid', 'true');
      }
      formEl.querySelector(`[data-field="${CSS.escape(bad[0])}"] input, [data-field="${CSS.escape(bad[0])}"] textarea`)?.focus();
      return;
    }
    submit.disabled = true;
    try {
      await submitReport({ form, fields: values, task });
    } catch (err) {
      alert.textContent = t('app.error', { message: err.message });
      alert.hidden = false;
      submit.disabled = false;
      return;
    }
    formSaved = true;
    tracker.track('task:complete');
    toast(state.online ? t('app.form.sending') : t('app.form.queued'));
    if (can('can_view_tasks_group')) {
      const household = householdOf(task, state.tasks);
      if (household) { location.replace(`#/group/${enc(household)}/${enc(task._id)}`); return; }
    }
    location.replace('#/tasks');
  });
  show('form', formEl);
  tracker.track('task:form_open', action.form);
  relevance();
}

function groupView(householdId, doneTaskId) {
  if (!can('can_view_tasks_group')) { location.replace('#/tasks'); return; }
  const today = localDay();
  const others = householdTasks(householdId, readyTasks(state.tasks, today, hiddenTaskIds()), doneTaskId);
  if (!others.length) {
    toast(t('tasks.group.completed'));
    location.replace('#/tasks');
    return;
  }
  setHeader({ title: t('tasks.group.title'), back: '#/tasks' });
  const update = () => {
    const now = localDay();
    const list = householdTasks(householdId, readyTasks(state.tasks, now, hiddenTaskIds()), doneTaskId);
    main.querySelector('.tasks')?.replaceChildren(...list.map((x, i) => taskRow(x, now, chosen(x, i))));
  };
  // a task chosen here is opened like one from the list (its position here)
  const chosen = (x, i) => () => {
    tracker.track('task_group:select', x.emission?.title);
    tracker.track('task:open', x.emission?.title, i);
  };
  show('group', [h('ul', { class: 'tasks group', 'aria-label': t('tasks.group.title') }, others.map((x, i) => taskRow(x, today, chosen(x, i)))),
    h('p', { class: 'end' }, h('a', { class: 'btn', href: '#/tasks' }, t('app.title')))], update);
  tracker.track('task_group:show', undefined, others.length);
}

async function contactView(id) {
  setHeader({ title: t('app.task.contact'), back: '#/tasks' });
  show('contact', h('p', { class: 'loading' }, t('app.sync.syncing')));
  let data = null;
  let cachedAt = null;
  try {
    data = await api(`/contacts/${enc(id)}`);
    await kv.set(`contact:${id}`, { data, at: Date.now() });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      show('contact', empty(t('app.contact.not_found'), null, 'not-found'));
      return;
    }
    const cached = await kv.get(`contact:${id}`);
    if (cached) { data = cached.data; cachedAt = cached.at; }
    else {
      show('contact', empty(err instanceof NetworkError ? t('app.contact.offline') : t('app.error', { message: err.message }), null, 'contact-offline'));
      return;
    }
  }
  if (current?.name !== 'contact' || !location.hash.startsWith(`#/contact/${enc(id)}`)) return; // the user moved on
  const c = data.contact ?? {};
  setHeader({ title: c.name ?? id, back: '#/tasks' });
  const today = localDay();
  const hidden = hiddenTaskIds();
  const tasks = (data.tasks ?? []).filter((x) => !hidden.has(x._id));
  const own = state.me?.facility_id;
  const details = [['patient_id', c.patient_id], ['date_of_birth', formatDay(c.date_of_birth)], ['sex', c.sex], ['phone', c.phone]]
    .filter(([, v]) => v !== undefined && v !== null && v !== '');
  const formTitle = (r) => (state.forms[r.form] ? t(state.forms[r.form].title) : r.form);
  show('contact', h('article', { class: 'contact' },
    cachedAt ? h('p', { class: 'note' }, t('app.contact.cached', { when: formatTime(cachedAt) })) : null,
    h('div', { class: 'head' }, h('h2', {}, c.name ?? id)),
    (data.lineage ?? []).length ? h('p', { class: 'lineage' }, (data.lineage ?? []).map((p, i) => [i ? ' · ' : '',
      p._id === own ? p.name : h('a', { href: `#/contact/${enc(p._id)}` }, p.name ?? p._id)])) : null,
    details.length ? h('dl', { class: 'details' }, details.map(([k, v]) => [h('dt', {}, t(`app.contact.${k}`)), h('dd', {}, k === 'sex' ? known(`app.contact.sex.${v}`, v) : String(v))])) : null,
    h('section', {}, h('h3', {}, t('app.contact.tasks')),
      tasks.length ? h('ul', { class: 'tasks' }, tasks.map((x) => taskRow(x, today))) : h('p', { class: 'muted' }, t('tasks.none'))),
    (data.children ?? []).length ? h('section', {}, h('h3', {}, t('app.contact.children')),
      h('ul', { class: 'plain' }, data.children.map((k) => h('li', {}, h('a', { href: `#/contact/${enc(k._id)}` }, k.name ?? k._id))))) : null,
    h('section', { class: 'reports' }, h('h3', {}, t('app.contact.reports')),
      (data.reports ?? []).length ? h('ul', { class: 'plain' }, data.reports.map((r) => h('li', {},
        h('span', { class: 'report-form' }, formTitle(r)), ' ',
        h('time', { class: 'muted', datetime: new Date(r.reported_date ?? 0).toISOString() }, formatTime(r.reported_date ?? 0)))))
        : h('p', { class: 'muted' }, t('app.contact.no_reports')))));
}

// The analysts' page lives in its own module: only analysts download it.
async function analyticsView() {
  if (!can('can_view_interaction_analytics')) { location.replace('#/tasks'); return; }
  setHeader({ title: t('app.analytics.title'), back: '#/tasks' });
  show('analytics', h('p', { class: 'loading' }, t('app.sync.syncing')));
  try {
    const { analyticsPage } = await import('./analytics.js');
    if (current?.name !== 'analytics') return;
    show('analytics', analyticsPage({ h, t, api, state, places: filterPlaces(readyTasks(state.tasks, localDay(), new Set())) }));
  } catch (err) {
    show('analytics', empty(t('app.error', { message: err.message })));
  }
}

// The supervisor reports live in their own module too: only supervisors download it (and only when opened).
async function supervisionView(username) {
  if (!can('can_view_supervisor_reports')) { location.replace('#/tasks'); return; }
  const name = username ? 'supervision-worker' : 'supervision';
  setHeader({ title: t('app.supervision.title'), back: username ? '#/supervision' : '#/tasks' });
  show(name, h('p', { class: 'loading' }, t('app.sync.syncing')));
  try {
    const { supervisionPage, workerPage } = await import('./supervision.js');
    if (current?.name !== name) return;
    show(name, username ? workerPage({ h, t, api, state, username }) : supervisionPage({ h, t, api, state }));
  } catch (err) {
    show(name, empty(t('app.error', { message: err.message })));
  }
}

// ---------------------------------------------------------------------------------------------------
// routing

function route() {
  tracker.configure(state.me);
  renderMenu();
  renderSync();
  if (!state.me || (state.sessionEnded && state.online && current?.name !== 'form')) {
    loginView(state.sessionEnded ? t('app.login.expired') : (!state.online ? t('app.login.offline') : ''));
    return;
  }
  const [view = 'tasks', a, b] = location.hash.replace(/^#\/?/, '').split('/').map((s) => decodeURIComponent(s));
  if (view === 'tasks' && a) taskView(a);
  else if (view === 'form' && a) formView(a, b ?? 0);
  else if (view === 'contact' && a) contactView(a);
  else if (view === 'group' && a) groupView(a, b);
  else if (view === 'analytics') analyticsView();
  else if (view === 'supervision') supervisionView(a);
  else listView();
}

function onChange() {
  tracker.configure(state.me);
  t = makeTranslator(state.messages, state.locale);
  document.documentElement.lang = state.locale || 'en';
  renderSync();
  renderMenu();
  if (!state.me || (state.sessionEnded && state.online && current?.name !== 'form' && current?.name !== 'login')) {
    route();
    return;
  }
  if (current?.name === 'login' && state.me && !state.sessionEnded) return; // login() routes itself
  current?.update?.();
}

// Local midnight: Draft tasks whose window opens today become Ready and Ready ones whose window closed
// drop out, on the device, without a connection (CHT's updateTemporalStates; see
// docs/webapp.md, "Offline").
function watchMidnight() {
  let day = localDay();
  const check = () => {
    const now = localDay();
    if (now !== day) { day = now; tracker.dayOver(); onChange(); }
  };
  const schedule = () => setTimeout(() => { check(); schedule(); }, msToMidnight() + 500);
  schedule();
  setInterval(check, 60 * 1000); // a sleeping phone's timers drift: check every minute too
  document.addEventListener('visibilitychange', check);
}

async function boot() {
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('sw.js').catch(() => {});
  await loadLocal();
  t = makeTranslator(state.messages, state.locale);
  changed.addEventListener('change', onChange);
  changed.addEventListener('sent', () => toast(t('app.form.sent')));
  addEventListener('hashchange', () => { inAppNavigations += 1; route(); main.focus({ preventScroll: true }); window.scrollTo(0, 0); });
  startAutoSync();
  watchMidnight();
  addEventListener('scroll', () => { if (current?.name === 'list') tracker.track('task_list:scroll'); }, { passive: true });
  // the app hidden (another app, the screen off) or closed ends the session; back on the list starts one
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') tracker.track('task_list:leave');
    else if (current?.name === 'list' && !tracker.inSession()) tracker.track('task_list:open');
  });
  addEventListener('pagehide', () => tracker.track('task_list:leave'));
  if (!state.me && navigator.onLine) {
    try { await whoAmI(); } catch { /* no answer: the login view says so */ }
  }
  route();
  if (state.me && navigator.onLine) sync();
}

boot();
