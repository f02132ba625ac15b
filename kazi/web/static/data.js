// The app's data: the API, the device's IndexedDB copy of the user's tasks, forms and translations, and
// the queue of submitted forms. The app always reads from the device copy, so it works the same online and
// offline; syncing refreshes the copy and sends the queue.

import { applyTaskDelta, localDay, newId } from './logic.js';
import * as tracker from './tracker.js';

// ---------------------------------------------------------------------------------------------------
// HTTP

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// No answer at all (offline, DNS, timeout): the request may be retried.
export class NetworkError extends Error {}

// Relative to /app/, so Kazi also works behind a proxy that serves it under a path prefix.
const API_BASE = new URL('../api/v1', document.baseURI).pathname;

export async function api(path, { method = 'GET', body, timeoutMs = 20000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let res;
  try {
    res = await fetch(API_BASE + path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      // X-Requested-With: a 401 then comes without WWW-Authenticate, so the browser shows no password box.
      headers: { 'X-Requested-With': 'kazi-app', Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: controller.signal,
    });
  } catch (err) {
    throw new NetworkError(err?.name === 'AbortError' ? 'no answer from the server' : (err?.message || 'offline'));
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data?.error?.message || `HTTP ${res.status}`, data);
  return data;
}

// ---------------------------------------------------------------------------------------------------
// IndexedDB: "kv" holds the user's copy (me, tasks, forms, translations, sync times), "queue" the forms
// waiting to be sent (one record per report, keyed by its client-generated _id).

const DB_NAME = 'kazi-app';
const DB_VERSION = 1;
let dbPromise = null;

function openDb() {
  dbPromise ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB_NAME, DB_VERSION);
    r.onupgradeneeded = () => {
      const db = r.result;
      if (!db.objectStoreNames.contains('kv')) db.createObjectStore('kv');
      if (!db.objectStoreNames.contains('queue')) db.createObjectStore('queue', { keyPath: '_id' });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  return dbPromise;
}

// Runs `fn(store)` in one transaction and resolves once it is committed (durable), with fn's request result.
async function tx(name, mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(name, mode);
    let result;
    const r = fn(t.objectStore(name));
    if (r) r.onsuccess = () => { result = r.result; };
    t.oncomplete = () => resolve(result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

export const kv = {
  get: (key) => tx('kv', 'readonly', (s) => s.get(key)),
  set: (key, value) => tx('kv', 'readwrite', (s) => s.put(value, key)),
  del: (key) => tx('kv', 'readwrite', (s) => s.delete(key)),
  clear: () => tx('kv', 'readwrite', (s) => s.clear()),
};

export const queue = {
  all: async () => ((await tx('queue', 'readonly', (s) => s.getAll())) ?? []).sort((a, b) => a.queuedAt - b.queuedAt),
  put: (entry) => tx('queue', 'readwrite', (s) => s.put(entry)),
  del: (id) => tx('queue', 'readwrite', (s) => s.delete(id)),
};

// ---------------------------------------------------------------------------------------------------
// state shared with the views; `changed` tells them to redraw

export const state = {
  me: null,            // GET /me (permissions, locale, program_version)
  messages: {},        // the user's translations
  locale: 'en',
  forms: {},           // form id -> form
  formsVersion: null,  // program version the forms came with
  tasks: [],           // the user's Ready and Draft task items, as the server sent them
  tasksSeq: null,      // the `seq` of the answer the copy is up to date with (the next sync asks `since` it)
  tasksDay: null,      // the device's local day of the last whole list (names and places refresh daily)
  lastSync: null,      // epoch ms of the last complete sync
  syncing: false,
  online: navigator.onLine,
  queue: [],           // waiting submissions (this user's)
  failed: [],          // submissions the server refused (409/422), kept to show them
  done: {},            // task _id -> {reportId, at, sentAt?}: submitted here, hidden until a sync shows it handled
  error: null,         // the last sync's problem, for the status line
  sessionEnded: false, // a 401: the user must log in again (the queue is kept)
};

export const changed = new EventTarget();
const emit = (what = 'state') => changed.dispatchEvent(new CustomEvent('change', { detail: what }));

// Keys of the device copy that belong to the logged-in user (the queue is kept apart, per username).
const USER_KEYS = ['me', 'messages', 'locale', 'forms', 'formsVersion', 'tasks', 'tasksSeq', 'tasksDay', 'lastSync',
  'failed', 'done'];

export async function loadLocal() {
  const values = await Promise.all(USER_KEYS.map((k) => kv.get(k)));
  USER_KEYS.forEach((k, i) => { if (values[i] !== undefined) state[k] = values[i]; });
  await refreshQueue();
}

async function refreshQueue() {
  const all = await queue.all();
  state.queue = all.filter((e) => e.username === state.me?.username);
}

async function save(...keys) {
  await Promise.all(keys.map((k) => kv.set(k, state[k])));
}

// Task ids hidden from the list: submitted on this device and not yet shown handled by a sync.
export function hiddenTaskIds() {
  return new Set(Object.keys(state.done));
}

// ---------------------------------------------------------------------------------------------------
// session

export async function login(username, password) {
  const out = await api('/login', { method: 'POST', body: { username, password } });
  const previous = state.me?.username;
  if (previous && previous !== out.user.username) await forgetUser();
  state.me = { ...(state.me ?? {}), ...out.user };
  state.sessionEnded = false;
  await save('me');
  await refreshQueue();
  emit();
  return sync();
}

// Logging out ends the session on the server and removes the user's copy from the device. Queued forms
// stay (keyed by username) and are sent the next time that user logs in here: nothing is ever lost.
export async function logout() {
  try { await api('/logout', { method: 'POST' }); } catch { /* offline: the cookie is dropped below anyway */ }
  await forgetUser();
  emit();
}

async function forgetUser() {
  await kv.clear();
  Object.assign(state, { me: null, messages: {}, forms: {}, formsVersion: null, tasks: [], tasksSeq: null,
    tasksDay: null, lastSync: null, failed: [], done: {}, error: null, queue: [] });
}

// Who is logged in, asked of the server (a valid session cookie may exist while the device copy is empty).
export async function whoAmI() {
  try {
    state.me = await api('/me');
    state.sessionEnded = false;
    await save('me');
    await refreshQueue();
    return state.me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      if (state.me) state.sessionEnded = true;
      return null;
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------
// submitting forms

// Queue a report (always: online or not, the queue is the one path, so a form is never lost or sent
// twice), hide its task at once, then try to send it.
export async function submitReport({ form, fields, task }) {
  const id = newId();
  const entry = {
    _id: id,
    username: state.me.username,
    queuedAt: Date.now(),
    taskId: task?._id ?? null,
    title: task?.emission?.title ?? form.title,
    contactName: task?.contact?.name ?? task?.emission?.contact?.name ?? '',
    attempts: 0,
    lastError: null,
    body: { _id: id, form: form.id, fields, reported_date: Date.now() },
  };
  await queue.put(entry);
  if (task) {
    state.done[task._id] = { reportId: id, at: Date.now() };
    await save('done');
  }
  await refreshQueue();
  emit();
  if (navigator.onLine) sync();
  return entry;
}

let flushing = null;
let flushAgain = false;

// Send the queue, oldest first, one at a time. An entry leaves the queue only after the server answered
// 2xx (stored; a repeat of a stored report answers 200 "unchanged") or 409/422 (refused for good: kept in
// `failed` and shown). A network error or any other answer keeps it for the next try. One flush at a time
// in this tab (a form queued meanwhile is sent by a second pass), and one across tabs where Web Locks exist.
export function flush() {
  if (flushing) {
    flushAgain = true;
    return flushing;
  }
  flushing = (async () => {
    try {
      do {
        flushAgain = false;
        const run = () => sendQueue();
        const ok = navigator.locks?.request ? await navigator.locks.request('kazi-flush', run) : await run();
        if (!ok) { scheduleRetry(); break; }
        retryDelay = RETRY_FIRST_MS;
      } while (flushAgain);
    } finally {
      flushing = null;
    }
  })();
  return flushing;
}

// After a failed send, try again soon, then less and less often (5 s, 10 s, ... 5 min): a bad connection
// comes and goes without an "online" event.
const RETRY_FIRST_MS = 5000;
let retryDelay = RETRY_FIRST_MS;
let retryTimer = null;

function scheduleRetry() {
  if (retryTimer || !navigator.onLine) return;
  retryTimer = setTimeout(() => { retryTimer = null; if (navigator.onLine) flush(); }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 5 * 60 * 1000);
}

// true when every entry got a final answer, false when one must wait (no connection, server trouble).
async function sendQueue() {
  await refreshQueue();
  for (const entry of state.queue) {
    try {
      await api('/reports', { method: 'POST', body: entry.body, timeoutMs: 30000 });
      await queue.del(entry._id);
      if (entry.taskId && state.done[entry.taskId]) state.done[entry.taskId].sentAt = Date.now();
      await save('done');
      changed.dispatchEvent(new CustomEvent('sent', { detail: entry }));
    } catch (err) {
      if (err instanceof ApiError && (err.status === 409 || err.status === 422)) {
        await queue.del(entry._id);
        state.failed = [...state.failed, { ...entry, status: err.status, error: err.message, problems: err.body?.error?.problems ?? [] }];
        if (entry.taskId) delete state.done[entry.taskId]; // the task was not done: show it again
        await save('failed', 'done');
      } else {
        if (err instanceof ApiError && err.status === 401) state.sessionEnded = true;
        entry.attempts += 1;
        entry.lastError = err.message;
        await queue.put(entry);
        await refreshQueue();
        emit();
        return false;
      }
    }
    await refreshQueue();
    emit();
  }
  return true;
}

export async function dismissFailure(id) {
  state.failed = state.failed.filter((f) => f._id !== id);
  await save('failed');
  emit();
}

// Task interaction summaries (tracker.js decides what to keep from the answer).
const postInteractions = (batch) => api('/interactions', { method: 'POST', body: batch, timeoutMs: 30000 });

// ---------------------------------------------------------------------------------------------------
// syncing

const PAGE = 1000;

// The user's Ready and Draft tasks, every page. Once a day (the first sync of the device's day) the whole
// list comes, so contacts' new names and places show; the other syncs ask only what changed since the copy's
// `seq` (a delta: a few tasks instead of a supervisor's hundreds, on a slow connection). The server answers
// the whole list instead when it cannot give a delta (`since` null).
async function fetchTasks() {
  const today = localDay();
  const since = state.tasksSeq != null && state.tasksDay === today ? state.tasksSeq : null;
  const items = [];
  let first = null;
  for (let offset = 0; ; offset += PAGE) {
    const delta = since != null ? `&since=${since}` : '';
    const page = await api(`/tasks?state=Ready&state=Draft&limit=${PAGE}&offset=${offset}${delta}`, { timeoutMs: 60000 });
    first ??= page;
    items.push(...page.items);
    if (!page.items.length || items.length >= page.total) break;
  }
  if (first.since != null) {
    return { tasks: applyTaskDelta(state.tasks, { items, removed: first.removed }), seq: first.seq, day: state.tasksDay };
  }
  return { tasks: items, seq: first.seq, day: today };
}

// How long a task submitted here stays hidden when the server still lists it after the report was sent
// (the server recomputes the caller's tasks before answering, so this only covers a busy server).
const HIDE_AFTER_SENT_MS = 2 * 60 * 1000;

let syncing = null;
let syncAgain = false;

// Send the queue, then refresh the device copy: who the user is, translations, forms (when the program
// changed), and every Ready and Draft task, all pages. The copy is replaced only once everything came.
// A sync asked for while one runs runs once more after it (its answer may predate what was asked).
export function sync() {
  if (syncing) {
    syncAgain = true;
    return syncing;
  }
  syncing = (async () => {
    try {
      do {
        syncAgain = false;
        await syncOnce();
      } while (syncAgain && navigator.onLine);
    } finally {
      syncing = null;
    }
  })();
  return syncing;
}

async function syncOnce() {
  state.syncing = true;
  emit();
  try {
    await flush();
    const me = await api('/me');
    state.me = me;
    state.sessionEnded = false;
    // interaction summaries of finished days go with the rest of the sync (never throws, never blocks it)
    tracker.configure(me);
    const summariesSent = tracker.send(postInteractions);
    const needForms = !state.formsVersion || me.program_version !== state.formsVersion || !Object.keys(state.forms).length;
    const [translations, forms, fetched] = await Promise.all([
      api(`/translations${me.locale ? `?locale=${encodeURIComponent(me.locale)}` : ''}`),
      needForms ? api('/forms') : null,
      fetchTasks(),
    ]);
    state.messages = translations?.messages ?? {};
    state.locale = translations?.locale ?? me.locale ?? 'en';
    if (forms) {
      state.forms = Object.fromEntries((forms.forms ?? []).map((f) => [f.id, f]));
      state.formsVersion = forms.program_version ?? me.program_version ?? null;
    }
    const tasks = fetched.tasks;
    Object.assign(state, { tasks, tasksSeq: fetched.seq ?? null, tasksDay: fetched.day });
    const listed = new Set(tasks.filter((t) => t.state === 'Ready').map((t) => t._id));
    const queuedReports = new Set(state.queue.map((e) => e._id));
    for (const [taskId, mark] of Object.entries(state.done)) {
      if (queuedReports.has(mark.reportId)) continue;
      if (!listed.has(taskId) || (mark.sentAt && Date.now() - mark.sentAt > HIDE_AFTER_SENT_MS)) delete state.done[taskId];
    }
    await summariesSent;
    state.lastSync = Date.now();
    state.error = null;
    await save('me', 'messages', 'locale', 'forms', 'formsVersion', 'tasks', 'tasksSeq', 'tasksDay', 'lastSync', 'done');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) state.sessionEnded = true;
    state.error = err instanceof NetworkError ? (navigator.onLine ? err.message : null) : err.message;
  } finally {
    state.syncing = false;
    emit();
  }
}

// Keep trying: when the connection returns, every 30 s while forms wait, and every 5 minutes anyway
// (other users' work changes this user's tasks too). Browsers throttle hidden tabs, which is fine.
export function startAutoSync() {
  const setOnline = (online) => { state.online = online; emit(); };
  addEventListener('online', () => { setOnline(true); sync(); });
  addEventListener('offline', () => setOnline(false));
  setInterval(() => { if (state.queue.length && navigator.onLine && state.me) flush(); }, 30 * 1000);
  setInterval(() => { if (navigator.onLine && state.me && document.visibilityState === 'visible') sync(); }, 5 * 60 * 1000);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && navigator.onLine && state.me) sync();
  });
}
